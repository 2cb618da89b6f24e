"""Pinned results: what training and sampling compute, recorded once and compared ever after.

Moving code between modules must not change a single number. These tests compare two short
training runs (Adam and Muon, in float64), both sampling loops, and the resumption of a
checkpoint written by an earlier version of the package, with references stored in
``tests/data/pinned/``. Float64 keeps the comparison meaningful across CPUs: the kernels of
two CPUs differ in the last bits, far below the tolerance used here, while any change to
what is computed (another random draw, another order of operations in the loss, another
learning rate) moves the weights by many orders of magnitude more.

The references are written by ``python tests/test_pinned.py``; run it only when a change of
the numbers is intended, and say so in the commit.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from ddpm_core.ddim import ddim_sample_loop
from ddpm_core.reverse import p_sample_loop
from ddpm_core.sample import load_weights
from ddpm_core.schedules import NoiseSchedule
from ddpm_core.train import TrainConfig, train
from ddpm_core.unet import UNet, UNetConfig

DATA = Path(__file__).parent / "data" / "pinned"
REFERENCES = DATA / "references.pt"
OLD_CHECKPOINT = DATA / "adam_step_0000003.pt"  # written by ddpm_core 0.2.0

NET = UNetConfig(patch_size=1, base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
                 attention_resolutions=(16,), num_groups=4, dropout=0.1)
RUNS = {
    "adam": TrainConfig(T=50, batch_size=4, lr=1e-3, warmup_steps=2, steps=6, checkpoint_every=3, log_every=2,
                        amp="off", device="cpu", model=NET),
    "muon": TrainConfig(T=50, schedule="cosine", batch_size=4, lr=2e-3, optimizer="muon", muon_lr=0.02,
                        warmup_steps=2, lr_decay="cosine", loss_weighting="min_snr", loss_type="l1", steps=6,
                        checkpoint_every=3, log_every=2, amp="off", device="cpu", model=NET),
}
TOLERANCE = dict(rtol=1e-9, atol=1e-12)
# Muon orthogonalises its updates in float32 whatever the weights' dtype, so the last bits of
# float32 matrix products, which differ between CPUs, reach the weights (1.7e-7 at most after
# six steps between AVX-512 and AVX2 kernels); one Muon step moves a weight by about 1e-3.
MUON_TOLERANCE = dict(rtol=1e-4, atol=1e-6)


@contextlib.contextmanager
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def training_images() -> torch.Tensor:
    return (torch.rand(16, 1, 32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1)


def run(name: str, run_dir: Path) -> dict[str, torch.Tensor]:
    """Train the pinned run ``name`` in float64; its model and EMA weights, and its logged losses."""
    with float64():
        result = train(RUNS[name], run_dir, progress=False, images=training_images())
    losses = [float(line.split('"loss": ')[1].split(",")[0]) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {
        **{f"model.{k}": v for k, v in result.model.state_dict().items()},
        **{f"ema.{k}": v for k, v in result.ema_model.state_dict().items()},
        "losses": torch.tensor(losses, dtype=torch.float64),
    }


def sampled(ema_weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Both sampling loops, from the adam run's EMA weights, in float64."""
    with float64():
        model = UNet(NET)
        model.load_state_dict(ema_weights)
        model.eval()
        schedule = NoiseSchedule.linear(50)
        shape = (2, 1, 32, 32)
        ddpm = p_sample_loop(schedule, model, shape, generator=torch.Generator().manual_seed(1))
        ddim = ddim_sample_loop(schedule, model, shape, num_steps=10, eta=1.0, generator=torch.Generator().manual_seed(2))
    return {"ddpm": ddpm, "ddim": ddim}


def ema_of(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k.removeprefix("ema."): v for k, v in weights.items() if k.startswith("ema.")}


def assert_same(found: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], tolerance: dict = TOLERANCE) -> None:
    assert sorted(found) == sorted(expected)
    for key, value in expected.items():
        assert found[key].dtype == value.dtype, key
        torch.testing.assert_close(found[key], value, **tolerance, msg=lambda m: f"{key}: {m}")


@pytest.fixture(scope="module")
def references() -> dict[str, torch.Tensor]:
    return torch.load(REFERENCES, weights_only=True)


def with_prefix(refs: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k.removeprefix(prefix): v for k, v in refs.items() if k.startswith(prefix)}


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", sorted(RUNS))
def test_training_run_is_pinned(name, references, tmp_path):
    tolerance = MUON_TOLERANCE if RUNS[name].optimizer == "muon" else TOLERANCE
    assert_same(run(name, tmp_path / name), with_prefix(references, f"{name}/"), tolerance)


@pytest.mark.usefixtures("one_thread")
def test_sampling_loops_are_pinned(references):
    weights = ema_of(with_prefix(references, "adam/"))
    assert_same(sampled(weights), with_prefix(references, "samples/"))


@pytest.mark.usefixtures("one_thread")
def test_old_checkpoint_loads_and_resumes_to_the_pinned_weights(references, tmp_path):
    run_dir = tmp_path / "adam"
    (run_dir / "checkpoints").mkdir(parents=True)
    shutil.copy(OLD_CHECKPOINT, run_dir / "checkpoints" / "step_0000003.pt")
    with float64():
        model, schedule = load_weights(OLD_CHECKPOINT)
    saved = torch.load(OLD_CHECKPOINT, weights_only=True)
    assert_same(model.state_dict(), saved["ema"]["shadow"] | {k: v for k, v in saved["model"].items() if k not in saved["ema"]["shadow"]})
    assert torch.equal(schedule.betas, NoiseSchedule.linear(50).betas)
    expected = with_prefix(references, "adam/")
    found = run("adam", run_dir)
    # The resumed session logs step 4 alone (its window began at the checkpoint) and steps 5-6.
    found["losses"], expected["losses"] = found["losses"][-1:], expected["losses"][-1:]
    assert_same(found, expected)


def write_references() -> None:
    """Write tests/data/pinned/ anew from the package as it is now."""
    import tempfile

    torch.set_num_threads(1)
    DATA.mkdir(parents=True, exist_ok=True)
    refs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in RUNS:
            refs |= {f"{name}/{k}": v for k, v in run(name, Path(tmp) / name).items()}
        shutil.copy(Path(tmp) / "adam" / "checkpoints" / "step_0000003.pt", OLD_CHECKPOINT)
    refs |= {f"samples/{k}": v for k, v in sampled(ema_of(with_prefix(refs, "adam/"))).items()}
    torch.save(refs, REFERENCES)
    print(f"wrote {REFERENCES} ({len(refs)} tensors) and {OLD_CHECKPOINT}")


if __name__ == "__main__":
    write_references()
