"""The GPU check: does the training chapter's code path work on a CUDA GPU, and how fast is each precision setting?

Everything here calls what the chapter calls (:func:`ddpm_core.train.train`,
:func:`ddpm_core.reverse.p_sample_loop`, :func:`ddpm_core.ddim.ddim_sample_loop`), with the
chapter's GPU recipe :data:`ddpm_core.train.FULL` (``ddpm_core``'s default U-Net, batch 128,
Min-SNR weighting) on the 4,500 offline digits (the speed of a step does not depend on the data
source) and the step counts of this script.

* **Throughput**: one short training run per setting; ``amp="fp16"`` is the path a T4 takes
  (fp16 with a gradient scaler), ``"bf16"`` the one of cards of compute capability 8.0 or
  newer. Images per second is the median over the logged windows after the first (which
  holds the warm-up, and with ``torch.compile`` the compilation).
* **Resumption**: 40 steps in one call against 20 + 20 in two calls, for bf16 and for fp16
  with its scaler, reporting the largest weight difference. On a GPU it need not be 0:
  cuDNN may pick non-deterministic kernels.
* **Sampling cost**: the 1000-step chain of Algorithm 2 and 50-step DDIM, batches 1 and 64.

Needs a CUDA GPU. Writes JSON (default ``benchmarks/results/gpu_check.json``, for the default
settings only; ``gpu_run.sh`` writes it to ``$OUT``) and prints a table. ``--smoke`` runs every
part on the CPU instead, with a tiny network, few steps and float32 in place of each precision
setting, so that the script itself is tested without a GPU (``tests/test_benchmarks.py`` does);
its numbers mean nothing.

    python benchmarks/gpu_check.py
    python benchmarks/gpu_check.py --smoke --out /tmp/gpu_check_smoke.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # ddpm_core without installing it

from ddpm_core.data import load_mnist_5k  # noqa: E402
from ddpm_core.ddim import ddim_sample_loop  # noqa: E402
from ddpm_core.reverse import p_sample_loop  # noqa: E402
from ddpm_core.train import FULL, TrainConfig, make_schedule, train  # noqa: E402
from ddpm_core.unet import UNet, UNetConfig, count_parameters  # noqa: E402

from machine import out_path  # noqa: E402  (benchmarks/machine.py)

# The chapter's GPU recipe on the offline digits, on the GPU, writing no checkpoints or previews;
# each part below sets its own number of steps.
GPU_CHECK = dataclasses.replace(FULL, data="offline", device="cuda", checkpoint_every=0, keep_checkpoints=0,
                                log_every=50, sample_every=0)

SMOKE = dataclasses.replace(  # --smoke: the same parts on the CPU, in seconds
    GPU_CHECK, T=50, batch_size=8, device="cpu", amp="off", channels_last=False, warmup_steps=2, log_every=2,
    model=UNetConfig(base_channels=8, channel_mults=(1, 2), attention_resolutions=(), num_groups=4),
)

SETTINGS = {  # name: fields replaced in GPU_CHECK
    "fp32": dict(amp="off", channels_last=False),
    "tf32": dict(amp="off", channels_last=False),  # float32 with TensorFloat-32 matrix units
    "fp16+scaler": dict(amp="fp16", channels_last=False),
    "fp16+scaler, channels_last": dict(amp="fp16"),
    "bf16": dict(amp="bf16", channels_last=False),
    "bf16, channels_last": dict(amp="bf16"),
    "bf16, channels_last, compile": dict(amp="bf16", compile=True),
}


def synchronize(cfg: TrainConfig) -> None:
    if cfg.device == "cuda":
        torch.cuda.synchronize()


def throughput(base: TrainConfig, name: str, steps: int, images: torch.Tensor) -> dict:
    fields = SETTINGS[name] if base.device == "cuda" else {**SETTINGS[name], "amp": "off", "compile": False}
    cfg = dataclasses.replace(base, steps=steps, **fields)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = name == "tf32"
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        result = train(cfg, run_dir, progress=False, images=images)
        synchronize(cfg)
        total = time.perf_counter() - start
        rows = [json.loads(line) for line in Path(run_dir, "metrics.jsonl").read_text().splitlines()]
    speeds = [r["images_per_s"] for r in rows[1:]]
    median = statistics.median(speeds)
    return {"setting": name, "steps": steps, "images_per_s": median, "ms_per_step": 1000 * cfg.batch_size / median,
            "first_window_images_per_s": rows[0]["images_per_s"], "total_s": total, "final_loss": result.final_loss}


def resumption(base: TrainConfig, amp: str, images: torch.Tensor) -> dict:
    # A constant rate after the warm-up: with lr_decay="cosine" the rate depends on steps, and
    # train() refuses to resume a 20-step run as a 40-step one.
    cfg = dataclasses.replace(base, steps=40, batch_size=min(32, base.batch_size), warmup_steps=5, lr_decay="none",
                              amp=amp if base.device == "cuda" else "off", log_every=10, checkpoint_every=10)
    with tempfile.TemporaryDirectory() as once_dir, tempfile.TemporaryDirectory() as split_dir:
        once = train(cfg, once_dir, progress=False, images=images)
        train(dataclasses.replace(cfg, steps=20), split_dir, progress=False, images=images)
        resumed = train(cfg, split_dir, progress=False, images=images)
        diff = {
            name: max(float((a - b).abs().max()) for a, b in zip(getattr(once, name).state_dict().values(),
                                                                  getattr(resumed, name).state_dict().values()))
            for name in ("model", "ema_model")
        }
    return {"amp": amp, "steps": "40 vs 20 + 20", "max_abs_diff_model": diff["model"],
            "max_abs_diff_ema": diff["ema_model"], "final_loss_once": once.final_loss,
            "final_loss_resumed": resumed.final_loss}


def sampling_cost(base: TrainConfig, batch: int) -> list[dict]:
    schedule = make_schedule(base)
    model = UNet(base.model).to(base.device).eval()
    rows = []
    for name, run in (
        (f"ddpm {schedule.T} steps", lambda g: p_sample_loop(schedule, model, (batch, 1, 32, 32), generator=g)),
        ("ddim 50 steps", lambda g: ddim_sample_loop(schedule, model, (batch, 1, 32, 32), num_steps=50, eta=1.0,
                                                     generator=g)),
    ):
        with torch.no_grad():
            run(torch.Generator(device=base.device).manual_seed(0))  # warm-up
            synchronize(base)
            start = time.perf_counter()
            run(torch.Generator(device=base.device).manual_seed(1))
            synchronize(base)
        seconds = time.perf_counter() - start
        rows.append({"sampler": name, "batch": batch, "seconds": seconds, "ms_per_image": 1000 * seconds / batch})
    return rows


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=400, help="training steps per eager setting (default 400)")
    p.add_argument("--compile-steps", type=int, default=600, help="training steps with torch.compile")
    p.add_argument("--skip", default="", help="comma-separated settings to leave out")
    p.add_argument("--smoke", action="store_true", help="run every part on the CPU with a tiny network (tests the script)")
    p.add_argument("--out", help="the JSON record (default, for the default settings only: "
                                 "benchmarks/results/gpu_check.json)")
    args = p.parse_args(argv)
    out = out_path(p, args, "gpu_check.json")
    if args.smoke:
        torch.set_num_threads(1)  # tiny tensors: more threads only wait on each other
        base, gpu_name, capability = SMOKE, "none (--smoke: CPU, tiny network)", "-"
    elif not torch.cuda.is_available():
        raise SystemExit("gpu_check.py needs a CUDA GPU (torch.cuda.is_available() is False); --smoke runs it on the CPU")
    else:
        base, gpu = GPU_CHECK, torch.cuda.get_device_properties(0)
        gpu_name, capability = gpu.name, f"{gpu.major}.{gpu.minor}"
    record = {
        "gpu": gpu_name, "compute_capability": capability, "torch": torch.__version__,
        "cuda": torch.version.cuda, "parameters": count_parameters(UNet(base.model)),
        "date": time.strftime("%Y-%m-%d"), "throughput": [], "resumption": [], "sampling": [],
    }
    def save() -> None:
        out.write_text(json.dumps(record, indent=2) + "\n")

    images, _ = load_mnist_5k("train")
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    for amp in ("bf16", "fp16"):
        record["resumption"].append(resumption(base, amp, images))
        print(record["resumption"][-1], flush=True)
        save()
    for batch in ((1, 2) if args.smoke else (1, 64)):
        record["sampling"] += sampling_cost(base, batch)
        print(record["sampling"][-2:], flush=True)
        save()
    for name in SETTINGS:
        if name in skip:
            continue
        steps = args.compile_steps if "compile" in name else args.steps
        record["throughput"].append(throughput(base, name, steps, images))
        print(record["throughput"][-1], flush=True)
        save()

    print(f"\n{record['gpu']} (compute capability {record['compute_capability']}), torch {record['torch']}")
    print("| setting | images/s | ms/step | first window images/s |\n| --- | ---: | ---: | ---: |")
    for r in record["throughput"]:
        print(f"| {r['setting']} | {r['images_per_s']:,.0f} | {r['ms_per_step']:.1f} | {r['first_window_images_per_s']:,.0f} |")
    return record


if __name__ == "__main__":
    main()
