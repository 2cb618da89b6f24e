"""What a run reports as it goes: ``metrics.jsonl`` and grids of samples from its moving average.

``metrics.jsonl`` holds one JSON line every ``log_every`` steps: the step, the mean loss since
the previous line, the learning rate and the images per second. A resumed run first drops the
lines written after the checkpoint it resumes from, so the file always describes one run.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable

import torch

from ..ddim import ddim_sample_loop
from ..schedules import NoiseSchedule
from ..unet import UNet
from ..weights import write_atomic
from .config import TrainConfig
from .optim import EMA


def metrics_rows(metrics_file: Path) -> list[dict]:
    """The lines of metrics.jsonl that parse; a line cut short by a crash is dropped."""
    if not metrics_file.exists():
        return []
    rows = []
    for line in metrics_file.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


class MetricsLog:
    """``metrics.jsonl`` of a run resumed at ``step``: the losses of the current window, written every few steps.

    Opening it keeps the rows up to ``step`` (the checkpoint resumed from) and drops any damaged
    line. Only the process that ``writes`` (process 0 of several) touches the file.
    """

    def __init__(self, metrics_file: Path, step: int, writes: bool = True):
        self.file, self.writes = metrics_file, writes
        rows = [row for row in metrics_rows(metrics_file) if row["step"] <= step]
        text = "".join(json.dumps(row) + "\n" for row in rows)
        if writes and metrics_file.exists() and text != metrics_file.read_text():
            metrics_file.write_text(text)
        self.last_loss = float(rows[-1]["loss"]) if rows else math.nan  # mean loss of the last window written
        self.window_losses: list[float] = []
        self.window_start = time.perf_counter()

    def add_loss(self, loss: float) -> None:
        """Count one step's loss in the current window."""
        self.window_losses.append(loss)

    def write(self, step: int, lr: float, batch_size: int) -> dict:
        """Append the window's row (mean loss, learning rate, images per second), start a new window, return the row."""
        now = time.perf_counter()
        self.last_loss = sum(self.window_losses) / len(self.window_losses)
        speed = len(self.window_losses) * batch_size / max(now - self.window_start, 1e-9)
        row = {"step": step, "loss": self.last_loss, "lr": lr, "images_per_s": speed}
        if self.writes:
            with open(self.file, "a") as f:
                f.write(json.dumps(row) + "\n")
        self.window_losses, self.window_start = [], now
        return row


@torch.no_grad()
def save_preview(ema: EMA, cfg: TrainConfig, schedule: NoiseSchedule, device: torch.device, step: int,
                 run_dir: Path, on_sample: Callable[[int, torch.Tensor], None] | None) -> None:
    """16 DDIM samples of the EMA model as ``samples/step_XXXXXXX.png``, from noise of their own.

    The training's random generators are left untouched, so a run with previews trains
    exactly as one without, and resumes as one.
    """
    from ..plotting import image_grid, png_bytes

    # Building the network draws its initial weights from the global generators: fork them.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        model = UNet(cfg.model).to(device)
    ema.copy_to(model)
    model.eval()
    generator = torch.Generator(device=device).manual_seed(cfg.seed)  # the same noise at every preview
    shape = (16, cfg.model.image_channels, cfg.model.image_size, cfg.model.image_size)
    samples = ddim_sample_loop(schedule, model, shape, num_steps=min(50, cfg.T), generator=generator).cpu()
    path = run_dir / "samples" / f"step_{step:07d}.png"
    write_atomic(path, lambda tmp: tmp.write_bytes(png_bytes(image_grid(samples, nrow=8))))
    if on_sample is not None:
        on_sample(step, samples)
