"""Live explorers: how long after a control moves does the picture change (schedule 150 ms, sampler 2 s)?

The targets: a schedule redraw in at most 150 ms, the sampler explorer's 16 guided DDIM-50 digits
in at most 2 s, on two CPU cores.

Each row times what one control change makes the kernel do, in this process, with
``time.perf_counter`` (wall) and ``time.process_time`` (this process's CPU time, all its threads):

* ``schedule compute``: the two schedules built from their settings, their curves, and the digit's
  x_t under each (``ScheduleSpec.build``, ``schedule_curves``, ``q_sample``);
* ``schedule redraw``: the figure updated in place and encoded as PNG (``ScheduleFigure.update``,
  which computes the above, and ``figure_bytes``): what moving t / T costs;
* ``schedule view``: the same through the live view, a slider set from code
  (``ScheduleExplorer.fraction.value = ...``; needs ipywidgets, no frontend);
* ``posterior redraw``: ``draw_forward_posterior`` and its PNG;
* ``sampler 16 guided DDIM-50``: ``sample_chain`` with the shipped model and guide, w = 1.5,
  eta = 1, and the grid of the result as PNG (``chain_png``): 100 network calls on 16 digits;
* ``sampler SDEdit``: a held-out digit noised to t = 400 and denoised by 16 guided DDIM steps
  from there (``sample_chain`` with ``start_t``, 20 steps), what "noise my digit" costs;
* ``toy chain``: Algorithm 2 with the exact denoiser, 1000 points, T = 1000 (``toy_chain``), what
  changing the mixture costs; ``toy redraw``: ``draw_toy`` and its PNG, what moving t costs.

Rows are timed in interleaved rounds (each round: every thread count, every row once, the fast
rows ``--repeats`` times), so that a change in the machine's load hits every row alike; the
1-minute load average is recorded after each round. On a shared machine the wall time of a row
can be several times its CPU time: compare the CPU column with the targets too. Prints a
Markdown table and writes ``benchmarks/results/explorers.json``; other settings need ``--out``.

    .venv/bin/python benchmarks/explorers.py     # a few minutes on two cores
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Callable

import torch

from ddpm_core.explorers.digits import fixed_noise, held_out_digit
from ddpm_core.explorers.forward_posterior import draw_forward_posterior
from ddpm_core.explorers.sampler import SamplerSettings, chain_png, sample_chain, shipped_networks
from ddpm_core.explorers.schedule import DEFAULT_SPECS, ScheduleFigure, schedule_curves, timestep_at
from ddpm_core.explorers.toy import data_points, draw_toy, toy_chain
from ddpm_core.explorers.widgets import figure_bytes
from ddpm_core.forward import q_sample
from ddpm_core.schedules import NoiseSchedule
from ddpm_core.toy import ring_mixture

from machine import machine, out_path, write_record  # benchmarks/machine.py

TARGETS_S = {"schedule redraw": 0.15, "schedule view": 0.15, "sampler 16 guided DDIM-50": 2.0}
FAST = ("schedule compute", "schedule redraw", "schedule view", "posterior redraw", "toy redraw")


def schedule_rows() -> dict[str, Callable[[int], object]]:
    """The schedule explorer's work for round ``i`` (t / T moves each time, so nothing is cached)."""
    x0 = held_out_digit(0)
    noise = fixed_noise(x0, 0)
    figure = ScheduleFigure()

    def compute(i: int) -> None:
        fraction = 0.05 + (i % 19) / 20
        for spec in DEFAULT_SPECS:
            schedule = spec.build()
            schedule_curves(schedule)
            q_sample(schedule, x0, timestep_at(fraction, schedule.T), noise)

    rows = {"schedule compute": compute,
            "schedule redraw": lambda i: figure_bytes(figure.update(DEFAULT_SPECS, x0, noise, 0.05 + (i % 19) / 20))}
    try:
        from ddpm_core.explorers.schedule import ScheduleExplorer

        view = ScheduleExplorer()
        rows["schedule view"] = lambda i: setattr(view.fraction, "value", round(0.05 + (i % 19) / 20, 2))
    except ImportError:  # no ipywidgets: the view's row is left out
        pass
    return rows


def other_rows() -> dict[str, Callable[[int], object]]:
    """The posterior, sampler and toy explorers' work for round ``i``."""
    schedule, x0 = NoiseSchedule.linear(1000), held_out_digit(0)
    noise = fixed_noise(x0, 0)
    model, net_schedule, guide = shipped_networks()
    settings = SamplerSettings(sampler="ddim", num_steps=50, eta=1.0, guidance=1.5, count=16)
    sdedit = SamplerSettings(sampler="ddim", num_steps=20, eta=1.0, guidance=1.5, count=16, start_t=400)
    ring = ring_mixture()
    chain, data = toy_chain(ring, schedule, 1000, 0), data_points(ring, 1000, 0)
    return {
        "posterior redraw": lambda i: figure_bytes(draw_forward_posterior(schedule, x0, 1 + (37 * i) % 1000, noise, 16, 14)),
        "sampler 16 guided DDIM-50": lambda i: chain_png(sample_chain(model, net_schedule, settings, guide), 50),
        "sampler SDEdit 16 from t = 400, DDIM-20": lambda i: chain_png(
            sample_chain(model, net_schedule, sdedit, guide, x0=x0), 20),
        "toy chain": lambda i: toy_chain(ring, schedule, 1000, i),
        "toy redraw": lambda i: figure_bytes(draw_toy(ring, schedule, chain, (53 * i) % 1001, data)),
    }


def time_row(work: Callable[[int], object], i: int) -> tuple[float, float]:
    """(wall s, CPU s) of ``work(i)``."""
    start, cpu_start = time.perf_counter(), time.process_time()
    work(i)
    return time.perf_counter() - start, time.process_time() - cpu_start


def summarise(times: dict, thread_counts: list[int]) -> list[dict]:
    """One result per (row, threads): every timing and their medians, and the target if there is one."""
    results = []
    for name in times:
        for threads in thread_counts:
            wall, cpu = zip(*times[name][threads])
            row = {"row": name, "threads": threads, "wall_s": list(wall), "cpu_s": list(cpu),
                   "median_wall_s": statistics.median(wall), "median_cpu_s": statistics.median(cpu)}
            if name in TARGETS_S:
                row["target_s"] = TARGETS_S[name]
                row["median_wall_within_target"] = row["median_wall_s"] <= TARGETS_S[name]
            results.append(row)
    return results


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", default="1,2", help="comma-separated torch thread counts (default 1,2)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    p.add_argument("--repeats", type=int, default=4, help="timings of each fast row per round")
    p.add_argument("--out", help="the JSON record (default, for the default settings only: "
                                 "benchmarks/results/explorers.json)")
    args = p.parse_args(argv)
    out = out_path(p, args, "explorers.json")
    thread_counts = [int(n) for n in args.threads.split(",") if n.strip()]
    torch.set_num_threads(thread_counts[0])
    info = machine()
    rows = {**schedule_rows(), **other_rows()}
    for name, work in rows.items():  # warm-up: first calls load fonts, the data and the networks
        work(0)
    times = {name: {n: [] for n in thread_counts} for name in rows}
    loads = []
    for r in range(args.rounds):
        for n in thread_counts:
            torch.set_num_threads(n)
            for name, work in rows.items():
                for k in range(args.repeats if name in FAST else 1):
                    times[name][n].append(time_row(work, 1 + r * args.repeats + k))
        loads.append(round(os.getloadavg()[0], 2))
        print(f"round {r + 1} of {args.rounds} done, 1-min load average {loads[-1]}", flush=True)
    results = summarise(times, thread_counts)

    print(f"\nExplorers, {info['cpu']} ({info['logical_cores']} cores), 1-min load average {min(loads)} to {max(loads)}\n")
    print("| what a control change does | torch threads | median wall, s | median CPU, s | min - max wall, s | target, s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for row in results:
        target = f"{row['target_s']:g}" if "target_s" in row else ""
        print(f"| {row['row']} | {row['threads']} | {row['median_wall_s']:.3f} | {row['median_cpu_s']:.3f} | "
              f"{min(row['wall_s']):.3f} - {max(row['wall_s']):.3f} | {target} |")
    return write_record(
        out, "explorers.py", "explorers", argv, info,
        settings={"threads": thread_counts, "rounds": args.rounds, "repeats_of_fast_rows": args.repeats,
                  "schedules": [spec.label() for spec in DEFAULT_SPECS], "figure_dpi": 192,
                  "sampler": "DDIM, 50 steps, eta 1, autoguidance w = 1.5, 16 digits, shipped model and guide",
                  "sdedit": "held-out digit 0 noised to t = 400, DDIM 20 steps from there, eta 1, w = 1.5, 16 copies",
                  "toy": "ring of 8, 1000 points, linear T = 1000, sigma^2 = beta"},
        load_average_1_min_after_each_round=loads,
        targets_s=TARGETS_S,
        results=results,
    )


if __name__ == "__main__":
    main()
