"""Data loading: how fast can training read images from a folder, with and without worker processes?

Training on ``data="folder:PATH"`` reads each batch through a ``DataLoader`` over
:class:`ddpm_core.datasets.ImageFolder`: every image is opened, decoded, converted, centre-cropped
and resized (antialiased bicubic) to a uint8 square, and the batch is stacked. With ``num_workers``
= 0 the training process does this itself, between steps; with 1 or 2 worker processes it is done
alongside the training.

The script writes ``--images`` random, smooth ``--source-size`` x ``--source-size`` RGB JPEGs
(quality 90) into a temporary folder, builds ``ImageFolder(folder, image_size=32, channels=3)``
(which decodes every file once, to leave out unreadable ones: its time is reported), and for each
number of workers iterates a ``DataLoader`` with batch 128 drawn by a ``RandomSampler``,
``pin_memory`` off (no GPU here) and persistent workers. Nothing else runs: these are the rates
at which batches arrive when the training step costs nothing, the most the loader can feed.
One untimed pass per loader first starts its workers (the time to its first batch is reported);
then the loaders are timed in interleaved rounds, one full pass (``--images`` images) each per
round, so that a change in the machine's load hits every row alike. Two numbers per row: images
per wall-clock second, and the CPU time the training process itself spends per image
(``time.process_time``, which leaves out the workers' own): what the loader takes away from the
training step, which with workers runs while they decode. Prints a Markdown table and writes
``benchmarks/results/data_loading.json``; a run with other settings must name its ``--out``.

    .venv/bin/python benchmarks/data_loading.py     # about 30 s on two cores
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, RandomSampler

from ddpm_core.datasets import ImageFolder

from machine import machine, out_path, write_record  # benchmarks/machine.py


def write_jpegs(folder: Path, n: int, size: int, seed: int = 0) -> None:
    """``n`` random RGB JPEGs of ``size`` x ``size``: smooth colour fields (an enlarged 6 x 6 grid) plus mild noise."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        coarse = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
        smooth = np.asarray(coarse.resize((size, size), Image.Resampling.BICUBIC), dtype=np.int16)
        pixels = np.clip(smooth + rng.integers(-12, 13, smooth.shape), 0, 255).astype(np.uint8)  # (size, size, 3)
        Image.fromarray(pixels).save(folder / f"{i:05d}.jpg", quality=90)


def make_loader(dataset: ImageFolder, batch_size: int, num_workers: int) -> DataLoader:
    """Random batches of ``dataset``, as training draws them, read by ``num_workers`` worker processes."""
    sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(0))
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      pin_memory=False, persistent_workers=num_workers > 0)


def time_pass(loader: DataLoader) -> tuple[float, float, float, int]:
    """One pass over ``loader``: (seconds to the first batch, wall seconds, this process's CPU seconds, images read)."""
    start, cpu_start = time.perf_counter(), time.process_time()
    first, images = None, 0
    for batch in loader:  # (B, 3, 32, 32) uint8
        if first is None:
            first = time.perf_counter() - start
        images += batch.shape[0]
    return first, time.perf_counter() - start, time.process_time() - cpu_start, images


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads of the main process (default 1)")
    p.add_argument("--images", type=int, default=2000, help="JPEG files in the folder")
    p.add_argument("--source-size", type=int, default=64, help="side of each JPEG, in pixels")
    p.add_argument("--image-size", type=int, default=32, help="side of the squares ImageFolder returns")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--workers", default="0,1,2", help="comma-separated numbers of worker processes")
    p.add_argument("--rounds", type=int, default=10, help="interleaved timed passes per number of workers")
    p.add_argument("--out", help="the JSON record (default, for the default settings only: "
                                 "benchmarks/results/data_loading.json)")
    args = p.parse_args(argv)
    out = out_path(p, args, "data_loading.json")
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    torch.set_num_threads(args.threads)
    info = machine()

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        write_jpegs(Path(tmp), args.images, args.source_size)
        write_s = time.perf_counter() - start
        start = time.perf_counter()
        dataset = ImageFolder(tmp, image_size=args.image_size, channels=3)  # decodes every file once
        build_s = time.perf_counter() - start
        loaders = {w: make_loader(dataset, args.batch_size, w) for w in workers}
        first_batch_s = {w: time_pass(loader)[0] for w, loader in loaders.items()}  # warm-up: starts the workers
        seconds: dict[int, list[float]] = {w: [] for w in workers}  # wall s of one full pass, per round
        cpu_seconds: dict[int, list[float]] = {w: [] for w in workers}  # this process's CPU s of that pass
        loads = []
        for _ in range(args.rounds):
            for w, loader in loaders.items():
                _, s, cpu_s, images = time_pass(loader)
                assert images == len(dataset)
                seconds[w].append(s)
                cpu_seconds[w].append(cpu_s)
            loads.append(os.getloadavg()[0])

    results = []
    for w in workers:
        rates = [len(dataset) / s for s in seconds[w]]
        cpu_ms = 1e3 * statistics.median(cpu_seconds[w]) / len(dataset)
        results.append({"num_workers": w, "first_batch_s": first_batch_s[w], "s_per_pass_by_round": seconds[w],
                        "images_per_s_by_round": rates, "median_images_per_s": statistics.median(rates),
                        "main_process_cpu_s_per_pass_by_round": cpu_seconds[w],
                        "main_process_cpu_ms_per_image": cpu_ms})
    base = results[0]["median_images_per_s"]
    print(f"\nReading {len(dataset):,} {args.source_size} x {args.source_size} JPEGs as {args.image_size} x "
          f"{args.image_size} RGB, batch {args.batch_size}, {info['cpu']} ({info['logical_cores']} cores), "
          f"1-min load average {min(loads):.1f} to {max(loads):.1f}")
    print(f"writing them took {write_s:.1f} s; building ImageFolder (decoding each once) {build_s:.1f} s "
          f"({1e3 * build_s / len(dataset):.2f} ms per image)\n")
    print(f"| workers | images / s (median of {args.rounds}) | min - max | vs {workers[0]} workers "
          f"| training process CPU ms / image | first batch, s |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        rates = r["images_per_s_by_round"]
        print(f"| {r['num_workers']} | {r['median_images_per_s']:,.0f} | {min(rates):,.0f} - {max(rates):,.0f} | "
              f"{r['median_images_per_s'] / base:.2f}x | {r['main_process_cpu_ms_per_image']:.3f} | "
              f"{r['first_batch_s']:.2f} |")
    return write_record(
        out, "data_loading.py", "data_loading", argv, info,
        settings={"images": args.images, "source_size": args.source_size, "image_size": args.image_size,
                  "channels": 3, "batch_size": args.batch_size, "rounds": args.rounds, "jpeg_quality": 90,
                  "sampler": "RandomSampler", "pin_memory": False, "persistent_workers": True},
        write_jpegs_s=write_s, build_image_folder_s=build_s, build_ms_per_image=1e3 * build_s / len(dataset),
        load_average_1_min_after_each_round=[round(v, 2) for v in loads],
        results=results,
        median_images_per_s={str(r["num_workers"]): r["median_images_per_s"] for r in results},
    )


if __name__ == "__main__":
    main()
