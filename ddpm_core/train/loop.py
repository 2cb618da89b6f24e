"""The training loop: Algorithm 1 repeated, with checkpoints, metrics and previews around it.

Files a run writes in its folder: ``config.json``; ``metrics.jsonl`` (:mod:`.metrics`);
``checkpoints/step_XXXXXXX.pt`` every ``checkpoint_every`` steps and at the end (:mod:`.state`);
``samples/step_XXXXXXX.png`` every ``sample_every`` steps. Started by torchrun on several
processes, process 0 alone writes them (:mod:`.distributed`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch.utils.data import Dataset

from ..losses import sample_timesteps
from ..schedules import NoiseSchedule
from ..unet import UNet
from ..weights import checkpoint_path
from . import distributed
from .batches import BatchStream, rank_slice
from .config import TrainConfig, make_schedule
from .distributed import Processes, processes_from_environment
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


def load_training_images(cfg: TrainConfig) -> torch.Tensor | Dataset:
    """The training images of ``cfg.data``.

    The digits (``"offline"``, ``"mnist"``) as one float tensor (N, 1, 32, 32) in [-1, 1] on the
    CPU; images read from disk (``"folder:PATH"``, ``"cifar10"``, ``"fashion-mnist"``) as a
    dataset of uint8 images (``model.image_channels``, ``model.image_size``, ``model.image_size``).
    """
    if cfg.data in ("offline", "mnist"):
        from ..data import load_digits

        return load_digits(cfg.data, "train")[0]
    from ..datasets import open_dataset

    return open_dataset(cfg.data, cfg.model.image_size, cfg.model.image_channels)


def train(
    cfg: TrainConfig,
    run_dir: str | Path,
    resume: bool = True,
    progress: bool = True,
    on_sample: Callable[[int, torch.Tensor], None] | None = None,
    images: torch.Tensor | Dataset | None = None,
    labels: torch.Tensor | None = None,
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
        images: train on these images instead of ``cfg.data``: a float tensor (N, C, H, W) in
            [-1, 1], or a dataset of uint8 images (C, H, W).
        labels: with ``images`` in memory, their classes (N,), for a class-conditional network
            (``cfg.model.num_classes`` > 0; without ``images``, the digits' own labels are used).

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
    processes = processes_from_environment()
    if cfg.batch_size % processes.world_size:
        raise ValueError(f"batch_size must be a multiple of the number of processes ({processes.world_size}), "
                         f"got {cfg.batch_size}")
    run_dir = Path(run_dir)
    device = resolve_device(cfg, processes.local_rank)
    amp_dtype, use_scaler = resolve_amp(cfg, device)
    source = _checked_source(cfg, load_training_images(cfg) if images is None else images)
    labels = _checked_labels(cfg, source, labels if images is not None else None)
    distributed.start(processes, device)
    try:
        state, last_checkpoint = start_or_resume(cfg, run_dir, resume, device, amp_dtype, use_scaler)
        result = _train(state, last_checkpoint, run_dir, (source, labels), processes, progress and processes.writes,
                        on_sample)
    except BaseException:
        distributed.stop(processes, wait=False)  # torchrun then ends the other processes
        raise
    distributed.stop(processes)
    return result


def _train(state: RunState, last_checkpoint: Path | None, run_dir: Path,
           data: tuple[torch.Tensor | Dataset, torch.Tensor | None], processes: Processes, progress: bool,
           on_sample: Callable[[int, torch.Tensor], None] | None) -> TrainResult:
    """:func:`train` from a fresh or resumed state: step to ``cfg.steps``, logging, saving and previewing."""
    cfg, device = state.cfg, state.device
    schedule = make_schedule(cfg)
    batches = BatchStream(data[0], cfg.batch_size, cfg.random_flip, state.data_generator, cfg.num_workers,
                          processes.rank, processes.world_size, pin_memory=device.type == "cuda", labels=data[1],
                          label_dropout=cfg.label_dropout, no_label=cfg.model.num_classes)
    if processes.writes:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    metrics = MetricsLog(run_dir / "metrics.jsonl", state.step, writes=processes.writes)  # drops lines after it
    net = distributed.wrap(state.model, processes, device)
    net = torch.compile(net) if cfg.compile else net
    bar = _progress_bar(cfg, state.step, progress)
    session_start, wall_time_before = time.perf_counter(), state.wall_time
    try:
        while state.step < cfg.steps:
            lr = _train_one_step(state, net, schedule, batches, processes)
            metrics.add_loss(distributed.mean_over_processes(state.last_loss, processes, device))
            state.wall_time = wall_time_before + time.perf_counter() - session_start
            if state.step % cfg.log_every == 0 or state.step == cfg.steps:
                row = metrics.write(state.step, lr, cfg.batch_size)
                bar.set_postfix(loss=f"{row['loss']:.4f}", img_s=f"{row['images_per_s']:.0f}")
            if (cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0) or state.step == cfg.steps:
                last_checkpoint = _save(state, run_dir, batches, processes)
            if processes.writes and cfg.sample_every and state.step % cfg.sample_every == 0:
                save_preview(state.ema, cfg, schedule, device, state.step, run_dir, on_sample)
            bar.update(1)
    finally:
        bar.close()
    ema_model = UNet(cfg.model).to(device)
    state.ema.copy_to(ema_model)
    return TrainResult(run_dir=run_dir, step=state.step, final_loss=metrics.last_loss, wall_time_s=state.wall_time,
                       checkpoint=last_checkpoint, model=state.model.eval(), ema_model=ema_model.eval())


def _train_one_step(state: RunState, net: torch.nn.Module, schedule: NoiseSchedule, batches: BatchStream,
                    processes: Processes) -> float:
    """Set the learning rate, take one :func:`training_step` on the next batch, update the EMA; return the rate."""
    cfg, step = state.cfg, state.step + 1
    lr = lr_at(step, cfg)
    for group in state.optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)  # (checkpoints before Muon have no lr_scale)
    x0, labels = batches.next_with_labels()
    x0, labels = x0.to(state.device), None if labels is None else labels.to(state.device)
    if cfg.channels_last:
        x0 = x0.contiguous(memory_format=torch.channels_last)
    t, noise = _slice_of_global_draw(cfg, schedule, x0, processes) if processes.distributed else (None, None)
    try:
        loss = training_step(
            net, schedule, state.optimizer, x0,
            loss_type=cfg.loss_type, loss_weighting=cfg.loss_weighting, min_snr_gamma=cfg.min_snr_gamma,
            grad_clip=cfg.grad_clip, scaler=state.scaler, amp_dtype=state.amp_dtype, t=t, noise=noise, labels=labels,
        )
    except NonFiniteLossError as err:
        raise NonFiniteLossError(f"step {step}: {err}") from None
    state.ema.update(state.model)
    state.step, state.last_loss = step, loss
    return lr


def _slice_of_global_draw(cfg: TrainConfig, schedule: NoiseSchedule, x0: torch.Tensor,
                          processes: Processes) -> tuple[torch.Tensor, torch.Tensor]:
    """This process's part of the timesteps and noise of the whole global batch, drawn alike on every process.

    Drawn in :func:`training_step`'s order (t, then eps shaped like the batch), so that N
    processes use the numbers that one process would.
    """
    part = rank_slice(cfg.batch_size, processes.rank, processes.world_size)
    t = sample_timesteps(cfg.batch_size, schedule.T, device=x0.device)  # (B,) in 1..T
    like = torch.empty((cfg.batch_size, *x0.shape[1:]), dtype=x0.dtype, device=x0.device)
    like = like.contiguous(memory_format=torch.channels_last) if cfg.channels_last else like
    return t[part], torch.randn_like(like)[part]


def _save(state: RunState, run_dir: Path, batches: BatchStream, processes: Processes) -> Path:
    """Process 0 writes the checkpoint of this step; the others wait until it is on disk."""
    path = checkpoint_path(run_dir, state.step)
    if processes.writes:
        path = state.save(run_dir, batches.generator_state())
    distributed.wait_for_all(processes)
    return path


def _checked_source(cfg: TrainConfig, source: torch.Tensor | Dataset) -> torch.Tensor | Dataset:
    """``source``, if its images have the shape ``cfg.model`` takes; else ``ValueError``."""
    expected = (cfg.model.image_channels, cfg.model.image_size, cfg.model.image_size)
    if isinstance(source, torch.Tensor):
        if source.dim() != 4 or tuple(source.shape[1:]) != expected or not torch.is_floating_point(source):
            raise ValueError(f"images must be a float tensor of shape (N, {', '.join(map(str, expected))}), "
                             f"got {tuple(source.shape)}")
        return source
    first = source[0]
    if tuple(first.shape) != expected or first.dtype != torch.uint8:
        raise ValueError(f"the images of data={cfg.data!r} must be uint8 of shape {expected} (model.image_channels, "
                         f"model.image_size, model.image_size), got {first.dtype} {tuple(first.shape)}")
    return source


def _checked_labels(cfg: TrainConfig, source: torch.Tensor | Dataset, labels: torch.Tensor | None) -> torch.Tensor | None:
    """The classes of the training images for a class-conditional network (None for an unconditional one)."""
    n = cfg.model.num_classes
    if n == 0:
        return None
    if labels is None:
        if cfg.data not in ("offline", "mnist") or not isinstance(source, torch.Tensor):
            raise ValueError(f"a class-conditional network (model.num_classes={n}) trains on the digits "
                             f"(data='offline' or 'mnist') or on images given with their labels; got data={cfg.data!r}")
        from ..data import load_digits

        labels = load_digits(cfg.data, "train")[1]
    if labels.shape != (source.shape[0],) or torch.is_floating_point(labels) or int(labels.min()) < 0 \
            or int(labels.max()) >= n:
        raise ValueError(f"labels must be integers in 0..{n - 1}, one per image ({source.shape[0]},), "
                         f"got {labels.dtype} of shape {tuple(labels.shape)}")
    return labels.long()


def _progress_bar(cfg: TrainConfig, step: int, progress: bool):
    """A tqdm bar over the run's steps, starting at ``step``; disabled unless ``progress``."""
    if progress:
        from tqdm.auto import tqdm  # a widget in notebooks, text in a terminal
    else:
        from tqdm import tqdm  # disabled; the plain class needs no notebook widgets
    return tqdm(total=cfg.steps, initial=step, disable=not progress, desc="training", dynamic_ncols=True)
