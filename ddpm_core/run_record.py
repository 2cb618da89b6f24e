"""A training run kept as data: its metrics and the samples it drew while it trained.

Chapter 7 trains for a hundred steps on a CPU, which runs the code path but shows noise. What
a real run looks like comes from the run that made the shipped model: trained with previews on
(``--sample-every``), its ``metrics.jsonl`` rows and its preview grids were stored as
:data:`SHIPPED_RUN` (the previews, as uint8 pixels) and its card (the rows, the command, the
machine). The chapter draws that record with the training dashboard
(:meth:`ddpm_core.explorers.TrainingDashboard.from_record`).

    python -m ddpm_core.train --run-dir RUN --recipe quick --sample-every 250 --export W.safetensors
    python -m ddpm_core.run_record RUN OUT.safetensors --weights W.safetensors

Nothing here imports the training code: a record is read like a weights file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .weights import ASSETS, read_card

SHIPPED_RUN = ASSETS / "mnist_ddpm_run.safetensors"
PREVIEW_RE = re.compile(r"^step_(\d{7})\.png$")


@dataclass(frozen=True)
class RunRecord:
    """A recorded run.

    Attributes:
        rows: the ``metrics.jsonl`` rows (step, loss, lr, images_per_s), in order.
        previews: (step, images) pairs, images (16, 1, H, W) in [-1, 1]: the EMA model's samples
            at that step, from the same starting noise at every preview.
        card: how the run was made (command, machine, torch, wall time, ...).
    """

    rows: list[dict]
    previews: list[tuple[int, torch.Tensor]]
    card: dict


def split_grid(grid: np.ndarray, count: int, size: int, nrow: int = 8, padding: int = 2) -> np.ndarray:
    """The images of a one-channel grid made by :func:`ddpm_core.plotting.image_grid`: (count, size, size) uint8."""
    images = np.empty((count, size, size), dtype=np.uint8)
    for i in range(count):
        r, c = divmod(i, nrow)
        top, left = padding + r * (size + padding), padding + c * (size + padding)
        images[i] = grid[top : top + size, left : left + size]
    return images


def read_run(run_dir: str | Path, count: int = 16, size: int = 32) -> tuple[list[dict], list[int], np.ndarray]:
    """A run folder's metrics rows, preview steps and preview pixels ((N, count, size, size) uint8)."""
    from PIL import Image

    run_dir = Path(run_dir)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    files = sorted(p for p in (run_dir / "samples").iterdir() if PREVIEW_RE.match(p.name))
    if not rows or not files:
        raise ValueError(f"run_dir must hold metrics.jsonl and samples/step_XXXXXXX.png, got {str(run_dir)!r}")
    steps = [int(PREVIEW_RE.match(p.name).group(1)) for p in files]
    pixels = np.stack([split_grid(np.asarray(Image.open(p)), count, size) for p in files])
    return rows, steps, pixels


def save_run_record(run_dir: str | Path, path: str | Path, card: dict) -> Path:
    """Store a run folder's metrics and previews at ``path`` (safetensors, uint8) with ``card`` beside it."""
    from safetensors.torch import save_file

    rows, steps, pixels = read_run(run_dir)
    path = Path(path)
    save_file({"previews": torch.from_numpy(pixels)}, str(path), metadata={"format": "pt"})
    full_card = {**card, "preview_steps": steps, "rows": rows}
    path.with_suffix(".json").write_text(json.dumps(full_card, indent=2) + "\n")
    return path


def load_run_record(path: str | Path = SHIPPED_RUN) -> RunRecord:
    """Read a record written by :func:`save_run_record` (by default the shipped model's run)."""
    from safetensors.torch import load_file

    card = read_card(path)
    pixels = load_file(str(path))["previews"]  # (N, 16, H, W) uint8
    images = pixels.float().unsqueeze(2) / 127.5 - 1.0  # back to [-1, 1]: to_uint8 gives the pixels again
    previews = list(zip(card["preview_steps"], images))
    rest = {k: v for k, v in card.items() if k not in ("rows", "preview_steps")}
    return RunRecord(rows=card["rows"], previews=previews, card=rest)


def _machine() -> str:
    """The CPU's model name and core count, as the card states them."""
    cpuinfo = Path("/proc/cpuinfo")
    names = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M) if cpuinfo.exists() else []
    return f"{names[0] if names else platform.processor() or 'unknown CPU'}, {len(names) or '?'} cores"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Store a training run's metrics and previews as a record.")
    parser.add_argument("run_dir", help="the run folder (trained with --sample-every)")
    parser.add_argument("out", help="where to write the record (.safetensors; its .json card beside it)")
    parser.add_argument("--weights", required=True, help="the weights the run exported (their card is copied)")
    args = parser.parse_args(argv)
    weights_card = read_card(args.weights)
    card = {key: weights_card.get(key) for key in ("command", "steps", "wall_time_s", "final_loss", "date",
                                                   "autocast", "torch", "data_split")}
    threads = re.search(r"(\d+) torch thread", weights_card.get("machine", ""))
    card.update(machine=_machine() + (f", {threads.group(1)} torch threads" if threads else ""),
                weights_sha256=hashlib.sha256(Path(args.weights).read_bytes()).hexdigest(),
                previews="16 samples of the EMA weights, DDIM 50 steps, eta 0, the same noise (seed 0) each time")
    print("wrote", save_run_record(args.run_dir, args.out, card))


if __name__ == "__main__":
    main()
