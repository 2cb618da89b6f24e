"""The training loop: Algorithm 1 repeated, with checkpoints, metrics and previews around it.

Files a run writes in its folder: ``config.json``; ``metrics.jsonl`` (:mod:`.metrics`);
``checkpoints/step_XXXXXXX.pt`` every ``checkpoint_every`` steps and at the end (:mod:`.state`);
``samples/step_XXXXXXX.png`` every ``sample_every`` steps.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..schedules import NoiseSchedule
from ..unet import UNet
from .config import TrainConfig, make_schedule
from .metrics import MetricsLog, save_preview
from .optim import lr_at
from .precision import resolve_amp, resolve_device
from .state import RunState, start_or_resume
from .step import NonFiniteLossError, training_step


@dataclass(frozen=True, kw_only=True)
class TrainResult:
    """What :func:`train` returns."""

    run_dir: Path
    step: int  # the last step done
    final_loss: float  # mean loss of the last logged window (NaN if nothing was logged)
    wall_time_s: float  # training time over all sessions of the run
    checkpoint: Path  # the newest checkpoint
    model: UNet  # the trained weights (eval mode)
    ema_model: UNet  # the EMA weights, what sampling should use (eval mode)


def load_training_images(cfg: TrainConfig) -> torch.Tensor:
    """The training images of ``cfg.data``, shape (N, 1, 32, 32) in [-1, 1], on the CPU."""
    from ..data import load_digits

    images, _ = load_digits(cfg.data, "train")
    return images


def sample_batch(images: torch.Tensor, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """Draw ``batch_size`` images uniformly with replacement, using ``generator`` (on the CPU)."""
    idx = torch.randint(0, images.shape[0], (batch_size,), generator=generator)
    return images[idx]  # (B, C, H, W)


def train(
    cfg: TrainConfig,
    run_dir: str | Path,
    resume: bool = True,
    progress: bool = True,
    on_sample: Callable[[int, torch.Tensor], None] | None = None,
    images: torch.Tensor | None = None,
) -> TrainResult:
    """Train eps_theta with Algorithm 1, writing config, metrics and checkpoints to ``run_dir``.

    Args:
        cfg: the configuration.
        run_dir: folder of the run (created if needed).
        resume: continue from the newest readable checkpoint of ``run_dir`` if there is one.
            Its configuration must equal ``cfg`` except for the fields of
            :data:`RESUMABLE_CHANGES` (``steps`` may grow, unless ``lr_decay="cosine"``).
        progress: show a tqdm progress bar.
        on_sample: called as ``on_sample(step, images)`` with 16 EMA samples (DDIM, 50 steps)
            every ``sample_every`` steps.
        images: train on these images (N, C, H, W) in [-1, 1] instead of ``cfg.data``.

    Returns:
        a :class:`TrainResult`.

    Raises:
        NonFiniteLossError: a loss, gradient or weight became NaN or infinite; nothing is
            written after that, so the newest checkpoint is the last good state.
        ValueError: the newest checkpoint comes from another configuration (the message
            lists the differing fields; with ``lr_decay="cosine"`` that includes ``steps``),
            ``run_dir`` holds checkpoints and ``resume`` is False, or none of them can be read.
    """
    if not isinstance(cfg, TrainConfig):
        raise ValueError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    run_dir = Path(run_dir)
    device = resolve_device(cfg)
    amp_dtype, use_scaler = resolve_amp(cfg, device)
    images = _checked_images(cfg, load_training_images(cfg) if images is None else images)
    state, last_checkpoint = start_or_resume(cfg, run_dir, resume, device, amp_dtype, use_scaler)
    schedule = make_schedule(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    metrics = MetricsLog(run_dir / "metrics.jsonl", state.step)  # drops lines written after the checkpoint
    net = torch.compile(state.model) if cfg.compile else state.model
    bar = _progress_bar(cfg, state.step, progress)
    session_start, wall_time_before = time.perf_counter(), state.wall_time
    try:
        while state.step < cfg.steps:
            lr = _train_one_step(state, net, schedule, images)
            metrics.add_loss(state.last_loss)
            state.wall_time = wall_time_before + time.perf_counter() - session_start
            if state.step % cfg.log_every == 0 or state.step == cfg.steps:
                row = metrics.write(state.step, lr, cfg.batch_size)
                bar.set_postfix(loss=f"{row['loss']:.4f}", img_s=f"{row['images_per_s']:.0f}")
            if (cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0) or state.step == cfg.steps:
                last_checkpoint = state.save(run_dir)
            if cfg.sample_every and state.step % cfg.sample_every == 0:
                save_preview(state.ema, cfg, schedule, device, state.step, run_dir, on_sample)
            bar.update(1)
    finally:
        bar.close()
    ema_model = UNet(cfg.model).to(device)
    state.ema.copy_to(ema_model)
    return TrainResult(run_dir=run_dir, step=state.step, final_loss=metrics.last_loss, wall_time_s=state.wall_time,
                       checkpoint=last_checkpoint, model=state.model.eval(), ema_model=ema_model.eval())


def _train_one_step(state: RunState, net: torch.nn.Module, schedule: NoiseSchedule, images: torch.Tensor) -> float:
    """Set the learning rate, draw a batch, take one :func:`training_step`, update the EMA; return the rate."""
    cfg, step = state.cfg, state.step + 1
    lr = lr_at(step, cfg)
    for group in state.optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)  # (checkpoints before Muon have no lr_scale)
    x0 = sample_batch(images, cfg.batch_size, state.data_generator).to(state.device)
    if cfg.channels_last:
        x0 = x0.contiguous(memory_format=torch.channels_last)
    try:
        loss = training_step(
            net, schedule, state.optimizer, x0,
            loss_type=cfg.loss_type, loss_weighting=cfg.loss_weighting, min_snr_gamma=cfg.min_snr_gamma,
            grad_clip=cfg.grad_clip, scaler=state.scaler, amp_dtype=state.amp_dtype,
        )
    except NonFiniteLossError as err:
        raise NonFiniteLossError(f"step {step}: {err}") from None
    state.ema.update(state.model)
    state.step, state.last_loss = step, loss
    return lr


def _checked_images(cfg: TrainConfig, images: torch.Tensor) -> torch.Tensor:
    """``images``, if they are float images of the shape ``cfg.model`` takes; else ``ValueError``."""
    expected = (cfg.model.image_channels, cfg.model.image_size, cfg.model.image_size)
    if images.dim() != 4 or tuple(images.shape[1:]) != expected or not torch.is_floating_point(images):
        raise ValueError(f"images must be a float tensor of shape (N, {', '.join(map(str, expected))}), "
                         f"got {tuple(images.shape)}")
    return images


def _progress_bar(cfg: TrainConfig, step: int, progress: bool):
    """A tqdm bar over the run's steps, starting at ``step``; disabled unless ``progress``."""
    if progress:
        from tqdm.auto import tqdm  # a widget in notebooks, text in a terminal
    else:
        from tqdm import tqdm  # disabled; the plain class needs no notebook widgets
    return tqdm(total=cfg.steps, initial=step, disable=not progress, desc="training", dynamic_ncols=True)
