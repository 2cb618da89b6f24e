"""ddpm_core.explorers: what each explorer computes equals what the library computes, bad input is
named, the static stand-ins are drawn, and every view works in a real kernel.

The compute functions are checked against the library by an independent route where there is
one (the posterior mean from its two coefficients; the sampler's images from the library's own
loop with the same seed; a digit noised and denoised from q_sample and the DDIM step written
out). The last test starts an IPython kernel with jupyter_client, builds each explorer there,
sets its controls from code, and reads back what the widgets hold (the picture's PNG bytes, the
error line, the progress bar) and the widget messages the kernel sent, those of the sampler's
thread among them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from ddpm_core import (
    Autoguided,
    NoiseSchedule,
    ddim_sample_loop,
    ddim_timesteps,
    p_sample,
    p_sample_loop,
    q_posterior_mean_variance,
    q_sample,
)
from ddpm_core.data import load_mnist_5k
from ddpm_core.ddim import ddim_mean_variance
from ddpm_core.explorers import (
    SamplerSettings,
    SamplingStopped,
    ScheduleSpec,
    components_text,
    drawing_to_image,
    fixed_noise,
    forward_posterior,
    forward_posterior_scrubber,
    held_out_digit,
    parse_components,
    pixel_posterior,
    sample_chain,
    sampler_scrubber,
    schedule_curves,
    schedule_scrubber,
    sdedit_runs,
    sdedit_scrubber,
    toy_chain,
    toy_scrubber,
    training_dashboard,
    training_summary,
)
from ddpm_core.explorers.schedule import ScheduleFigure, timestep_at
from ddpm_core.explorers.toy import draw_toy
from ddpm_core.explorers.training import draw_training
from ddpm_core.plotting import Scrubber, image_grid, png_bytes
from ddpm_core.toy import optimal_eps, ring_mixture

ROOT = Path(__file__).resolve().parent.parent


def toy_model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A cheap stand-in for a network: eps_hat = 0.1 x_t."""
    return 0.1 * x_t


# ----------------------------------------------------------------------------- schedule


@pytest.mark.parametrize("spec, reference", [
    (ScheduleSpec(), NoiseSchedule.linear(1000)),
    (ScheduleSpec(T=50, beta_1=1e-3, beta_T=0.2), NoiseSchedule.linear(50, 1e-3, 0.2)),
    (ScheduleSpec(kind="cosine", T=300, s=0.02), NoiseSchedule.cosine(300, 0.02)),
])
def test_schedule_curves_are_the_schedule_s(spec, reference):
    curves = schedule_curves(spec.build())
    assert torch.equal(torch.from_numpy(curves.alphas_cumprod), reference.alphas_cumprod)
    log_snr = torch.log(reference.snr())  # log(alphabar / (1 - alphabar)), another route
    assert torch.allclose(torch.from_numpy(curves.log_snr[1:]), log_snr[1:], rtol=1e-12, atol=1e-12)
    assert curves.log_snr[0] == float("inf") and curves.t_over_T[0] == 0 and curves.t_over_T[-1] == 1


def test_timestep_at_covers_1_to_T():
    assert [timestep_at(f, 1000) for f in (0.0, 0.0004, 0.5, 1.0)] == [1, 1, 500, 1000]
    assert timestep_at(0.5, 1) == 1


@pytest.mark.parametrize("spec, message", [
    (ScheduleSpec(beta_1=0.02, beta_T=0.01), "beta_T must be greater than beta_1"),
    (ScheduleSpec(beta_1=0.02, beta_T=0.02), "beta_T must be greater than beta_1"),
    (ScheduleSpec(T=0), "T must be an integer in 1..100000, got 0"),
    (ScheduleSpec(kind="cosine", T=-3), "T must be an integer in 1..100000, got -3"),
    (ScheduleSpec(T=10**7), "T must be an integer in 1..100000, got 10000000"),
    (ScheduleSpec(beta_T=1.5), "beta_T must be a finite number > 0 and < 1"),
    (ScheduleSpec(kind="cosine", s=-0.1), "s must be a finite number >= 0"),
    (ScheduleSpec(kind="quadratic"), "kind must be one of ('linear', 'cosine')"),
])
def test_bad_schedule_settings_are_named(spec, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        spec.build()


def test_schedule_figure_shows_q_sample_at_the_same_t_over_T():
    x0, specs = held_out_digit(3), (ScheduleSpec(T=200), ScheduleSpec(kind="cosine", T=1000))
    noise = fixed_noise(x0, 5)
    figure = ScheduleFigure()
    figure.update(specs, x0, noise, 0.25)
    for image, spec, t in zip(figure.images, specs, (50, 250)):
        expected = image_grid(q_sample(spec.build(), x0, t, noise), nrow=1)
        assert (image.get_array() == expected).all()


# ----------------------------------------------------------------------------- forward and posterior


def test_held_out_digits_and_fixed_noise():
    digits, _ = load_mnist_5k("test")
    assert torch.equal(held_out_digit(7), digits[7:8].double())
    x0 = held_out_digit(0)
    assert torch.equal(fixed_noise(x0, 3), fixed_noise(x0, 3)) and not torch.equal(fixed_noise(x0, 3), fixed_noise(x0, 4))
    with pytest.raises(ValueError, match="index must be an integer in 0..499, got 500"):
        held_out_digit(500)


@pytest.mark.parametrize("t", [1, 2, 100, 1000])
def test_pixel_posterior_is_q_posterior_mean_variance(t):
    schedule, x0 = NoiseSchedule.linear(1000), held_out_digit(11)
    noise = fixed_noise(x0, 1)
    x_t = q_sample(schedule, x0, t, noise)
    mean, variance, _ = q_posterior_mean_variance(schedule, x0, x_t, t)
    out = forward_posterior(schedule, x0, t, noise)
    assert torch.equal(out.x_t, x_t) and torch.equal(out.mean, mean) and torch.equal(out.variance, variance)
    pixel = pixel_posterior(schedule, x0, t, noise, 16, 14)
    assert (pixel.x0, pixel.x_t, pixel.mean) == (float(x0[0, 0, 16, 14]), float(x_t[0, 0, 16, 14]), float(mean[0, 0, 16, 14]))
    # Independent route: the two coefficients of eq. (eq-posterior-mean), and beta-tilde from the betas.
    abar, abar_prev, beta = schedule.alphas_cumprod[t], schedule.alphas_cumprod_prev[t], schedule.betas[t]
    by_hand = abar_prev.sqrt() * beta / (1 - abar) * pixel.x0 + (1 - beta).sqrt() * (1 - abar_prev) / (1 - abar) * pixel.x_t
    assert pixel.mean == pytest.approx(float(by_hand), abs=1e-12)
    assert pixel.variance == pytest.approx(float((1 - abar_prev) / (1 - abar) * beta), abs=1e-15)
    assert (pixel.variance == 0) == (t == 1)


def test_pixel_outside_the_image_is_named():
    x0 = held_out_digit(0)
    with pytest.raises(ValueError, match="row must be an integer in 0..31, got 32"):
        pixel_posterior(NoiseSchedule.linear(1000), x0, 10, fixed_noise(x0, 0), 32, 0)


def test_a_drawing_becomes_a_padded_digit():
    squares = [[False] * 14 for _ in range(14)]
    squares[3][5] = True
    x0 = drawing_to_image(squares)
    assert x0.shape == (1, 1, 32, 32) and x0.dtype == torch.float64
    ink = (x0[0, 0] > 0).nonzero().tolist()
    assert ink == [[8, 12], [8, 13], [9, 12], [9, 13]]  # square (3, 5) is pixels 6..7, 10..11 of 28, + 2 of padding
    assert float(x0.max()) == 1.0 and float(x0.min()) == -1.0


def test_an_empty_or_misshapen_drawing_is_named():
    with pytest.raises(ValueError, match="the drawing is empty"):
        drawing_to_image([[False] * 14 for _ in range(14)])
    with pytest.raises(ValueError, match="squares must be a 14 x 14 grid, got shape \\(3, 14\\)"):
        drawing_to_image([[True] * 14 for _ in range(3)])


# ----------------------------------------------------------------------------- sampler


def test_sampler_images_equal_ddim_sample_loop_guided_with_the_same_seed(one_thread):
    from ddpm_core.explorers.sampler import shipped_networks

    model, schedule, guide = shipped_networks()
    settings = SamplerSettings(num_steps=8, eta=1.0, guidance=1.5, seed=3, count=4)
    result = sample_chain(model, schedule, settings, guide)
    expected = ddim_sample_loop(schedule, Autoguided(model, guide, 1.5), (4, 1, 32, 32), 8, eta=1.0,
                                generator=torch.Generator().manual_seed(3))
    assert torch.equal(result.images, expected)
    assert len(result.chain) == 9 and result.timesteps == ddim_timesteps(1000, 8) + [0]
    assert torch.equal(result.chain[-1], result.images)


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_algorithm_2_equals_p_sample_loop(variance):
    schedule = NoiseSchedule.linear(20)
    settings = SamplerSettings(sampler="ddpm", variance=variance, guidance=1.0, seed=1, count=2)
    result = sample_chain(toy_model, schedule, settings)
    expected = p_sample_loop(schedule, toy_model, (2, 1, 32, 32), generator=torch.Generator().manual_seed(1),
                             variance=variance)
    assert torch.equal(result.images, expected)
    assert result.timesteps == list(range(20, -1, -1)) and len(result.chain) == 21


def test_a_run_reports_each_step_and_stops_between_steps():
    schedule, calls = NoiseSchedule.linear(30), []
    settings = SamplerSettings(sampler="ddim", num_steps=10, guidance=1.0, count=1)
    sample_chain(toy_model, schedule, settings, on_step=lambda done, total, x: calls.append((done, total)))
    assert calls == [(i, 10) for i in range(1, 11)]
    with pytest.raises(SamplingStopped, match="stopped after 3 of 10 steps"):
        sample_chain(toy_model, schedule, settings, should_stop=lambda: len(calls) >= 13,
                     on_step=lambda done, total, x: calls.append(done))


@pytest.mark.parametrize("settings, message", [
    (SamplerSettings(num_steps=31), "num_steps must be an integer in 1..30, got 31"),
    (SamplerSettings(sampler="euler"), "sampler must be one of ('ddpm', 'ddim')"),
    (SamplerSettings(num_steps=10, guidance=0.5), "guidance must be a finite number >= 1"),
    (SamplerSettings(num_steps=10, eta=-1.0), "eta must be a finite number >= 0"),
    (SamplerSettings(sampler="ddpm", variance="sigma"), "variance must be one of ('beta', 'beta_tilde')"),
    (SamplerSettings(sampler="ddpm", seed=-1), "seed must be an integer >= 0"),
    (SamplerSettings(num_steps=10, guidance=2.0), "guidance = 2 needs a guide network"),
])
def test_bad_sampler_settings_are_named(settings, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        sample_chain(toy_model, NoiseSchedule.linear(30), settings)


# ----------------------------------------------------------------------------- sampler: noise my digit, denoise it


@torch.no_grad()
def sdedit_by_hand(schedule, net, x0, settings):
    """count copies of x_0, each q_sample'd to start_t with an eps drawn first from the seed's
    generator, then the DDIM step of ddim_mean_variance over ddim_timesteps(start_t, N), one z a step."""
    g = torch.Generator().manual_seed(settings.seed)
    copies = x0.float().expand(settings.count, -1, -1, -1)  # (count, 1, 32, 32)
    x = x_t = q_sample(schedule, copies, settings.start_t, torch.randn(copies.shape, generator=g))
    timesteps = ddim_timesteps(settings.start_t, settings.num_steps)
    for t, s in zip(timesteps, timesteps[1:] + [0]):
        step = ddim_mean_variance(schedule, net, x, t, s, eta=settings.eta)
        x = step.mean + step.variance.sqrt() * torch.randn(x.shape, generator=g)
    return x_t, x


def test_a_noised_digit_denoised_is_q_sample_then_ddim_from_t(one_thread):
    from ddpm_core.explorers.sampler import shipped_networks

    model, schedule, guide = shipped_networks()
    settings = SamplerSettings(num_steps=4, eta=1.0, guidance=1.5, seed=3, count=3, start_t=300)
    x0 = held_out_digit(5)
    result = sample_chain(model, schedule, settings, guide, x0=x0)
    x_t, expected = sdedit_by_hand(schedule, Autoguided(model, guide, 1.5), x0, settings)
    assert torch.equal(result.chain[0], x_t) and torch.equal(result.images, expected)
    assert result.timesteps == [300, 200, 101, 1, 0] and len(result.chain) == 5
    assert not torch.equal(x_t[0], x_t[1])  # each copy has its own eps


def test_a_noised_digit_denoised_by_algorithm_2_is_q_sample_then_p_sample_from_t(one_thread):
    schedule = NoiseSchedule.linear(30)
    settings = SamplerSettings(sampler="ddpm", variance="beta_tilde", guidance=1.0, seed=4, count=2, start_t=7)
    x0 = held_out_digit(3)
    result = sample_chain(toy_model, schedule, settings, x0=x0)
    g = torch.Generator().manual_seed(4)
    copies = x0.float().expand(2, -1, -1, -1)
    x = x_t = q_sample(schedule, copies, 7, torch.randn(copies.shape, generator=g))
    for t in range(7, 0, -1):
        x = p_sample(schedule, toy_model, x, t, variance="beta_tilde", generator=g)
    assert torch.equal(result.chain[0], x_t) and torch.equal(result.images, x)
    assert result.timesteps == [7, 6, 5, 4, 3, 2, 1, 0] and len(result.chain) == 8
    assert settings.steps(schedule.T) == 7


def test_a_digit_noised_a_little_comes_back_and_noised_to_T_does_not(one_thread):
    from ddpm_core.explorers.sampler import shipped_networks

    model, schedule, _ = shipped_networks()
    x0 = held_out_digit(5)
    distance = {t: float((sample_chain(model, schedule, SamplerSettings(num_steps=10, eta=0.0, guidance=1.0,
                                                                         count=4, start_t=t), x0=x0).images
                          - x0.float()).abs().mean()) for t in (100, 1000)}
    assert distance[100] < 0.5 * distance[1000]


def test_sdedit_runs_noise_one_digit_to_each_t_and_the_scrubber_shows_them(one_thread):
    schedule = NoiseSchedule.linear(30)
    settings = SamplerSettings(num_steps=10, eta=0.5, guidance=1.0, seed=2, count=2)
    runs = sdedit_runs(7, starts=(5, 30), settings=settings, networks=(toy_model, schedule, None))
    assert list(runs) == [5, 30]
    for t, run in runs.items():  # DDIM from t in min(10, t) steps, the same seed for every t
        x_t, expected = sdedit_by_hand(schedule, toy_model, held_out_digit(7),
                                       dataclasses.replace(settings, start_t=t, num_steps=min(10, t)))
        assert torch.equal(run.chain[0], x_t) and torch.equal(run.images, expected)
    assert runs[5].timesteps == [5, 4, 3, 2, 1, 0]
    scrubber = sdedit_scrubber(runs, schedule)
    abar = schedule.sqrt_alphas_cumprod
    assert scrubber.labels == [f"t = 5, √ᾱₜ = {float(abar[5]):.2f}", f"t = 30, √ᾱₜ = {float(abar[30]):.2f}"]
    top_and_bottom = image_grid(torch.cat([runs[30].chain[0], runs[30].images]), nrow=2)  # x_t, then x_0
    assert scrubber.frames[1] == png_bytes(top_and_bottom)


DIGIT = torch.zeros(1, 1, 32, 32)


@pytest.mark.parametrize("settings, x0, message", [
    (SamplerSettings(start_t=0, num_steps=1), DIGIT, "start_t must be an integer in 1..30, got 0"),
    (SamplerSettings(start_t=31, num_steps=1), DIGIT, "start_t must be an integer in 1..30, got 31"),
    (SamplerSettings(start_t=5, num_steps=6), DIGIT, "num_steps must be an integer in 1..5, got 6"),
    (SamplerSettings(start_t=5, num_steps=5), None, "start_t = 5 needs x0, the digit to noise and denoise"),
    (SamplerSettings(num_steps=5), DIGIT, "x0 is noised and denoised only with a start_t"),
    (SamplerSettings(start_t=5, num_steps=5), torch.zeros(2, 1, 32, 32),
     "x0 must be one digit of shape (1, 1, 32, 32), got (2, 1, 32, 32)"),
])
def test_bad_digit_starts_are_named(settings, x0, message):
    settings = dataclasses.replace(settings, guidance=1.0)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        sample_chain(toy_model, NoiseSchedule.linear(30), settings, x0=x0)


# ----------------------------------------------------------------------------- 2-D toy


def test_components_round_trip_and_weights_are_rescaled():
    ring = ring_mixture(5, 0.6, 0.1)
    back = parse_components(components_text(ring))
    assert torch.allclose(back.means, ring.means, atol=1e-3) and torch.allclose(back.weights, ring.weights)
    assert torch.equal(back.stds, ring.stds)
    two = parse_components("# a comment\n0, 0, 1, 0.1\n\n1, 1, 3, 0.2\n")
    assert back.dim == 2 and torch.allclose(two.weights, torch.tensor([0.25, 0.75], dtype=torch.float64))


@pytest.mark.parametrize("text, message", [
    ("", "components is empty"),
    ("0, 0, 1", "component 1 \\('0, 0, 1'\\) must be four numbers"),
    ("0, 0, 1, 0.1\n0, a, 1, 0.1", "component 2 \\('0, a, 1, 0.1'\\) must be four numbers"),
    ("0, 0, 1, -0.1", "component 1 \\('0, 0, 1, -0.1'\\) needs weight > 0 and std > 0"),
])
def test_bad_components_are_named(text, message):
    with pytest.raises(ValueError, match=message):
        parse_components(text)


def test_toy_chain_is_algorithm_2_with_the_exact_denoiser(one_thread):
    mixture, schedule = ring_mixture(), NoiseSchedule.linear(40)
    chain = toy_chain(mixture, schedule, n=64, seed=2, variance="beta_tilde")
    _, expected = p_sample_loop(schedule, optimal_eps(mixture, schedule), (64, 2), variance="beta_tilde",
                                clip_x0=False, generator=torch.Generator().manual_seed(2), return_intermediates=True)
    assert len(chain) == 41 and all(torch.equal(a, b) for a, b in zip(chain, expected))
    data = mixture.sample(64, torch.Generator().manual_seed(3))
    for t in (0, 20, 40):
        assert draw_toy(mixture, schedule, chain, t, data).axes  # draws at x_0, midway and x_T


# ----------------------------------------------------------------------------- training dashboard


ROWS = [{"step": 10, "loss": 0.5, "lr": 1e-3, "images_per_s": 100.0},
        {"step": 20, "loss": 0.3, "lr": 1e-3, "images_per_s": 300.0},
        {"step": 30, "loss": 0.2, "lr": 1e-3, "images_per_s": 200.0}]


def test_training_summary():
    assert training_summary(ROWS) == {"step": 30, "loss": 0.2, "images_per_s": 200.0, "median_images_per_s": 200.0,
                                      "rows": 3}
    assert training_summary(ROWS, step=25)["loss"] == 0.3 and training_summary(ROWS, step=25)["rows"] == 2
    assert training_summary([])["rows"] == 0
    assert draw_training(ROWS, 20, torch.zeros(16, 1, 32, 32)).axes and draw_training([]).axes


def test_the_dashboard_is_trains_on_sample_hook(tmp_path, one_thread):
    from ddpm_core.train import TrainConfig, train
    from ddpm_core.unet import UNetConfig

    cfg = TrainConfig(steps=4, batch_size=4, lr=1e-3, warmup_steps=1, checkpoint_every=4, log_every=1,
                      sample_every=2, T=20, device="cpu", amp="off",
                      model=UNetConfig(base_channels=8, channel_mults=(1, 2), attention_resolutions=(), num_groups=4))
    dashboard = training_dashboard(tmp_path)  # no widget is built: it records, and draws on request
    train(cfg, tmp_path, progress=False, on_sample=dashboard.on_sample, images=load_mnist_5k("test")[0][:16])
    assert [step for step, _ in dashboard.previews] == [2, 4]
    assert [row["step"] for row in dashboard.rows] == [1, 2, 3, 4]  # metrics.jsonl, read at the last sample
    assert dashboard.previews[0][1].shape == (16, 1, 32, 32)
    scrubber = dashboard.scrubber()
    assert isinstance(scrubber, Scrubber) and scrubber.labels == ["step 2", "step 4"]


def test_a_dashboard_without_samples_has_no_scrubber():
    with pytest.raises(ValueError, match="the dashboard has no samples yet"):
        training_dashboard().scrubber()


# ----------------------------------------------------------------------------- static stand-ins


def test_the_static_stand_ins_are_scrubbers(one_thread):
    assert len(schedule_scrubber(fractions=(0.1, 0.9)).frames) == 2
    assert forward_posterior_scrubber(timesteps=(1, 500)).labels == ["t = 1", "t = 500"]
    small = toy_scrubber(schedule=NoiseSchedule.linear(30), n=100, timesteps=(30, 0))
    assert small.labels == ["t = 30", "t = 0"]
    sampler = sampler_scrubber(SamplerSettings(num_steps=4, guidance=1.0, count=2), frames=3,
                               networks=(toy_model, NoiseSchedule.linear(30), None))
    assert sampler.labels == ["t = 30", "t = 11", "t = 0"]  # states 0, 2, 4 of the chain 30, 20, 11, 1, 0


def test_import_needs_no_ipywidgets_and_views_say_what_to_install():
    code = textwrap.dedent("""
        import sys
        sys.modules["ipywidgets"] = None  # as if it were not installed
        import ddpm_core, ddpm_core.explorers as ex
        ex.parse_components("0, 0, 1, 0.1")
        try:
            ex.schedule_explorer()
        except ImportError as err:
            print(err)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "schedule_explorer needs ipywidgets: pip install 'ipywidgets>=7.6.4'" in done.stdout


# ----------------------------------------------------------------------------- the views, in a kernel

KERNEL_CODE = r'''
import json, tempfile, time
from pathlib import Path
import ipywidgets, torch
from IPython.display import display
from ddpm_core.explorers import (ForwardPosteriorExplorer, SamplerExplorer, SamplerSettings, ScheduleExplorer,
                                 ToyExplorer, schedule_explorer, training_dashboard)
r = {"ipywidgets": ipywidgets.__version__}
png = lambda b: bytes(b[:8]) == b"\x89PNG\r\n\x1a\n"

ex = ScheduleExplorer()
first = ex.image.value
ex.fraction.value = 0.8
r["schedule"] = {"png": png(first), "redrawn": ex.image.value != first, "error_before": ex.error.value}
ex.b["T"].value = 0
r["schedule"]["T0"] = ex.error.value
ex.b["T"].value = 100
r["schedule"]["T100"] = ex.error.value
ex.a["beta_T"].value = 1e-5
r["schedule"]["beta"] = ex.error.value
r["schedule"]["is_widget"] = isinstance(schedule_explorer(), ipywidgets.Widget)

fp = ForwardPosteriorExplorer()
first = fp.image.value
fp.t.value = 700
r["posterior"] = {"png": png(first), "redrawn": fp.image.value != first}
fp.source.value = "my drawing"
r["posterior"]["empty"] = fp.error.value
fp.squares[4][6].value = True
r["posterior"]["drawn"] = (fp.error.value, fp.image.value != first)

s = SamplerExplorer(settings=SamplerSettings(num_steps=5, count=4))
s.wait()
r["sampler"] = {"status": s.status.value, "chain": s.step.max, "png": png(s.image.value),
                "image_id": s.image.model_id, "progress_id": s.progress.model_id}
last = s.image.value
s.step.value = 0
r["sampler"]["x_T"] = (s.step_label.value, s.image.value != last)
s.sampler.value = "ddpm"  # Algorithm 2, 1000 steps: stopped below
time.sleep(1.0)
s.stop_button.click()
r["sampler"]["stopped"] = (s.status.value, s.progress.value, s.step_label.value, s.step.max)
s.seed.value = -1
r["sampler"]["seed"] = s.error.value

# Noise my drawing to t = 300 and denoise it. Drawing starts no run; the other controls are
# refused while the seed is -1, and the run starts when it is 0 again.
from ddpm_core.explorers.sampler import chain_png, sample_chain
for row in range(3, 12):
    s.squares[row][7].value = True  # a 1
s.sampler.value = "ddim"
s.t.value = 300
s.start.value = "drawing"
before = s.image.value
s.seed.value = 0
s.wait()
again = sample_chain(s.model, s.schedule, s.settings(), s.guide, x0=s.x0())
r["sdedit"] = {"error": s.error.value, "changed": s.image.value != before, "status": s.status.value,
               "same": s.image.value == chain_png(again, 5), "x0": png(s.x0_image.value),
               "chain": s.step.max, "end": s.step_label.value, "pad": s.drawing.layout.display}
s.step.value = 0
r["sdedit"]["start"] = s.step_label.value
s.t.value = 3  # N = 5 steps from t = 3
r["sdedit"]["steps"] = s.error.value
s.sampler.value = "ddpm"  # Algorithm 2 from t = 3: 3 steps
s.wait()
r["sdedit"]["algorithm 2"] = (s.error.value, s.step.max, s.status.value)
s.clear.click()
s.t.value = 300
r["sdedit"]["empty"] = s.error.value

toy = ToyExplorer()
toy.T.value = 50
first = toy.image.value
toy.components.value = "1, 2, 3"
r["toy"] = {"png": png(first), "bad": toy.error.value}
toy.make_ring.click()
toy.t.value = 25
r["toy"]["good"] = (toy.error.value, toy.image.value != first)

run = Path(tempfile.mkdtemp())
rows = [{"step": 10, "loss": 0.4, "lr": 1e-3, "images_per_s": 90.0},
        {"step": 20, "loss": 0.2, "lr": 1e-3, "images_per_s": 110.0}]
(run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows))
d = training_dashboard(run)
display(d)
d.on_sample(20, torch.zeros(16, 1, 32, 32))
r["dashboard"] = {"status": d.widget.children[0].value, "png": png(d.widget.children[1].value)}
print("RESULT " + json.dumps(r))
'''


def run_in_kernel(code: str, timeout: float = 150) -> tuple[dict, list[dict]]:
    """Execute ``code`` in a fresh IPython kernel; return what it printed after RESULT, and its iopub messages."""
    from jupyter_client import KernelManager

    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(ROOT), env={**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"})
    messages: list[dict] = []
    try:
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        reply = kc.execute_interactive(code, timeout=timeout, output_hook=messages.append)
        kc.stop_channels()
    finally:
        km.shutdown_kernel(now=True)
    errors = [m["content"] for m in messages if m["msg_type"] == "error"]
    assert reply["content"]["status"] == "ok", errors or reply["content"]
    text = "".join(m["content"]["text"] for m in messages if m["msg_type"] == "stream")
    line = next(line for line in text.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):]), messages


def updates_of(messages: list[dict], model_id: str) -> list[set]:
    """The names of the traits in each update the kernel sent to the widget ``model_id``.

    Bytes (a picture) travel as binary buffers: their names are in ``buffer_paths``, not in ``state``.
    """
    return [set(m["content"]["data"]["state"]) | {path[0] for path in m["content"]["data"].get("buffer_paths", [])}
            for m in messages if m["msg_type"] == "comm_msg"
            and m["content"]["comm_id"] == model_id and m["content"]["data"].get("method") == "update"]


def test_every_explorer_works_in_a_kernel():
    r, messages = run_in_kernel(KERNEL_CODE)
    red = '<span style="color:#b00020;font-family:sans-serif">'
    schedule = r["schedule"]
    assert schedule["png"] and schedule["redrawn"] and schedule["error_before"] == "" and schedule["is_widget"]
    assert schedule["T0"] == red + "T must be an integer in 1..100000, got 0</span>"
    assert schedule["T100"] == ""
    assert schedule["beta"].startswith(red + "beta_T must be greater than beta_1")

    posterior = r["posterior"]
    assert posterior["png"] and posterior["redrawn"]
    assert "the drawing is empty" in posterior["empty"] and posterior["drawn"] == ["", True]

    sampler = r["sampler"]
    assert sampler["status"].startswith("4 digits in ") and sampler["chain"] == 5 and sampler["png"]
    assert sampler["x_T"] == ["t = 1000", True]
    assert sampler["stopped"][0].startswith("stopped after ") and sampler["stopped"][1] >= 1
    assert sampler["stopped"][2:] == ["no chain yet", 0]  # the slider does not walk the earlier run's chain
    assert "seed must be an integer &gt;= 0, got -1" in sampler["seed"]
    # The sampling thread's updates reached the frontend's channel: the progress bar and the picture.
    assert sum("value" in keys for keys in updates_of(messages, sampler["progress_id"])) >= 5
    assert sum("value" in keys for keys in updates_of(messages, sampler["image_id"])) >= 2

    sdedit = r["sdedit"]  # the drawing, noised to t = 300 and denoised in 5 DDIM steps
    assert sdedit["error"] == "" and sdedit["changed"] and sdedit["same"] and sdedit["x0"]
    assert sdedit["status"].startswith("4 digits in ") and "from x_t, t = 300: DDIM, 5 steps" in sdedit["status"]
    assert sdedit["status"].endswith("from x_300 to x_0") and sdedit["pad"] is None
    assert (sdedit["chain"], sdedit["start"], sdedit["end"]) == (5, "t = 300", "t = 0")
    assert sdedit["steps"] == red + "num_steps must be an integer in 1..3, got 5</span>"
    error, chain, status = sdedit["algorithm 2"]  # SDEdit's own sampler: Algorithm 2 from t, t steps
    assert error == "" and chain == 3 and "from x_t, t = 3: Algorithm 2" in status and status.endswith("from x_3 to x_0")
    assert sdedit["empty"] == red + "the drawing is empty: click some squares to draw a digit</span>"

    toy = r["toy"]
    assert toy["png"] and "component 1 ('1, 2, 3') must be four numbers" in toy["bad"].replace("&#x27;", "'")
    assert toy["good"] == ["", True]

    assert r["dashboard"]["png"] and r["dashboard"]["status"].startswith("2 metrics rows, last at step 20")
    shown = [m for m in messages if m["msg_type"] == "display_data"]
    assert any("application/vnd.jupyter.widget-view+json" in m["content"]["data"] for m in shown)
