"""Sampling cost: how many seconds does one generated digit cost on this machine's CPU, chain by chain?

A :class:`~ddpm_core.unet.UNet` (``--network full``: the network of the GPU recipe
:data:`ddpm_core.train.FULL`, ``UNetConfig()``, about 1.1M parameters; ``--network quick``: the
CPU recipe's, :data:`ddpm_core.train.QUICK`, the network of the shipped model) generates 32 x 32
digits with

* ``ddpm``: Algorithm 2, :func:`ddpm_core.reverse.p_sample_loop`, T = 1000 network calls;
* ``ddim``: :func:`ddpm_core.ddim.ddim_sample_loop` with 100 steps (eta = 0, x0 clipped),
  100 network calls;
* ``ddim50-eta1-ag1.5``: the sampler of the time-to-quality headline, 50-step DDIM with eta = 1
  through :class:`ddpm_core.guidance.Autoguided` (weight 1.5, a second network of the same
  shape as the guide), 2 x 50 network calls,

each at batch 1 and batch 64. The cost of a network call does not depend on the weights, so
an untrained network (seed 0) is timed; every chain runs in full (no extrapolation).
The table gives seconds per chain and per sample (seconds per chain / batch size), both in
wall-clock time and in this process's CPU time (``time.process_time``): on a machine shared
with other jobs the wall clock mostly measures the other jobs, while with one torch thread the
CPU time is what the wall clock would show on an idle machine.
Prints a Markdown table and writes ``benchmarks/results/sampling_cost_<network>.json``; a run
with other settings than the defaults (two threads, batches 1 and 64, 100 DDIM steps) must name
its ``--out``.

    .venv/bin/python benchmarks/sampling_cost.py --network full     # about 2.5 min on two cores
    .venv/bin/python benchmarks/sampling_cost.py --network quick    # about 1 min
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from ddpm_core.ddim import ddim_sample_loop
from ddpm_core.guidance import Autoguided
from ddpm_core.reverse import p_sample_loop
from ddpm_core.schedules import NoiseSchedule
from ddpm_core.train import FULL, QUICK
from ddpm_core.unet import UNet, count_parameters

from machine import changed_options, machine, out_path, write_record  # benchmarks/machine.py

NETWORKS = {"full": FULL.model, "quick": QUICK.model}  # the GPU recipe's network, the CPU recipe's


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--batches", default="1,64", help="comma-separated batch sizes")
    p.add_argument("--ddim-steps", type=int, default=100)
    p.add_argument("--network", choices=tuple(NETWORKS), default="full",
                   help="full: the network of ddpm_core.train.FULL, UNetConfig(); quick: the network of "
                        "ddpm_core.train.QUICK, the shipped model's")
    p.add_argument("--out", help="the JSON record (default: benchmarks/results/sampling_cost_<network>.json, "
                                 "for the default settings only)")
    args = p.parse_args(argv)
    out = out_path(p, args, f"sampling_cost_{args.network}.json", changed_options(p, args, ignore=("network",)))
    torch.set_num_threads(args.threads)
    info = machine()
    torch.manual_seed(0)
    config = NETWORKS[args.network]
    model, guide = UNet(config).eval(), UNet(config).eval()
    guided = Autoguided(model, guide, weight=1.5)
    schedule = NoiseSchedule.linear(1000)
    batches = [int(b) for b in args.batches.split(",")]
    samplers = {
        "ddpm": (schedule.T, lambda shape, g: p_sample_loop(schedule, model, shape, generator=g)),
        "ddim": (args.ddim_steps, lambda shape, g: ddim_sample_loop(schedule, model, shape, args.ddim_steps, generator=g)),
        "ddim50-eta1-ag1.5": (2 * 50, lambda shape, g: ddim_sample_loop(schedule, guided, shape, 50, eta=1.0, generator=g)),
    }
    with torch.no_grad():  # warm-up: a few network calls at every batch size
        for b in batches:
            for _ in range(3):
                model(torch.randn(b, 1, 32, 32), torch.full((b,), 500))
    results = []
    for name, (calls, run) in samplers.items():
        for b in batches:
            load_before = os.getloadavg()[0]
            start, cpu_start = time.perf_counter(), time.process_time()
            run((b, config.image_channels, config.image_size, config.image_size), torch.Generator().manual_seed(0))
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            results.append({
                "sampler": name, "network_calls": calls, "batch_size": b,
                "wall_s_per_chain": seconds, "wall_s_per_sample": seconds / b,
                "cpu_s_per_chain": cpu, "cpu_s_per_sample": cpu / b, "cpu_ms_per_network_call": 1000 * cpu / calls,
                "load_average_1_min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            })
            print(f"  {name} batch {b}: {seconds:.1f} s wall, {cpu:.1f} s CPU", flush=True)

    print(f"\nSampling cost, the {args.network} UNet ({count_parameters(model):,} parameters), {info['cpu']}, "
          f"{args.threads} torch thread(s)\n")
    print("| sampler | network calls | batch | CPU s / chain | CPU s / sample | CPU ms / call "
          "| wall s / chain | wall s / sample | 1-min load |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        lo, hi = r["load_average_1_min_before_after"]
        print(f"| {r['sampler']} | {r['network_calls']} | {r['batch_size']} | {r['cpu_s_per_chain']:.1f} | "
              f"{r['cpu_s_per_sample']:.3f} | {r['cpu_ms_per_network_call']:.1f} | {r['wall_s_per_chain']:.1f} | "
              f"{r['wall_s_per_sample']:.3f} | {lo:.1f} to {hi:.1f} |")
    return write_record(out, "sampling_cost.py", "sampling_cost", argv, info,
                        model={"network": args.network, "config": config.to_dict(), "parameters": count_parameters(model)},
                        results=results)


if __name__ == "__main__":
    main()
