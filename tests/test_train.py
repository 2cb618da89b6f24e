"""Training: bit-identical resume, refusal of a foreign checkpoint, the stop at a non-finite
loss, the EMA and warm-up formulas, learning on a fixed batch, weights files and the CLIs.

Timestep convention: the paper's t = 1..T.
"""

import json
import math
import pickle
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from ddpm_core.losses import simple_loss
from ddpm_core.schedules import NoiseSchedule
from ddpm_core.train import (
    EMA,
    NonFiniteLossError,
    QUICK,
    TrainConfig,
    config_differences,
    lr_at,
    Muon,
    make_optimizer,
    newton_schulz_orthogonalize,
    train,
    training_step,
)
from ddpm_core.train.cli import build_parser, config_from_args, main as train_main
from ddpm_core.weights import (
    PRETRAINED,
    PRETRAINED_GUIDE,
    export_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_model,
    load_pretrained,
    save_model,
)
from ddpm_core.sample import load_weights, main as sample_main
from ddpm_core.unet import UNet, UNetConfig

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_NET = UNetConfig(patch_size=1, base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
                      attention_resolutions=(16,), num_groups=4, dropout=0.1)  # dropout: the RNG matters
TINY = TrainConfig(T=50, batch_size=4, lr=1e-3, warmup_steps=2, steps=6, checkpoint_every=3, log_every=2,
                   device="cpu", model=TINY_NET)


@pytest.fixture(scope="module")
def images():
    return torch.rand(16, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1




def checkpoint_tensors(path) -> dict[str, torch.Tensor]:
    ckpt = load_checkpoint(path)
    out = {f"model.{k}": v for k, v in ckpt["model"].items()}
    out.update({f"ema.{k}": v for k, v in ckpt["ema"]["shadow"].items()})
    return out


def assert_same_weights(path_a, path_b) -> None:
    """Two checkpoints hold the same tensors, weights and EMA weights, to the last bit."""
    a, b = checkpoint_tensors(path_a), checkpoint_tensors(path_b)
    assert a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)


def assert_whole_and_resumed_runs_agree(cfg: TrainConfig, tmp_path: Path, images: torch.Tensor):
    """cfg.steps steps in one run == 3 steps, stop, resume to cfg.steps: torch.equal on every tensor.

    Also checks that the weights moved after the first checkpoint. Returns the two runs' results.
    """
    one = train(cfg, tmp_path / "one", progress=False, images=images)
    train(replace(cfg, steps=3), tmp_path / "two", progress=False, images=images)
    two = train(cfg, tmp_path / "two", progress=False, images=images)
    assert_same_weights(one.checkpoint, two.checkpoint)
    first, b = checkpoint_tensors(list_checkpoints(tmp_path / "two")[0]), checkpoint_tensors(two.checkpoint)
    assert not all(torch.equal(first[n], b[n]) for n in b)  # the test could not pass with a frozen model
    return one, two


# ----------------------------------------------------------------------------- resume


def test_resume_is_bit_identical(tmp_path, images):
    """6 steps in one run == 3 steps, stop, resume, 3 more: torch.equal on every tensor."""
    one = train(TINY, tmp_path / "one", progress=False, images=images)
    train(replace(TINY, steps=3), tmp_path / "two", progress=False, images=images)
    two = train(TINY, tmp_path / "two", progress=False, images=images)
    assert one.step == two.step == 6
    a, b = checkpoint_tensors(one.checkpoint), checkpoint_tensors(two.checkpoint)
    assert a.keys() == b.keys() and len(a) > 40
    for name in a:
        assert torch.equal(a[name], b[name]), name
    ca, cb = load_checkpoint(one.checkpoint), load_checkpoint(two.checkpoint)
    assert torch.equal(ca["rng_cpu"], cb["rng_cpu"]) and torch.equal(ca["rng_data"], cb["rng_data"])
    assert ca["ema"]["num_updates"] == cb["ema"]["num_updates"] == 6
    # The weights moved (the test could not pass with a frozen model).
    first = checkpoint_tensors(list_checkpoints(tmp_path / "two")[0])
    assert not all(torch.equal(first[n], b[n]) for n in b)
    # metrics.jsonl: one line per log_every steps and one at the end of each session.
    for run, logged in (("one", [2, 4, 6]), ("two", [2, 3, 4, 6])):
        rows = [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows] == logged
        assert set(rows[0]) == {"step", "loss", "lr", "images_per_s"}
    assert json.loads((tmp_path / "one" / "config.json").read_text()) == TINY.to_dict()
    assert [p.name for p in list_checkpoints(tmp_path / "one")] == ["step_0000003.pt", "step_0000006.pt"]


def test_resume_with_muon_is_bit_identical(tmp_path, images):
    """The same with optimizer="muon": its momentum and Adam moments are in the checkpoint."""
    cfg = replace(TINY, optimizer="muon", muon_lr=0.01)
    assert_whole_and_resumed_runs_agree(cfg, tmp_path, images)
    with pytest.raises(ValueError, match="optimizer"):  # an Adam run does not resume a Muon checkpoint
        train(replace(cfg, optimizer="adam"), tmp_path / "two", progress=False, images=images)


def test_newton_schulz_gives_the_orthogonal_factor_approximately():
    """Singular values pushed into about [0.7, 1.2], singular vectors kept: close to U V^T."""
    for shape in ((64, 144), (144, 64), (16, 36)):
        G = torch.randn(*shape, generator=torch.Generator().manual_seed(0)) * 3.0
        O = newton_schulz_orthogonalize(G)
        U, _, Vh = torch.linalg.svd(G, full_matrices=False)
        s = torch.linalg.svdvals(O)
        assert O.shape == G.shape and O.dtype == torch.float32
        assert 0.6 < float(s.min()) and float(s.max()) < 1.25, (shape, s.min(), s.max())
        assert float((O - U @ Vh).norm() / (U @ Vh).norm()) < 0.3
        # G's own singular values spread widely; O's do not:
        sg = torch.linalg.svdvals(G)
        assert float(sg.max() / sg.min()) > 3 and float(s.max() / s.min()) < 1.9


def test_muon_groups_and_learning_rates(tmp_path, images):
    """Matrices and filters take Muon steps, except conv_in and conv_out; both rates follow lr_at."""
    cfg = replace(TINY, optimizer="muon", muon_lr=0.02, lr_decay="cosine")
    model = UNet(cfg.model)
    opt = make_optimizer(model, cfg)
    muon, adam = opt.param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    assert muon["use_muon"] and not adam["use_muon"]
    assert all(p.dim() >= 2 for p in muon["params"])
    assert {names[id(p)] for p in adam["params"] if p.dim() >= 2} == {"conv_in.weight", "conv_out.weight"}
    assert len(muon["params"]) + len(adam["params"]) == len(list(model.parameters()))
    assert isinstance(make_optimizer(model, TINY), torch.optim.Adam)
    result = train(cfg, tmp_path, progress=False, images=images)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["lr"] == lr_at(cfg.steps, cfg) and result.step == cfg.steps
    assert math.isfinite(result.final_loss)


def test_resume_refuses_a_different_configuration(tmp_path, images):
    train(replace(TINY, steps=3), tmp_path, progress=False, images=images)
    other = replace(TINY, lr=5e-4, model=replace(TINY_NET, base_channels=12))
    with pytest.raises(ValueError, match="different configuration") as err:
        train(other, tmp_path, progress=False, images=images)
    assert "lr" in str(err.value) and "model.base_channels" in str(err.value)
    assert "model.num_groups" not in str(err.value)  # only the fields that differ
    with pytest.raises(ValueError, match="steps=2 is smaller"):
        train(replace(TINY, steps=2), tmp_path, progress=False, images=images)
    with pytest.raises(ValueError, match="resume=True"):
        train(TINY, tmp_path, resume=False, progress=False, images=images)


def test_cosine_run_cannot_change_its_length(tmp_path, images):
    cosine = replace(TINY, lr_decay="cosine", steps=4)
    train(replace(cosine, steps=4), tmp_path / "a", progress=False, images=images)
    with pytest.raises(ValueError, match="lr_decay='cosine'.*steps must stay 4"):
        train(replace(cosine, steps=6), tmp_path / "a", progress=False, images=images)
    # Without a decay, the same extension is allowed.
    train(replace(TINY, steps=4), tmp_path / "b", progress=False, images=images)
    assert train(replace(TINY, steps=6), tmp_path / "b", progress=False, images=images).step == 6


def test_min_snr_training_resumes_bit_identically(tmp_path, images):
    cfg = replace(TINY, loss_weighting="min_snr", min_snr_gamma=2.0, lr_decay="cosine")
    whole = train(cfg, tmp_path / "whole", progress=False, images=images)
    train(cfg, tmp_path / "split", progress=False, images=images)  # checkpoint_every=3: stops and restarts below
    first = sorted((tmp_path / "split" / "checkpoints").glob("*.pt"))[0]
    for later in sorted((tmp_path / "split" / "checkpoints").glob("*.pt"))[1:]:
        later.unlink()  # as if the session had died after the first checkpoint
    assert first.name.endswith("3.pt")
    resumed = train(cfg, tmp_path / "split", progress=False, images=images)
    for a, b in zip(whole.ema_model.state_dict().values(), resumed.ema_model.state_dict().values()):
        assert torch.equal(a, b)
    # ... and the weighting changes the result: the same run with uniform weights differs.
    uniform = train(replace(cfg, loss_weighting="uniform"), tmp_path / "uniform", progress=False, images=images)
    assert not all(torch.equal(a, b) for a, b in zip(whole.model.state_dict().values(), uniform.model.state_dict().values()))


def test_previews_change_nothing_and_resume_bit_identically(tmp_path, images):
    """A preview on a checkpoint step (sample_every == checkpoint_every) builds a network, whose
    initialisation must not draw from the training's generators: with previews, the run equals
    the same run without them, and 3 + resume + 3 steps equal 6."""
    cfg = replace(TINY, sample_every=3)
    one, _ = assert_whole_and_resumed_runs_agree(cfg, tmp_path, images)
    assert sorted(p.name for p in (tmp_path / "one" / "samples").iterdir()) == ["step_0000003.png", "step_0000006.png"]
    without = train(replace(cfg, sample_every=0), tmp_path / "no_previews", progress=False, images=images)
    assert_same_weights(one.checkpoint, without.checkpoint)


def test_resume_may_change_what_does_not_change_the_weights(tmp_path, images):
    """Logging, checkpoint and preview intervals and torch.compile may differ in a resumed session."""
    whole = train(TINY, tmp_path / "whole", progress=False, images=images)
    train(replace(TINY, steps=3), tmp_path / "split", progress=False, images=images)
    other = replace(TINY, log_every=1, checkpoint_every=1, sample_every=2)
    resumed = train(other, tmp_path / "split", progress=False, images=images)
    assert_same_weights(whole.checkpoint, resumed.checkpoint)
    assert [p.name for p in list_checkpoints(tmp_path / "split")][-3:] == [f"step_000000{i}.pt" for i in (4, 5, 6)]
    assert config_differences(TINY.to_dict(), replace(TINY, compile=True)) == []
    assert config_differences(TINY.to_dict(), replace(TINY, seed=1)) == ["seed: 0 != 1"]


def test_keep_checkpoints_keeps_the_first_and_the_newest(tmp_path, images):
    """With keep_checkpoints=2, a run checkpointing every step ends with steps 1 (the guide), 5
    and 6 on disk, and trains exactly as the run that keeps them all."""
    cfg = replace(TINY, checkpoint_every=1, keep_checkpoints=2)
    kept = train(cfg, tmp_path / "kept", progress=False, images=images)
    assert [p.name for p in list_checkpoints(tmp_path / "kept")] == ["step_0000001.pt", "step_0000005.pt", "step_0000006.pt"]
    every = train(replace(cfg, keep_checkpoints=0), tmp_path / "all", progress=False, images=images)
    assert len(list_checkpoints(tmp_path / "all")) == 6
    assert_same_weights(kept.checkpoint, every.checkpoint)


def test_resume_skips_a_damaged_checkpoint_and_a_cut_metrics_line(tmp_path, images):
    """A session that died while its file system was writing: the newest checkpoint is cut short
    and the last line of metrics.jsonl is half written. Resuming warns, goes back to the checkpoint
    before, and ends as the uninterrupted run does."""
    whole = train(TINY, tmp_path / "whole", progress=False, images=images)
    train(TINY, tmp_path / "cut", progress=False, images=images)
    newest = list_checkpoints(tmp_path / "cut")[-1]
    newest.write_bytes(newest.read_bytes()[:1000])
    with open(tmp_path / "cut" / "metrics.jsonl", "a") as f:
        f.write('{"step": 7, "lo')
    with pytest.warns(UserWarning, match="skipping checkpoint .*step_0000006.pt"):
        resumed = train(TINY, tmp_path / "cut", progress=False, images=images)
    assert_same_weights(whole.checkpoint, resumed.checkpoint)
    rows = [json.loads(line) for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6]  # the cut line and the rows after step 3 are gone
    # With no readable checkpoint left, the run is not started over silently.
    for path in list_checkpoints(tmp_path / "cut"):
        path.write_bytes(b"")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="no checkpoint .* can be read"):
        train(TINY, tmp_path / "cut", progress=False, images=images)


def test_resume_on_a_device_with_another_precision(tmp_path, images, monkeypatch):
    """Colab may hand out an A100 (bf16, no scaler) and, after a disconnect, a T4 (fp16 with a
    scaler). The T4 session starts a fresh scaler, says that the precision changed, and goes on."""
    import ddpm_core.train.loop as loop_module

    monkeypatch.setattr(loop_module, "resolve_amp", lambda cfg, device: (torch.bfloat16, False))
    train(replace(TINY, steps=3), tmp_path, progress=False, images=images)
    assert load_checkpoint(list_checkpoints(tmp_path)[-1])["autocast"] == "bfloat16"
    monkeypatch.setattr(loop_module, "resolve_amp", lambda cfg, device: (torch.float16, True))
    with pytest.warns(UserWarning, match="autocast bfloat16; this session uses float16"):
        result = train(TINY, tmp_path, progress=False, images=images)
    ckpt = load_checkpoint(result.checkpoint)
    assert result.step == 6 and ckpt["autocast"] == "float16"
    assert ckpt["scaler"]["scale"] == 2.0**16 and ckpt["scaler"]["_growth_tracker"] == 3  # fresh at step 3


def test_config_differences_reads_missing_fields_as_defaults():
    saved = TINY.to_dict()
    for key in ("lr_decay", "loss_weighting", "min_snr_gamma"):
        del saved[key]  # a checkpoint written before these fields existed
    assert config_differences(saved, TINY) == []
    assert config_differences(saved, replace(TINY, lr_decay="cosine")) == ["lr_decay: 'none' != 'cosine'"]


# ----------------------------------------------------------------------------- non-finite losses


def test_nan_data_stops_and_keeps_the_last_checkpoint(tmp_path, images):
    train(replace(TINY, steps=3), tmp_path, progress=False, images=images)
    (ckpt,) = list_checkpoints(tmp_path)
    before = ckpt.read_bytes()
    metrics_before = (tmp_path / "metrics.jsonl").read_text()
    with pytest.raises(NonFiniteLossError, match="step 4"):
        train(TINY, tmp_path, progress=False, images=torch.full_like(images, math.nan))
    assert list_checkpoints(tmp_path) == [ckpt]
    assert ckpt.read_bytes() == before
    assert (tmp_path / "metrics.jsonl").read_text() == metrics_before
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))


def test_huge_learning_rate_stops(tmp_path, images):
    cfg = replace(TINY, lr=1e30, warmup_steps=0, grad_clip=0.0, steps=20, checkpoint_every=1)
    with pytest.raises(NonFiniteLossError):
        train(cfg, tmp_path, progress=False, images=images)
    written = list_checkpoints(tmp_path)
    assert len(written) < 20
    for path in written:  # whatever was written holds finite numbers only
        assert all(bool(torch.isfinite(v).all()) for v in checkpoint_tensors(path).values())


def test_training_step_refuses_nan_and_leaves_weights(images):
    torch.manual_seed(0)
    model = UNet(TINY_NET)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x0 = images[:4].clone()
    x0[0, 0, 0, 0] = math.nan
    with pytest.raises(NonFiniteLossError, match="loss is nan"):
        training_step(model, NoiseSchedule.linear(50), optimizer, x0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# ----------------------------------------------------------------------------- pieces


def test_training_reduces_the_loss_on_a_fixed_batch(images):
    torch.manual_seed(0)
    schedule = NoiseSchedule.linear(50)
    model = UNet(replace(TINY_NET, dropout=0.0))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    x0 = images[:8]
    gen = torch.Generator().manual_seed(1)
    t = torch.randint(1, 51, (8,), generator=gen)
    noise = torch.randn(x0.shape, generator=gen)

    def fixed_loss():
        with torch.no_grad():
            return float(simple_loss(schedule, model.eval(), x0, t, noise=noise))

    start = fixed_loss()
    assert start == pytest.approx(float((noise**2).mean()))  # a fresh network predicts 0
    for _ in range(20):
        training_step(model, schedule, optimizer, x0, grad_clip=1.0)
    assert fixed_loss() < 0.8 * start  # 0.67 * start on the machine that wrote this test


def test_ema_matches_closed_form():
    """Averaging toward a constant c: shadow_n = c + (p_0 - c) prod_k d_k, d_k = min(decay, (1+k)/(10+k))."""
    model = torch.nn.Linear(2, 1)
    p0 = model.weight.detach().clone()
    ema = EMA(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(3.0)
    prod = 1.0
    for k in range(30):
        ema.update(model)
        prod *= min(0.9, (1 + k) / (10 + k))
    torch.testing.assert_close(ema.shadow["weight"], 3.0 + (p0 - 3.0) * prod)
    target = torch.nn.Linear(2, 1)
    ema.copy_to(target)
    assert torch.equal(target.weight, ema.shadow["weight"])
    restored = EMA(torch.nn.Linear(2, 1), decay=0.5)
    restored.load_state_dict(ema.state_dict())
    assert restored.decay == 0.9 and restored.num_updates == 30
    assert torch.equal(restored.shadow["bias"], ema.shadow["bias"])


@pytest.mark.parametrize("decay", [1.0, -0.1, float("nan"), True])
def test_ema_rejects_bad_decay(decay):
    with pytest.raises(ValueError, match="decay"):
        EMA(torch.nn.Linear(2, 1), decay)


def test_lr_warm_up():
    cfg = replace(TINY, lr=1e-3, warmup_steps=4)
    assert [lr_at(s, cfg) for s in (1, 2, 4, 5, 1000)] == pytest.approx([2.5e-4, 5e-4, 1e-3, 1e-3, 1e-3])
    assert lr_at(1, replace(cfg, warmup_steps=0)) == 1e-3


def test_lr_cosine_decay():
    cfg = replace(TINY, lr=1e-3, warmup_steps=4, steps=104, lr_decay="cosine")
    lrs = [lr_at(n, cfg) for n in range(1, 105)]
    assert lrs[:4] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])  # the warm-up is unchanged
    # Half a cosine over the remaining 100 steps: lr (1 + cos(pi k / 100)) / 2 after k of them.
    assert lrs[3 + 50] == pytest.approx(5e-4) and lrs[3 + 25] == pytest.approx(1e-3 * (1 + math.cos(math.pi / 4)) / 2)
    assert lrs[-1] == 0.0
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:]))  # never rises after the warm-up
    with pytest.raises(ValueError, match="step"):
        lr_at(0, cfg)


@pytest.mark.parametrize(
    "field, value",
    [
        ("T", 0), ("schedule", "quadratic"), ("batch_size", 0), ("lr", 0.0), ("lr", math.inf),
        ("warmup_steps", -1), ("steps", 0), ("steps", 10.0), ("ema_decay", 1.0), ("grad_clip", -1.0),
        ("loss_type", "huber"), ("seed", -1), ("checkpoint_every", -1), ("log_every", 0),
        ("sample_every", -1), ("keep_checkpoints", -1), ("data", "cifar"), ("amp", "fp8"), ("channels_last", 1),
        ("compile", "yes"), ("device", "mps"), ("model", {"base_channels": 8}),
        ("lr_decay", "step"), ("loss_weighting", "vlb"), ("min_snr_gamma", 0.0), ("min_snr_gamma", math.nan),
        ("optimizer", "sgd"), ("muon_lr", 0.0), ("muon_lr", math.inf),
    ],
)
def test_config_rejects_bad_field(field, value):
    with pytest.raises(ValueError, match=field):
        replace(TINY, **{field: value})


def test_config_round_trips_and_is_keyword_only():
    assert TrainConfig.from_dict(json.loads(json.dumps(TINY.to_dict()))) == TINY
    with pytest.raises(TypeError):
        TrainConfig(1000)
    with pytest.raises(ValueError, match="unknown"):
        TrainConfig.from_dict({"epochs": 3})


def test_fp16_on_a_cpu_is_refused(tmp_path, images):
    with pytest.raises(ValueError, match="fp16"):
        train(replace(TINY, amp="fp16"), tmp_path, progress=False, images=images)


# A T4 trains with fp16 autocast and a gradient scaler. torch runs both on a CPU too, so the
# code path a T4 takes is checked here by making resolve_amp answer as it does on a T4.


@pytest.mark.parametrize("optimizer", ["adam", "muon"])
def test_fp16_with_a_scaler_resumes_bit_identically(tmp_path, images, monkeypatch, optimizer):
    import ddpm_core.train.loop as loop_module

    monkeypatch.setattr(loop_module, "resolve_amp", lambda cfg, device: (torch.float16, True))
    cfg = replace(TINY, optimizer=optimizer, muon_lr=0.01, channels_last=True)
    one, two = assert_whole_and_resumed_runs_agree(cfg, tmp_path, images)
    # The scaler's state travels with the checkpoint: 6 clean steps counted towards its next growth,
    # 3 of them before the resumption.
    scalers = [load_checkpoint(run.checkpoint)["scaler"] for run in (one, two)]
    assert scalers[0] == scalers[1]
    assert scalers[0]["scale"] == 2.0**16 and scalers[0]["_growth_tracker"] == 6


def test_fp16_overflow_skips_the_step_and_lowers_the_scale(images):
    """With a scaler an infinite gradient is not an error: the step is skipped and the scale halved."""
    torch.manual_seed(0)
    model = UNet(TINY_NET)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    schedule = NoiseSchedule.linear(50)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**127)  # loss * scale is finite, its gradient is not
    loss = training_step(model, schedule, optimizer, images[:4], scaler=scaler, amp_dtype=torch.float16)
    assert math.isfinite(loss)
    assert scaler.get_scale() == 2.0**126
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)  # a scale that fits: the step is taken
    training_step(model, schedule, optimizer, images[:4], scaler=scaler, amp_dtype=torch.float16)
    assert scaler.get_scale() == 2.0**10
    assert not all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_images_of_the_wrong_shape_are_refused(tmp_path):
    with pytest.raises(ValueError, match="images"):
        train(TINY, tmp_path, progress=False, images=torch.zeros(4, 1, 28, 28))


# ----------------------------------------------------------------------------- weights files


def test_save_and_load_model(tmp_path):
    torch.manual_seed(0)
    model = UNet(TINY_NET).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    path = tmp_path / "w.safetensors"
    save_model(model, TINY_NET, path, {"train_config": TINY.to_dict(), "note": "test"})
    loaded, info = load_model(path)
    assert info["note"] == "test" and UNetConfig.from_dict(info["unet_config"]) == TINY_NET
    x, t = torch.randn(2, 1, 32, 32), torch.tensor([3, 40])
    with torch.no_grad():
        assert torch.equal(loaded(x, t), model(x, t))
    loaded_model, schedule = load_pretrained(path)
    assert schedule.T == TINY.T
    save_model(model, TINY_NET, tmp_path / "h.safetensors", dtype=torch.float16)
    half, _ = load_model(tmp_path / "h.safetensors")
    assert all(p.dtype == torch.float32 for p in half.parameters())
    with torch.no_grad():
        torch.testing.assert_close(half(x, t), model(x, t), rtol=0.05, atol=0.05)
    assert (tmp_path / "h.safetensors").stat().st_size < 0.6 * path.stat().st_size
    with pytest.raises(ValueError, match="safetensors"):
        save_model(model, TINY_NET, tmp_path / "w.pt")
    with pytest.raises(ValueError, match="json card"):
        load_model(tmp_path / "missing.safetensors")


@pytest.mark.skipif(not PRETRAINED.exists(), reason="no shipped weights")
def test_shipped_model_loads_and_is_documented():
    model, schedule = load_pretrained()
    info = json.loads(PRETRAINED.with_suffix(".json").read_text())
    for key in ("unet_config", "train_config", "command", "steps", "wall_time_s", "final_loss", "date", "machine", "data_split",
                "autocast"):
        assert key in info, key
    assert PRETRAINED.stat().st_size < 8_000_000
    assert schedule.T == info["train_config"]["T"]
    with torch.no_grad():
        out = model(torch.randn(2, 1, 32, 32), torch.tensor([10, 900]))
    assert out.shape == (2, 1, 32, 32) and bool(torch.isfinite(out).all())
    # The shipped weights come from the current --quick preset, as the card's command says.
    assert "--quick" in info["command"]
    assert TrainConfig.from_dict(info["train_config"]) == config_from_args(build_parser().parse_args(["--run-dir", "x", "--quick"]))
    # Its guide (autoguidance) is an earlier checkpoint of the same run, written by the same command.
    guide, guide_schedule = load_pretrained(PRETRAINED_GUIDE)
    guide_info = json.loads(PRETRAINED_GUIDE.with_suffix(".json").read_text())
    assert guide_info["train_config"] == info["train_config"] and guide_info["command"] == info["command"]
    assert "--export-guide" in info["command"] and 0 < guide_info["steps"] < info["steps"]
    assert guide_info["steps"] == info["train_config"]["checkpoint_every"]  # the run's first checkpoint
    assert torch.equal(guide_schedule.betas, schedule.betas)


# ----------------------------------------------------------------------------- command lines


def test_quick_preset_and_explicit_flags():
    cfg = config_from_args(build_parser().parse_args(["--run-dir", "x", "--quick", "--lr", "0.01",
                                                      "--channel-mults", "1,2", "--attention-resolutions", ""]))
    assert cfg.lr == 0.01 and cfg.device == "cpu"
    # (steps and optimizer: two of the preset's values that differ from TrainConfig's defaults)
    assert cfg.steps == QUICK.steps != TrainConfig().steps and cfg.optimizer == QUICK.optimizer != TrainConfig().optimizer
    assert cfg.model.channel_mults == (1, 2) and cfg.model.attention_resolutions == ()
    # The preset's own choices survive where no flag overrides them, the network's included.
    assert cfg.lr_decay == "cosine" and cfg.loss_weighting == "min_snr" and cfg.model.dropout == 0.0
    assert config_from_args(build_parser().parse_args(["--run-dir", "x", "--quick", "--dropout", "0.1"])).model.dropout == 0.1
    assert config_from_args(build_parser().parse_args(["--run-dir", "x"])) == TrainConfig()


def test_train_and_sample_command_lines(tmp_path, monkeypatch):
    import ddpm_core.train.loop as loop_module
    import ddpm_core.train.precision as precision_module

    small = torch.rand(12, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    monkeypatch.setattr(loop_module, "load_training_images", lambda cfg: small)  # no dataset read
    weights, guide = tmp_path / "w.safetensors", tmp_path / "guide.safetensors"
    result = train_main([
        "--run-dir", str(tmp_path / "run"), "--T", "20", "--steps", "2", "--batch-size", "2", "--device", "cpu",
        "--patch-size", "1", "--base-channels", "8", "--channel-mults", "1,2", "--attention-resolutions", "",
        "--num-groups", "4", "--no-progress", "--export", str(weights), "--export-dtype", "float16",
        "--checkpoint-every", "1", "--export-guide", str(guide),
    ])
    assert result.step == 2 and weights.exists()
    info = json.loads(weights.with_suffix(".json").read_text())
    assert info["steps"] == 2 and info["command"].startswith("python -m ddpm_core.train --run-dir")
    guide_info = json.loads(guide.with_suffix(".json").read_text())  # the first checkpoint's EMA weights
    assert guide_info["steps"] == 1 and "guide" in guide_info["role"] and guide_info["command"] == info["command"]
    assert "wall_time_s" not in guide_info  # that is the whole run's, not the guide's
    assert info["autocast"] == ("bfloat16" if precision_module.cpu_has_native_bf16() else "off (float32)")  # what amp="auto" ran
    for source in (weights, tmp_path / "run", list_checkpoints(tmp_path / "run")[-1]):
        for sampler in ("ddpm", "ddim"):
            out = tmp_path / f"{sampler}.png"
            images = sample_main(["--weights", str(source), "--n", "3", "--sampler", sampler, "--num-steps", "4",
                                  "--out", str(out)])
            assert images.shape == (3, 1, 32, 32) and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="weights: .*nothing.bin' does not exist"):
        sample_main(["--weights", str(tmp_path / "nothing.bin"), "--out", str(tmp_path / "x.png")])
    (tmp_path / "other.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="weights must be a .safetensors file, a .pt checkpoint or a run folder"):
        sample_main(["--weights", str(tmp_path / "other.bin"), "--out", str(tmp_path / "x.png")])
    # Autoguidance: the same noise gives other images with --guidance 2; --guidance 1 is the model alone.
    common = ["--weights", str(weights), "--n", "3", "--num-steps", "4", "--out", str(tmp_path / "g.png")]
    alone = sample_main(common)
    assert torch.equal(sample_main(common + ["--guide", str(guide), "--guidance", "1"]), alone)
    assert not torch.equal(sample_main(common + ["--guide", str(guide), "--guidance", "2"]), alone)
    with pytest.raises(ValueError, match="--guide is needed"):
        sample_main(common + ["--guidance", "2"])
    with pytest.raises(ValueError, match="--guidance must be a finite number >= 1"):
        sample_main(common + ["--guide", str(guide), "--guidance", "0.5"])


@pytest.mark.parametrize("argv, message", [
    (["--steps", "-5"], "--steps must be an integer >= 1, got -5"),
    (["--batch-size", "0"], "--batch-size must be an integer >= 1"),
    (["--channel-mults", ","], "--channel-mults must have at least one level"),
    (["--threads", "0"], "--threads must be an integer >= 1"),
    (["--export", "weights.pt"], "--export must name a .safetensors file"),
    (["--export-guide", "guide.bin"], "--export-guide must name a .safetensors file"),
])
def test_train_command_line_names_the_bad_flag(tmp_path, argv, message):
    """Every one is refused before anything is trained or written."""
    with pytest.raises(ValueError, match=message):
        train_main(["--run-dir", str(tmp_path / "run"), "--no-progress"] + argv)
    assert not (tmp_path / "run").exists()


def test_command_lines_print_an_error_not_a_traceback(tmp_path):
    for module, argv, message in [
        ("ddpm_core.train", ["--run-dir", str(tmp_path), "--steps", "-5"], "error: --steps must be an integer >= 1"),
        ("ddpm_core.sample", ["--weights", str(tmp_path / "missing")], "does not exist"),
    ]:
        done = subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True)
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
    shown = subprocess.run([sys.executable, "-m", "ddpm_core.train", "--help"], capture_output=True, text=True).stdout
    assert "(default: 20000)" in shown and "(default: 1,2,2)" in shown  # TrainConfig's and UNetConfig's


def test_bf16_asked_for_on_a_t4_is_refused(monkeypatch):
    """A T4 (compute capability 7.5) only emulates bf16, slowly; torch.cuda.is_bf16_supported() says yes."""
    from ddpm_core.train import resolve_amp

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    with pytest.raises(ValueError, match="amp='bf16' needs a GPU of compute capability 8.0 or newer; this one is 7.5"):
        resolve_amp(TrainConfig(amp="bf16"), torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    assert resolve_amp(TrainConfig(amp="bf16"), torch.device("cuda")) == (torch.bfloat16, False)


@pytest.mark.parametrize("capability, expected", [((7, 5), (torch.float16, True)), ((8, 0), (torch.bfloat16, False))])
def test_auto_amp_picks_fp16_with_scaler_on_a_t4_and_bf16_on_ampere(monkeypatch, capability, expected):
    from ddpm_core.train import resolve_amp

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    cfg = TrainConfig(amp="auto")
    assert resolve_amp(cfg, torch.device("cuda")) == expected


@pytest.mark.parametrize("native, expected", [(True, (torch.bfloat16, False)), (False, (None, False))])
def test_auto_amp_on_a_cpu_is_bf16_only_where_the_cpu_has_it(monkeypatch, native, expected):
    import ddpm_core.train.precision as precision_module

    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: native)
    assert precision_module.resolve_amp(TrainConfig(amp="auto"), torch.device("cpu")) == expected
    assert precision_module.resolve_amp(TrainConfig(amp="off"), torch.device("cpu")) == (None, False)
    assert precision_module.resolve_amp(TrainConfig(amp="bf16"), torch.device("cpu")) == (torch.bfloat16, False)


@pytest.mark.parametrize("module", ["ddpm_core.train", "ddpm_core.sample"])
def test_command_line_modules_run_without_runpy_warning(module):
    # `python -m` must not find the module it runs already imported (runpy's RuntimeWarning that
    # it may run it twice); the flag turns that warning into a failure, and only that kind, so a
    # dependency's deprecation notice cannot break this test.
    done = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", module, "--help"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: python -m {module}")


def test_sampling_and_the_package_do_not_import_training():
    """Sampling, evaluation and the theory need the model and its weights, not the training code."""
    code = ("import sys, ddpm_core, ddpm_core.sample, ddpm_core.evaluation, ddpm_core.weights; "
            "print(sorted(m for m in sys.modules if m.startswith('ddpm_core.train')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    import ddpm_core.train

    assert ddpm_core.train.train is train and ddpm_core.train.RECIPES["quick"] is QUICK


def test_muon_adam_groups_step_like_torch_adam():
    """Muon's groups with use_muon=False take the same steps as torch.optim.Adam."""
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(5, generator=gen)
    grads = [torch.randn(5, generator=gen) for _ in range(4)]
    mine, ref = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    opt_mine = Muon([{"params": [mine], "use_muon": False, "lr": 1e-2}])
    opt_ref = torch.optim.Adam([ref], lr=1e-2)
    for g in grads:
        mine.grad, ref.grad = g.clone(), g.clone()
        opt_mine.step()
        opt_ref.step()
    assert not torch.equal(mine.detach(), start)
    torch.testing.assert_close(mine.detach(), ref.detach(), rtol=1e-6, atol=1e-7)


def test_newton_schulz_on_a_batch_equals_one_matrix_at_a_time():
    G = torch.randn(3, 32, 144, generator=torch.Generator().manual_seed(1))
    batch = newton_schulz_orthogonalize(G)
    torch.testing.assert_close(batch, torch.stack([newton_schulz_orthogonalize(g) for g in G]), rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- from a mutation audit


def test_ema_first_updates_follow_the_formula():
    """theta_ema <- d_n theta_ema + (1 - d_n) theta, d_n = min(decay, (1 + n) / (10 + n)), after
    each of the first updates, while the initial weights still weigh a lot (after 30 updates, as in
    test_ema_matches_closed_form, both d and 1 - d give the same limit)."""
    for decay in (0.9, 0.2):  # 0.2: the cap min(decay, .) bites from n = 2 on
        model = torch.nn.Linear(2, 1)
        ema = EMA(model, decay=decay)
        expected = model.weight.detach().clone()
        for n in range(12):
            with torch.no_grad():
                model.weight.fill_(float(n + 1))
            d = min(decay, (1 + n) / (10 + n))
            assert ema.current_decay() == pytest.approx(d)
            ema.update(model)
            expected = d * expected + (1 - d) * (n + 1)
            torch.testing.assert_close(ema.shadow["weight"], expected)


def test_ema_follows_the_optimizer_step_and_reaches_the_result(tmp_path, images):
    """With ema_decay=0 every update copies the weights, so the EMA of the last checkpoint equals the
    weights the last optimizer step made (an update before the step would lag one step); and
    TrainResult.ema_model holds the EMA weights."""
    result = train(replace(TINY, ema_decay=0.0), tmp_path, progress=False, images=images)
    ckpt = load_checkpoint(result.checkpoint)
    for name, value in ckpt["ema"]["shadow"].items():
        assert torch.equal(value, ckpt["model"][name]), name
    for run_cfg, folder in ((replace(TINY, ema_decay=0.0), tmp_path), (TINY, tmp_path / "default")):
        result = train(run_cfg, folder, progress=False, images=images)
        shadow = load_checkpoint(result.checkpoint)["ema"]["shadow"]
        for name, p in result.ema_model.named_parameters():
            assert torch.equal(p.detach(), shadow[name]), name


def test_train_uses_its_configuration_at_every_step(tmp_path, images, monkeypatch):
    """Step n runs at lr_at(n) (times muon_lr / lr for the Muon group) with the configured loss,
    weighting, gamma and clipping; metrics.jsonl logs the same rate."""
    import ddpm_core.train.loop as loop_module

    seen = []

    def recording_step(model, schedule, optimizer, x0, **kwargs):
        seen.append(([g["lr"] for g in optimizer.param_groups], kwargs))
        return training_step(model, schedule, optimizer, x0, **kwargs)

    monkeypatch.setattr(loop_module, "training_step", recording_step)
    cfg = replace(TINY, optimizer="muon", muon_lr=0.02, warmup_steps=2, lr_decay="cosine", log_every=1,
                  loss_type="l1", loss_weighting="min_snr", min_snr_gamma=2.0, grad_clip=0.5)
    train(cfg, tmp_path, progress=False, images=images)
    assert len(seen) == cfg.steps
    for n, (lrs, kwargs) in enumerate(seen, start=1):
        assert lrs == pytest.approx([lr_at(n, cfg) * cfg.muon_lr / cfg.lr, lr_at(n, cfg)]), n
        assert (kwargs["loss_type"], kwargs["loss_weighting"], kwargs["min_snr_gamma"], kwargs["grad_clip"]) == \
            ("l1", "min_snr", 2.0, 0.5)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in rows] == pytest.approx([lr_at(n, cfg) for n in range(1, cfg.steps + 1)])


def test_gradient_clipping_bounds_the_step(images):
    """SGD at lr 1 moves the weights by the gradient clipped to norm grad_clip."""
    schedule = NoiseSchedule.linear(50)
    torch.manual_seed(0)
    model = UNet(replace(TINY_NET, dropout=0.0))
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    training_step(model, schedule, optimizer, images[:4], grad_clip=1e-3)
    moved = torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before)])
    assert float(moved.norm()) == pytest.approx(1e-3, rel=1e-3)


def test_gradient_scaler_unscales_before_clipping(images):
    """With a finite power-of-two scale and no overflow, the scaled step equals the unscaled one:
    the clipping threshold applies to the true gradient, not to scale * gradient."""
    schedule = NoiseSchedule.linear(50)
    after = []
    for scaler in (None, torch.amp.GradScaler("cpu", init_scale=2.0**10)):
        torch.manual_seed(0)
        model = UNet(replace(TINY_NET, dropout=0.0))
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        torch.manual_seed(1)
        training_step(model, schedule, optimizer, images[:4], grad_clip=1e-3, scaler=scaler)
        after.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    torch.testing.assert_close(after[1], after[0], rtol=1e-6, atol=1e-9)


def test_training_step_refuses_an_infinite_gradient_and_leaves_weights():
    """Without a scaler, a finite loss with an infinite gradient stops before the optimizer step."""

    class SqrtModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x, t):
            return x * 0 + self.w.sqrt()  # output 0, derivative +inf at w = 0

    model = SqrtModel()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(NonFiniteLossError, match="gradient norm"):
        training_step(model, NoiseSchedule.linear(50), optimizer, torch.zeros(2, 1, 4, 4), grad_clip=0.0)
    assert float(model.w.detach()) == 0.0


def test_running_a_finished_run_again_changes_nothing(tmp_path, images):
    """Re-running the command of a finished run (a notebook run twice) loads its last checkpoint
    and returns it, writing nothing."""
    first = train(TINY, tmp_path, progress=False, images=images)
    files = {p.name: p.read_bytes() for p in (tmp_path / "checkpoints").iterdir()}
    metrics = (tmp_path / "metrics.jsonl").read_text()
    again = train(TINY, tmp_path, progress=False, images=images)
    assert again.step == TINY.steps and again.checkpoint == first.checkpoint
    assert again.final_loss == first.final_loss
    assert {p.name: p.read_bytes() for p in (tmp_path / "checkpoints").iterdir()} == files
    assert (tmp_path / "metrics.jsonl").read_text() == metrics
    for a, b in zip(first.ema_model.state_dict().values(), again.ema_model.state_dict().values()):
        assert torch.equal(a, b)


def test_resume_may_change_keep_checkpoints(tmp_path, images):
    """keep_checkpoints is in RESUMABLE_CHANGES: a resumed session may start pruning."""
    train(replace(TINY, steps=3, checkpoint_every=1), tmp_path, progress=False, images=images)
    result = train(replace(TINY, checkpoint_every=1, keep_checkpoints=1), tmp_path, progress=False, images=images)
    assert result.step == 6
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_0000001.pt", "step_0000006.pt"]


def test_config_differences_reads_missing_network_fields_as_defaults():
    """A checkpoint written before a UNetConfig field existed resumes as if it held the default."""
    saved = TINY.to_dict()
    del saved["model"]["image_size"]  # TINY_NET leaves it at its default
    assert config_differences(saved, TINY) == []
    assert config_differences(saved, replace(TINY, model=replace(TINY_NET, image_size=16))) == ["model.image_size: 32 != 16"]


def _touch(path):  # module level, so that pickle refers to it by name
    Path(path).touch()


class _RunsCodeWhenUnpickled:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return _touch, (self.path,)


def test_a_checkpoint_holding_pickled_code_is_refused_not_run(tmp_path, images):
    """weights_only=True: a checkpoint that would call a function when unpickled is not read, by
    load_checkpoint, by a resumed train() or by the sampler, and the function never runs."""
    train(replace(TINY, steps=3), tmp_path, progress=False, images=images)
    (path,) = list_checkpoints(tmp_path)
    marker = tmp_path / "code_ran"
    ckpt = load_checkpoint(path)
    ckpt["payload"] = _RunsCodeWhenUnpickled(str(marker))
    torch.save(ckpt, path)
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(path)
    with pytest.warns(UserWarning, match="skipping checkpoint"), pytest.raises(ValueError, match="can be read"):
        train(TINY, tmp_path, progress=False, images=images)
    with pytest.raises(pickle.UnpicklingError):
        load_weights(path)
    assert not marker.exists()


def test_muon_step_is_the_formula():
    """M <- mu M + (1 - mu) G, D = (1 - mu) G + mu M (Nesterov), W <- W - lr sqrt(max(1, out/in)) NS(D),
    over two steps, for a tall matrix, a wide one and a convolution's filters (out, in * k * k)."""
    gen = torch.Generator().manual_seed(0)
    mu, lr = 0.95, 0.02
    for shape in ((12, 4), (4, 12), (6, 2, 3, 3)):
        W = torch.nn.Parameter(torch.randn(*shape, generator=gen))
        expected, M = W.detach().clone(), torch.zeros(shape)
        opt = Muon([{"params": [W], "use_muon": True, "lr": lr}], momentum=mu)
        for _ in range(2):
            G = torch.randn(*shape, generator=gen)
            W.grad = G.clone()
            opt.step()
            M = mu * M + (1 - mu) * G
            D = ((1 - mu) * G + mu * M).reshape(shape[0], -1)
            scale = max(1.0, D.shape[0] / D.shape[1]) ** 0.5
            expected = expected - lr * scale * newton_schulz_orthogonalize(D).view(shape)
        torch.testing.assert_close(W.detach(), expected, rtol=1e-5, atol=1e-5)


def test_exported_and_sampled_weights_are_the_ema(tmp_path, images):
    """export_checkpoint and sample.load_weights (run folder: its newest checkpoint; a .pt file)
    give the EMA weights of the checkpoint, not the raw ones, nor another checkpoint's."""
    run = tmp_path / "run"
    train(TINY, run, progress=False, images=images)
    first, newest = list_checkpoints(run)
    export_checkpoint(newest, tmp_path / "w.safetensors")
    exported, info = load_model(tmp_path / "w.safetensors")
    assert info["steps"] == TINY.steps and info["train_config"] == TINY.to_dict()
    for net, ckpt_path in ((exported, newest), (load_weights(run)[0], newest), (load_weights(first)[0], first)):
        ckpt = load_checkpoint(ckpt_path)
        assert not all(torch.equal(ckpt["ema"]["shadow"][n], ckpt["model"][n]) for n in ckpt["ema"]["shadow"])
        for name, p in net.named_parameters():
            assert torch.equal(p.detach(), ckpt["ema"]["shadow"][name]), (ckpt_path.name, name)


@pytest.mark.skipif(not PRETRAINED.exists(), reason="no shipped weights")
def test_sample_command_line_passes_eta_and_checks_n(tmp_path):
    """--eta reaches the DDIM sampler (default 1); --n < 1 is refused with the flag's name."""
    from ddpm_core.ddim import ddim_sample_loop

    model, schedule = load_pretrained()
    common = ["--n", "2", "--num-steps", "3", "--out", str(tmp_path / "s.png")]
    for flags, eta in (([], 1.0), (["--eta", "0"], 0.0), (["--eta", "0.5"], 0.5)):
        expected = ddim_sample_loop(schedule, model, (2, 1, 32, 32), num_steps=3, eta=eta,
                                    generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(sample_main(common + flags), expected, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="--n must be an integer >= 1"):
        sample_main(["--n", "0", "--out", str(tmp_path / "x.png")])
    assert not (tmp_path / "x.png").exists()


def test_sample_refuses_a_guide_with_another_schedule(tmp_path):
    torch.manual_seed(0)
    model = UNet(TINY_NET)
    save_model(model, TINY_NET, tmp_path / "w.safetensors", {"train_config": TINY.to_dict()})
    save_model(model, TINY_NET, tmp_path / "g.safetensors", {"train_config": replace(TINY, schedule="cosine").to_dict()})
    with pytest.raises(ValueError, match="--guide was trained with another noise schedule"):
        sample_main(["--weights", str(tmp_path / "w.safetensors"), "--guide", str(tmp_path / "g.safetensors"),
                     "--guidance", "2", "--n", "1", "--num-steps", "2", "--out", str(tmp_path / "x.png")])


def test_non_finite_weights_after_a_finite_loss_are_not_checkpointed(tmp_path, images, monkeypatch):
    """A step whose loss was finite can still leave a non-finite weight (an overflowing update,
    simulated here after step 6). The run stops instead of writing that checkpoint; step 3's stays
    the newest."""
    import ddpm_core.train.loop as loop_module

    losses = []

    def overflowing_step(model, schedule, optimizer, x0, **kwargs):
        losses.append(training_step(model, schedule, optimizer, x0, **kwargs))
        if len(losses) == TINY.steps:
            with torch.no_grad():
                next(model.parameters()).view(-1)[0] = math.inf
        return losses[-1]

    monkeypatch.setattr(loop_module, "training_step", overflowing_step)
    with pytest.raises(NonFiniteLossError, match="non-finite weights at step 6"):
        train(TINY, tmp_path, progress=False, images=images)
    assert all(math.isfinite(loss) for loss in losses)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_0000003.pt"]
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))
