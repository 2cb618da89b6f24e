"""Sample quality against CPU training time: how good are the digits after 3 and 10 minutes?

Trains ddpm_core's U-Net with :func:`ddpm_core.train.train` on the 4,500 offline training
digits (``load_mnist_5k("train")``), with the CPU recipe ``ddpm_core.train.QUICK`` unless
flags change it. Training runs in chunks of ``--chunk-steps`` steps; each chunk resumes
from the previous chunk's checkpoint (so the run is the same as one uninterrupted run).
Sampling and scoring are not counted as training time.

The clock (``--clock``) is the process's CPU time by default (``time.process_time`` around
the ``train`` calls, checkpoint loading and saving included). On a machine shared with other
jobs, wall-clock time mostly measures the other jobs; with one torch thread, CPU time is what
the wall clock would show on an idle machine. ``--clock wall`` uses
``TrainResult.wall_time_s`` instead. Both are recorded either way.
When the clock passes each of ``--minutes`` (default 3 and 10), the EMA weights generate
``--n`` digits (DDIM, ``--ddim-steps`` steps, eta = 0, x0 clipped to [-1, 1]) and
:func:`ddpm_core.evaluation.quality_with_controls` scores them:

* ``fd``: Frechet distance, in the shipped classifier's feature space, between the
  generated digits and the 500 held-out test digits (``load_mnist_5k("test")``, never
  trained on);
* ``fd_real_floor``: the same distance between 500 real training digits and those test
  digits: what a perfect sampler would score with this many images;
* ``fd_noise``: the same for pure noise: what a sampler that learned nothing would score.

Targets on two CPU cores: ``fd`` within 3x the floor after 3 minutes, within 1.5x after 10.
The 1-minute load average is sampled after every chunk and recorded.

Prints a Markdown table, writes ``benchmarks/results/time_to_quality.json`` and a grid of
64 generated digits per evaluation (``time_to_quality_<minutes>min.png``).

    .venv/bin/python benchmarks/time_to_quality.py            # the recorded run (~15-25 min)
    .venv/bin/python benchmarks/time_to_quality.py --minutes 1 --n 100 --ddim-steps 20   # smoke test
    .venv/bin/python benchmarks/time_to_quality.py --score-shipped --out benchmarks/results/time_to_quality_shipped.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from ddpm_core.data import load_mnist_5k
from ddpm_core.ddim import ddim_sample_loop
from ddpm_core.evaluation import load_classifier, quality_with_controls
from ddpm_core.plotting import image_grid, png_bytes
from ddpm_core.train import PRETRAINED, QUICK, TrainConfig, load_pretrained, make_schedule, train
from ddpm_core.unet import UNet, UNetConfig, count_parameters

from machine import machine  # benchmarks/machine.py: what the numbers were measured on

RESULTS = Path(__file__).resolve().parent / "results"


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())


def build_config(args: argparse.Namespace) -> TrainConfig:
    """ddpm_core.train.QUICK (the CPU recipe), then every flag given."""
    values = {k: v for k, v in QUICK.items() if k not in ("steps", "checkpoint_every", "log_every")}
    for name in ("batch_size", "lr", "warmup_steps", "ema_decay"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    model = {}
    for name in ("patch_size", "base_channels", "num_res_blocks", "channel_mults", "attention_resolutions", "dropout"):
        if getattr(args, name) is not None:
            model[name] = getattr(args, name)
    return TrainConfig(**values, steps=args.chunk_steps, checkpoint_every=0, log_every=args.chunk_steps,
                       model=UNetConfig(**model))


@torch.no_grad()
def generate(model: torch.nn.Module, cfg: TrainConfig, n: int, ddim_steps: int, seed: int) -> torch.Tensor:
    """``n`` digits from the EMA model with deterministic DDIM (x0 clipped), in batches of 250."""
    schedule = make_schedule(cfg)
    generator = torch.Generator().manual_seed(seed)
    size, channels = cfg.model.image_size, cfg.model.image_channels
    out = []
    for start in range(0, n, 250):
        b = min(250, n - start)
        out.append(ddim_sample_loop(schedule, model, (b, channels, size, size), ddim_steps, eta=0.0,
                                    clip_x0=True, generator=generator))
    return torch.cat(out)


def score_shipped(args: argparse.Namespace, info: dict, test_images: torch.Tensor, real_b: torch.Tensor,
                  classifier: torch.nn.Module, out: Path) -> dict:
    """The same measurement for the EMA weights shipped in ddpm_core/assets (no training)."""
    model, _ = load_pretrained()
    card = json.loads(PRETRAINED.with_suffix(".json").read_text())
    cfg = TrainConfig.from_dict(card["train_config"])
    samples = generate(model, cfg, args.n, args.ddim_steps, seed=1)
    report = quality_with_controls(samples, test_images, real_b, classifier, generator=torch.Generator().manual_seed(0))
    grid = out.with_name(f"{out.stem}.png")
    grid.write_bytes(png_bytes(image_grid(samples[:64], nrow=8)))
    print(f"\nThe shipped model ({card.get('steps')} steps: {card.get('command')}); {args.n} DDIM-{args.ddim_steps} "
          f"samples (EMA) vs the 500 held-out test digits\n")
    print("| steps | FD | floor | FD / floor | pure noise | classes (bits) | confident |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(f"| {card.get('steps')} | {report['fd']:.2f} | {report['fd_real_floor']:.2f} | "
          f"{report['fd'] / report['fd_real_floor']:.2f} | {report['fd_noise']:.1f} | "
          f"{report['class_entropy'] + 0.0:.2f} | {report['confident_share']:.2f} |")
    record = {
        "benchmark": "time_to_quality (shipped model)",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python benchmarks/time_to_quality.py " + " ".join(sys.argv[1:]),
        "machine": info,
        "weights": str(PRETRAINED.relative_to(PRETRAINED.parents[2])),
        "weights_card": {k: card.get(k) for k in ("steps", "command", "wall_time_s", "machine", "date")},
        "n_generated": args.n,
        "ddim_steps": args.ddim_steps,
        "report": report,
        "fd_over_floor": report["fd"] / report["fd_real_floor"],
        "grid": grid.name,
    }
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nwrote {out}")
    return record


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--minutes", default="3,10", help="comma-separated training times to evaluate at")
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                   help="what --minutes counts: this process's CPU time (default) or wall-clock time")
    p.add_argument("--chunk-steps", type=int, default=25, help="steps per train() call (resumed in between)")
    p.add_argument("--n", type=int, default=500, help="generated digits per evaluation")
    p.add_argument("--ddim-steps", type=int, default=100)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--warmup-steps", type=int)
    p.add_argument("--ema-decay", type=float)
    p.add_argument("--patch-size", type=int)
    p.add_argument("--base-channels", type=int)
    p.add_argument("--num-res-blocks", type=int)
    p.add_argument("--channel-mults", type=_ints, help="comma-separated, e.g. 1,2,2")
    p.add_argument("--attention-resolutions", type=_ints, help="comma-separated grid sizes, '' for none")
    p.add_argument("--dropout", type=float)
    p.add_argument("--score-shipped", action="store_true",
                   help="no training: score the model shipped in ddpm_core/assets the same way")
    p.add_argument("--classifier", help="classifier weights (default: the one shipped in ddpm_core/assets)")
    p.add_argument("--run-dir", help="keep the run here (default: a temporary folder, deleted at the end)")
    p.add_argument("--out", default=str(RESULTS / "time_to_quality.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    info = machine()
    cfg = build_config(args)
    targets = sorted(float(m) * 60 for m in args.minutes.split(","))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    train_images, _ = load_mnist_5k("train")
    test_images, _ = load_mnist_5k("test")
    # The floor's second real set: as many training digits as generated ones, disjoint from the test digits.
    perm = torch.randperm(train_images.shape[0], generator=torch.Generator().manual_seed(0))
    real_b = train_images[perm[: args.n]]
    classifier = load_classifier(args.classifier) if args.classifier else load_classifier()

    if args.score_shipped:
        return score_shipped(args, info, test_images, real_b, classifier, out)

    run_dir = Path(args.run_dir) if args.run_dir else Path(tempfile.mkdtemp(prefix="ttq_"))
    evaluations, loads = [], []
    steps, train_cpu_s = 0, 0.0
    started = time.perf_counter()
    try:
        while targets:
            steps += args.chunk_steps
            cpu0 = time.process_time()
            result = train(dataclasses.replace(cfg, steps=steps), run_dir, progress=False, images=train_images)
            train_cpu_s += time.process_time() - cpu0
            loads.append(os.getloadavg()[0])
            clock = train_cpu_s if args.clock == "cpu" else result.wall_time_s
            if clock < targets[0]:
                continue
            minutes = targets.pop(0) / 60
            t0, cpu0 = time.perf_counter(), time.process_time()
            samples = generate(result.ema_model, cfg, args.n, args.ddim_steps, seed=1)
            sample_s, sample_cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
            report = quality_with_controls(samples, test_images, real_b, classifier,
                                           generator=torch.Generator().manual_seed(0))
            grid = out.with_name(f"{out.stem}_{minutes:g}min.png")
            grid.write_bytes(png_bytes(image_grid(samples[:64], nrow=8)))
            row = {
                "target_minutes": minutes,
                "clock": args.clock,
                "training_cpu_s": round(train_cpu_s, 1),
                "training_wall_s": round(result.wall_time_s, 1),
                "steps": result.step,
                "images_seen": result.step * cfg.batch_size,
                "loss_last_window": result.final_loss,
                "fd": report["fd"],
                "fd_real_floor": report["fd_real_floor"],
                "fd_over_floor": report["fd"] / report["fd_real_floor"],
                "fd_noise": report["fd_noise"],
                "class_entropy_bits": report["class_entropy"],
                "confident_share": report["confident_share"],
                "class_counts": report["class_counts"],
                "sampling_wall_s": round(sample_s, 1),
                "sampling_cpu_s": round(sample_cpu_s, 1),
                "load_average_1_min_during_training": {
                    "mean": round(sum(loads) / len(loads), 2), "min": round(min(loads), 2), "max": round(max(loads), 2),
                    "samples": len(loads),
                },
                "grid": grid.name,
            }
            evaluations.append(row)
            print(f"  {minutes:g} min: step {row['steps']}, FD {row['fd']:.2f} (floor {row['fd_real_floor']:.2f}, "
                  f"{row['fd_over_floor']:.2f}x; noise {row['fd_noise']:.1f}), sampling {sample_s:.0f} s wall, "
                  f"{sample_cpu_s:.0f} s CPU", flush=True)
    finally:
        if not args.run_dir:
            shutil.rmtree(run_dir, ignore_errors=True)

    print(f"\nTime to quality, {info['cpu']}, {args.threads} torch thread(s), clock: {args.clock}; "
          f"{args.n} DDIM-{args.ddim_steps} samples (EMA) vs the 500 held-out test digits\n")
    print("| training CPU time (min) | wall (min) | steps | images seen | FD | floor | FD / floor | pure noise "
          "| classes (bits) | confident | 1-min load (mean, max) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in evaluations:
        la = r["load_average_1_min_during_training"]
        print(f"| {r['training_cpu_s'] / 60:.1f} | {r['training_wall_s'] / 60:.1f} | {r['steps']} | "
              f"{r['images_seen']:,} | {r['fd']:.2f} | "
              f"{r['fd_real_floor']:.2f} | {r['fd_over_floor']:.2f} | {r['fd_noise']:.1f} | "
              f"{r['class_entropy_bits'] + 0.0:.2f} | {r['confident_share']:.2f} | {la['mean']:.1f}, {la['max']:.1f} |")
    record = {
        "benchmark": "time_to_quality",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python benchmarks/time_to_quality.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": info,
        "train_config": {**cfg.to_dict(), "steps": "grows by chunk_steps until the last target"},
        "parameters": count_parameters(UNet(cfg.model)),
        "chunk_steps": args.chunk_steps,
        "n_generated": args.n,
        "ddim_steps": args.ddim_steps,
        "reference": "load_mnist_5k('test'): 500 held-out digits; floor's second set: "
                     f"{args.n} digits of load_mnist_5k('train') (randperm seed 0)",
        "targets": "fd <= 3 x floor after 3 min, fd <= 1.5 x floor after 10 min",
        "evaluations": evaluations,
        "total_wall_clock_s": round(time.perf_counter() - started, 1),
    }
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nwrote {out}")
    return record


if __name__ == "__main__":
    main()
