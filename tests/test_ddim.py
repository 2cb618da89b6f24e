"""DDIM: the eta = 1, full-sequence step is DDPM's step with variance beta-tilde; exact
recovery of a point mass; the subsequence; starting at a t < T (SDEdit); argument checks.

Timestep convention: the paper's t = 1..T; alphabar_0 = 1 stands for x_0.
"""

import pytest
import torch

from ddpm_core.ddim import ddim_mean_variance, ddim_sample_loop, ddim_timesteps
from ddpm_core.forward import q_sample
from ddpm_core.reverse import p_mean_variance, p_sample_loop
from ddpm_core.schedules import NoiseSchedule
from ddpm_core.unet import UNet, UNetConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def random_unet(seed: int = 0) -> UNet:
    """A tiny float64 U-Net with every layer perturbed, so that eps_hat is far from 0."""
    torch.manual_seed(seed)
    model = UNet(UNetConfig(patch_size=2, base_channels=8, channel_mults=(1, 2), attention_resolutions=(8,),
                            num_groups=4, dropout=0.0))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model.double().eval()


@pytest.mark.parametrize("clip_x0", [False, True])
@pytest.mark.parametrize("make_schedule", [NoiseSchedule.linear, NoiseSchedule.cosine])
def test_eta_one_full_sequence_step_is_ddpm_beta_tilde_step(make_schedule, clip_x0):
    """sigma^2 = beta-tilde_t and the DDIM mean = mu-tilde_t(x_t, x0_hat), for every t = 1..T."""
    T = 100
    schedule = make_schedule(T)
    model = random_unet()
    torch.manual_seed(1)
    x_t = 2.0 * torch.randn(T, 1, 32, 32, dtype=torch.float64)  # one example per t
    t = torch.arange(1, T + 1)
    with torch.no_grad():
        ddim = ddim_mean_variance(schedule, model, x_t, t, t - 1, eta=1.0, clip_x0=clip_x0)
        ddpm = p_mean_variance(schedule, model, x_t, t, variance="beta_tilde", clip_x0=clip_x0)
    if clip_x0:
        assert bool((ddpm.pred_x0.abs() == 1).any())  # the clipping really happened somewhere
    torch.testing.assert_close(ddim.variance, ddpm.variance, rtol=1e-10, atol=1e-15)
    torch.testing.assert_close(ddim.mean, ddpm.mean, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(ddim.pred_x0, ddpm.pred_x0, rtol=1e-12, atol=1e-12)


def test_eta_one_full_sequence_sampler_is_ddpm_sampler():
    """Same generator, same draws: the whole DDIM chain equals Algorithm 2 with beta-tilde."""
    T = 20
    schedule = NoiseSchedule.linear(T, beta_end=0.2)

    def model(x, t):  # a smooth stand-in for eps_theta
        return torch.tanh(0.7 * x + t[:, None, None, None] / T)

    x_T = torch.randn(6, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ddim = ddim_sample_loop(schedule, model, x_T.shape, num_steps=T, eta=1.0, x_T=x_T,
                            generator=torch.Generator().manual_seed(1))
    ddpm = p_sample_loop(schedule, model, x_T.shape, variance="beta_tilde", x_T=x_T,
                         generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(ddim, ddpm, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("make_schedule", [NoiseSchedule.linear, NoiseSchedule.cosine])
def test_variance_scales_with_eta_squared(make_schedule):
    """sigma^2 = eta^2 x (its eta = 1 value), for consecutive and for skipping steps; at
    eta = 1 and s = t - 1 that value is beta-tilde_t."""
    T = 100
    schedule = make_schedule(T)
    x_t = torch.randn(6, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([2, 10, 100, 100, 50, 7])
    t_prev = torch.tensor([1, 9, 99, 60, 10, 3])  # the first three consecutive, the others skipping

    def model(x, s):  # the variance does not depend on the prediction
        return torch.tanh(x)

    variance = {eta: ddim_mean_variance(schedule, model, x_t, t, t_prev, eta=eta, clip_x0=False).variance.flatten()
                for eta in (1.0, 0.5, 0.2)}
    torch.testing.assert_close(variance[1.0][:3], schedule.posterior_variance[t[:3]], rtol=1e-12, atol=0)
    assert bool((variance[1.0] > 0).all())
    torch.testing.assert_close(variance[0.5], 0.25 * variance[1.0], rtol=1e-12, atol=0)
    torch.testing.assert_close(variance[0.2], 0.04 * variance[1.0], rtol=1e-12, atol=0)


def point_mass_and_its_oracle(schedule):
    """One image x0* (1, 1, 5, 5) and the optimal eps_theta for data concentrated at it:
    (x_t - sqrt(alphabar_t) x0*) / sqrt(1 - alphabar_t)."""
    x0_star = torch.rand(1, 1, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 2 - 1
    abar = schedule.alphas_cumprod

    def oracle(x, t):
        a = abar[t].reshape(-1, 1, 1, 1)
        return (x - a.sqrt() * x0_star) / (1 - a).sqrt()

    return x0_star, oracle


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("num_steps", [1, 7, 50])
def test_point_mass_is_recovered_exactly(eta, num_steps):
    """For data concentrated at one image x0*, the optimal eps_theta is
    (x_t - sqrt(alphabar_t) x0*) / sqrt(1 - alphabar_t); every DDIM run must end at x0*."""
    schedule = NoiseSchedule.linear(50)
    x0_star, oracle = point_mass_and_its_oracle(schedule)

    shape = (4, 1, 5, 5)
    x_T = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    out = ddim_sample_loop(schedule, oracle, shape, num_steps, eta=eta, x_T=x_T,
                           generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(out, x0_star.expand(shape), rtol=0, atol=1e-10)


def test_eta_zero_is_deterministic_given_x_T():
    schedule = NoiseSchedule.linear(30)
    model = random_unet().float()
    x_T = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    a = ddim_sample_loop(schedule, model, x_T.shape, 5, eta=0.0, x_T=x_T, generator=torch.Generator().manual_seed(1))
    b = ddim_sample_loop(schedule, model, x_T.shape, 5, eta=0.0, x_T=x_T, generator=torch.Generator().manual_seed(2))
    c = ddim_sample_loop(schedule, model, x_T.shape, 5, eta=1.0, x_T=x_T, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)  # with eta > 0 the noise matters
    assert a.abs().max() <= 1.0 + 1e-6  # the last step returns the clipped x0_hat


def test_intermediates():
    schedule = NoiseSchedule.linear(30)
    out, chain = ddim_sample_loop(schedule, lambda x, t: 0.1 * x, (2, 1, 4, 4), 6,
                                  generator=torch.Generator().manual_seed(0), return_intermediates=True)
    assert len(chain) == 7
    assert torch.equal(chain[-1], out)
    assert torch.equal(chain[0], torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(0)))


def test_timesteps():
    assert ddim_timesteps(10, 10) == list(range(10, 0, -1))
    assert ddim_timesteps(1000, 1) == [1000]
    assert ddim_timesteps(1000, 2) == [1000, 1]
    for T, n in [(1000, 50), (1000, 999), (7, 3), (100, 33)]:
        seq = ddim_timesteps(T, n)
        assert len(seq) == n and seq[0] == T and seq[-1] == 1
        assert all(a > b for a, b in zip(seq, seq[1:]))
        gaps = [a - b for a, b in zip(seq, seq[1:])]
        assert max(gaps) - min(gaps) <= 1  # evenly spaced up to rounding


@pytest.mark.parametrize("num_steps", [0, 11, 2.0, True])
def test_timesteps_reject_bad_num_steps(num_steps):
    with pytest.raises(ValueError, match="num_steps"):
        ddim_timesteps(10, num_steps)


@pytest.mark.parametrize("eta", [-0.1, float("nan"), True, "1"])
def test_rejects_bad_eta(eta):
    schedule = NoiseSchedule.linear(10)
    with pytest.raises(ValueError, match="eta"):
        ddim_sample_loop(schedule, lambda x, t: x, (1, 1, 2, 2), 5, eta=eta)
    with pytest.raises(ValueError, match="eta"):
        ddim_mean_variance(schedule, lambda x, t: x, torch.zeros(1, 1, 2, 2), 5, 4, eta=eta)


@pytest.mark.parametrize("t, t_prev", [(5, 5), (5, 7), (5, -1), (5, 2.0), (0, 0), (11, 3)])
def test_rejects_bad_timesteps(t, t_prev):
    schedule = NoiseSchedule.linear(10)
    with pytest.raises(ValueError, match="t_prev|t must"):
        ddim_mean_variance(schedule, lambda x, t: x, torch.zeros(1, 1, 2, 2), t, t_prev)


def test_rejects_bad_x_T_and_model_output():
    schedule = NoiseSchedule.linear(10)
    with pytest.raises(ValueError, match="x_T"):
        ddim_sample_loop(schedule, lambda x, t: x, (1, 1, 2, 2), 5, x_T=torch.zeros(1, 1, 3, 3))
    with pytest.raises(ValueError, match="model output"):
        ddim_sample_loop(schedule, lambda x, t: x[:, :, :1], (1, 1, 2, 2), 5)


@pytest.mark.parametrize("clip_x0", [True, False])
def test_sampler_forwards_clip_x0(clip_x0):
    """clip_x0 reaches every step: at eta = 1 over 1..T the chain equals Algorithm 2 with the same
    clip_x0, and the two settings give different images for this model."""
    T = 20
    schedule = NoiseSchedule.linear(T, beta_end=0.2)

    def model(x, t):
        return torch.tanh(0.7 * x + t[:, None, None, None] / T)

    x_T = torch.randn(6, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    run = {clip: ddim_sample_loop(schedule, model, x_T.shape, num_steps=T, eta=1.0, x_T=x_T, clip_x0=clip,
                                  generator=torch.Generator().manual_seed(1)) for clip in (True, False)}
    ddpm = p_sample_loop(schedule, model, x_T.shape, variance="beta_tilde", x_T=x_T, clip_x0=clip_x0,
                         generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(run[clip_x0], ddpm, rtol=1e-9, atol=1e-10)
    assert not torch.allclose(run[True], run[False])


def test_timesteps_are_the_nearest_integers_to_the_even_grid():
    """Entry i is T - i (T - 1) / (num_steps - 1) rounded to the nearest integer (not truncated)."""
    for T, n in [(1000, 50), (1000, 999), (7, 3), (100, 33), (300, 7)]:
        for i, s in enumerate(ddim_timesteps(T, n)):
            assert abs(s - (T - i * (T - 1) / (n - 1))) <= 0.5, (T, n, i, s)
    assert ddim_timesteps(1000, 50)[:3] == [1000, 980, 959]


# ----------------------------------------------------------------------------- from a t < T (SDEdit)


def smooth_model(x, t):  # a smooth stand-in for eps_theta that depends on t
    return torch.tanh(0.7 * x + t[:, None, None, None] / 50)


def test_start_t_is_the_step_written_out_over_ddim_timesteps_of_start_t():
    """From a given x_t, the loop is ddim_mean_variance stepped over ddim_timesteps(start_t, N) with
    one z per step from the generator (no x_T is drawn), and the chain is [x_t, ..., x_0]."""
    schedule = NoiseSchedule.linear(50)
    x_t = torch.randn(3, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    out, chain = ddim_sample_loop(schedule, smooth_model, x_t.shape, 4, eta=0.5, x_T=x_t, start_t=20,
                                  generator=torch.Generator().manual_seed(1), return_intermediates=True)
    timesteps = ddim_timesteps(20, 4)
    assert timesteps == [20, 14, 7, 1]
    g, x, expected = torch.Generator().manual_seed(1), x_t, [x_t]
    for t, s in zip(timesteps, timesteps[1:] + [0]):
        step = ddim_mean_variance(schedule, smooth_model, x, t, s, eta=0.5)
        x = step.mean + step.variance.sqrt() * torch.randn(x.shape, generator=g, dtype=x.dtype)
        expected.append(x)
    assert torch.equal(out, x)
    assert len(chain) == 5 and all(torch.equal(a, b) for a, b in zip(chain, expected))


def test_start_t_equal_to_T_is_the_default_loop():
    schedule = NoiseSchedule.linear(30)
    x_T = torch.randn(2, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    runs = [ddim_sample_loop(schedule, smooth_model, x_T.shape, 7, eta=1.0, x_T=x_T, start_t=start_t,
                             generator=torch.Generator().manual_seed(1)) for start_t in (None, 30, 29)]
    assert torch.equal(runs[0], runs[1])
    assert not torch.allclose(runs[0], runs[2])  # start_t is used


@pytest.mark.parametrize("start_t", [1, 10, 37])
def test_a_noised_point_mass_is_denoised_exactly(start_t):
    """SDEdit of the one image the data hold: q_sample it to start_t, and the optimal eps_theta
    brings every DDIM run back to it."""
    schedule = NoiseSchedule.linear(50)
    x0_star, oracle = point_mass_and_its_oracle(schedule)

    shape = (4, 1, 5, 5)
    x_t = q_sample(schedule, x0_star.expand(shape), start_t, generator=torch.Generator().manual_seed(4))
    out = ddim_sample_loop(schedule, oracle, shape, min(5, start_t), eta=0.5, x_T=x_t, start_t=start_t,
                           generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(out, x0_star.expand(shape), rtol=0, atol=1e-10)


@pytest.mark.parametrize("start_t, num_steps, message", [
    (0, 1, "start_t must be an integer in 1..10, got 0"),
    (11, 1, "start_t must be an integer in 1..10, got 11"),
    (5.0, 1, "start_t must be an integer in 1..10, got 5.0"),
    (True, 1, "start_t must be an integer in 1..10, got True"),
    (5, 6, "num_steps must be an integer in 1..5, got 6"),
])
def test_rejects_bad_start_t(start_t, num_steps, message):
    schedule = NoiseSchedule.linear(10)
    with pytest.raises(ValueError, match=message):
        ddim_sample_loop(schedule, lambda x, t: x, (1, 1, 2, 2), num_steps, x_T=torch.zeros(1, 1, 2, 2), start_t=start_t)


def test_start_t_needs_x_T():
    with pytest.raises(ValueError, match="start_t = 5 needs x_T, the x at t = 5"):
        ddim_sample_loop(NoiseSchedule.linear(10), lambda x, t: x, (1, 1, 2, 2), 5, start_t=5)
