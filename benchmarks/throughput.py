"""Training throughput: how many images per second does a training step process on this machine's CPU?

Up to seven training steps are compared, each at its own settings:

* ``source``: the source's ``SimpleUnet`` (62M parameters) with its own training step
  (:func:`ddpm_core.source_code.get_loss`: L1 loss, T = 300, Adam at lr 1e-3), batch 16.
  The source's loop also runs a 300-step sampling chain every 5 steps (its issue 4); that
  is left out here, so this row is the source's *best* case.
* ``ddpm_core``: :class:`ddpm_core.unet.UNet` with its default :class:`UNetConfig` and
  :func:`ddpm_core.train.training_step` (L_simple, T = 1000, Adam, gradient clipping at 1),
  at :class:`TrainConfig`'s default batch of 128.
* ``ddpm_core@16``: the same at the source's batch of 16, for a like-for-like comparison.
* ``quick``: the CPU recipe :data:`ddpm_core.train.QUICK` (``python -m ddpm_core.train --recipe
  quick``: batch 128, its base-16 network without dropout or 8 x 8 attention, Min-SNR
  weighting, Muon), in float32.
* ``quick+bf16`` and ``ddpm_core+bf16``: the same steps under ``torch.autocast`` to bf16, what
  ``amp="auto"`` picks on a CPU with AVX512-BF16 or AMX instructions; ``quick+bf16@64``, the
  recipe's bf16 step at batch 64 (its batch until version 5), shows what the larger batch
  gains per image. These rows are left out on a CPU without them (bf16 would only be
  emulated there).

The rows are timed in interleaved rounds (a few steps of each, in turn, round after round),
so that a change in the machine's load during the run hits every row alike. Warm-up steps
are not timed. Both wall-clock time and this process's CPU time (``time.process_time``) are
measured: on a machine shared with other jobs the wall clock mostly measures the other jobs,
while with one torch thread CPU time is what the wall clock would show on an idle machine.
Random data stand in for MNIST (the speed of a step does not depend on the pixel values).
Prints a Markdown table and writes ``benchmarks/results/throughput.json`` (one thread, the
default) or ``throughput_<n>threads.json`` (``--threads n``); a run with other settings must
name its ``--out``.

    .venv/bin/python benchmarks/throughput.py                 # 1 thread
    .venv/bin/python benchmarks/throughput.py --threads 2     # 2 threads
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import replace
from typing import Callable

import torch

from ddpm_core import source_code as src
from ddpm_core.train import QUICK, TrainConfig, cpu_has_native_bf16, make_optimizer, make_schedule, training_step
from ddpm_core.unet import UNet, count_parameters

from machine import changed_options, machine, out_path, write_record  # benchmarks/machine.py


def source_step(batch_size: int) -> tuple[Callable[[], None], int]:
    """One training step of the source (its SimpleUnet, get_loss and Adam settings)."""
    torch.manual_seed(0)
    model = src.SimpleUnet()
    src.use_source_globals(src.make_source_globals(300, batch_size=batch_size, device="cpu", model=model))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)  # the source's lr
    x0 = torch.rand(batch_size, 1, 32, 32) * 2 - 1

    def step() -> None:
        optimizer.zero_grad()
        t = torch.randint(0, 300, (batch_size,)).long()  # the source's t in 0..T-1
        loss = src.get_loss(model, x0, t)
        loss.backward()
        optimizer.step()

    return step, count_parameters(model)


def ddpm_core_step(cfg: TrainConfig, amp_dtype: torch.dtype | None = None) -> tuple[Callable[[], None], int]:
    """One step of :func:`ddpm_core.train.training_step` with ``cfg``'s network, batch and loss.

    ``amp_dtype``: autocast dtype (None: float32), passed to ``training_step`` as the training
    loop passes :func:`ddpm_core.train.resolve_amp`'s choice.
    """
    torch.manual_seed(0)
    model = UNet(cfg.model)
    optimizer = make_optimizer(model, cfg)  # Adam, or Muon where cfg says so (the --quick recipe)
    schedule = make_schedule(cfg)
    x0 = torch.rand(cfg.batch_size, 1, 32, 32) * 2 - 1

    def step() -> None:
        training_step(model, schedule, optimizer, x0, loss_type=cfg.loss_type, loss_weighting=cfg.loss_weighting,
                      min_snr_gamma=cfg.min_snr_gamma, grad_clip=cfg.grad_clip, amp_dtype=amp_dtype)

    return step, count_parameters(model)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per row before timing")
    p.add_argument("--rounds", type=int, default=4, help="interleaved timing rounds")
    p.add_argument("--steps-per-round", type=int, default=3, help="timed steps per row and round")
    p.add_argument("--out", help="the JSON record (default: benchmarks/results/throughput.json with one thread, "
                                 "throughput_<n>threads.json with --threads n; other settings must name it)")
    args = p.parse_args(argv)
    current = "throughput.json" if args.threads == 1 else f"throughput_{args.threads}threads.json"
    out = out_path(p, args, current, changed_options(p, args, ignore=("threads",)))
    torch.set_num_threads(args.threads)
    info = machine()
    default, quick = TrainConfig(), QUICK  # TrainConfig's defaults (the full run's network), and the CPU recipe
    rows = {
        "source": (*source_step(16), 16, "SimpleUnet, L1, T=300, Adam lr 1e-3"),
        "ddpm_core": (*ddpm_core_step(default), default.batch_size, "UNet(UNetConfig()), L_simple, T=1000"),
        "ddpm_core@16": (*ddpm_core_step(replace(default, batch_size=16)), 16, "the same, at the source's batch size"),
        "quick": (*ddpm_core_step(quick), quick.batch_size, "the --quick recipe (Muon, no dropout, Min-SNR), float32"),
    }
    if cpu_has_native_bf16():  # bf16 rows only where the CPU computes in bf16 natively (else emulated, slow)
        rows["quick+bf16"] = (*ddpm_core_step(quick, torch.bfloat16), quick.batch_size, "the same, autocast to bf16")
        rows["quick+bf16@64"] = (*ddpm_core_step(replace(quick, batch_size=64), torch.bfloat16), 64,
                                 "the same at batch 64 (recipe version 4's batch)")
        rows["ddpm_core+bf16"] = (*ddpm_core_step(default, torch.bfloat16), default.batch_size,
                                  "UNet(UNetConfig()), L_simple, T=1000, autocast to bf16")
    for step, *_ in rows.values():
        for _ in range(args.warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in rows}  # wall s per step, one entry per round
    cpu_times: dict[str, list[float]] = {name: [] for name in rows}  # CPU s per step
    loads = []
    for _ in range(args.rounds):
        for name, (step, *_rest) in rows.items():
            start, cpu_start = time.perf_counter(), time.process_time()
            for _ in range(args.steps_per_round):
                step()
            times[name].append((time.perf_counter() - start) / args.steps_per_round)
            cpu_times[name].append((time.process_time() - cpu_start) / args.steps_per_round)
        loads.append(os.getloadavg()[0])
    src.clear_source_globals()

    results = []
    for name, (_, params, batch, what) in rows.items():
        per_step = sum(times[name]) / len(times[name])
        cpu_per_step = sum(cpu_times[name]) / len(cpu_times[name])
        results.append({
            "row": name,
            "what": what,
            "parameters": params,
            "batch_size": batch,
            "timed_steps": args.rounds * args.steps_per_round,
            "wall_s_per_step": per_step,
            "images_per_wall_s": batch / per_step,
            "images_per_wall_s_by_round": [batch / s for s in times[name]],
            "cpu_s_per_step": cpu_per_step,
            "images_per_cpu_s": batch / cpu_per_step,
            "images_per_cpu_s_by_round": [batch / s for s in cpu_times[name]],
        })
    base = next(r for r in results if r["row"] == "source")
    print(f"Training throughput, {info['cpu']}, {args.threads} torch thread(s), "
          f"1-min load average {min(loads):.1f} to {max(loads):.1f} during timing\n")
    print("| row | network | parameters | batch | CPU s / step | images / CPU s | wall s / step "
          "| images / wall s | vs source (CPU, wall) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r['row']} | {r['what']} | {r['parameters']:,} | {r['batch_size']} | "
              f"{r['cpu_s_per_step']:.3f} | {r['images_per_cpu_s']:.1f} | {r['wall_s_per_step']:.3f} | "
              f"{r['images_per_wall_s']:.1f} | {r['images_per_cpu_s'] / base['images_per_cpu_s']:.1f}x, "
              f"{r['images_per_wall_s'] / base['images_per_wall_s']:.1f}x |")
    return write_record(
        out, "throughput.py", "throughput", argv, info,
        load_average_1_min_after_each_round=[round(v, 2) for v in loads],
        settings={"warmup_steps": args.warmup, "rounds": args.rounds, "steps_per_round": args.steps_per_round},
        results=results,
        median_images_per_wall_s={r["row"]: statistics.median(r["images_per_wall_s_by_round"]) for r in results},
        median_images_per_cpu_s={r["row"]: statistics.median(r["images_per_cpu_s_by_round"]) for r in results},
    )


if __name__ == "__main__":
    main()
