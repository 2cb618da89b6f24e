"""The state of a training run, and its checkpoints: everything needed to go on bit for bit.

A checkpoint holds the weights, their moving average, the optimizer's moments, the gradient
scaler, the step, the training time and every random generator (the global ones, which draw
t and eps, and the one that draws the batches). So N steps in one go and N/2 steps, a stop,
a resume and N/2 more give the same weights on a CPU.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from ..unet import UNet
from ..weights import checkpoint_path, list_checkpoints, load_newest_checkpoint, write_atomic
from .config import TrainConfig, config_differences
from .optim import EMA, make_optimizer
from .step import NonFiniteLossError


@dataclass(kw_only=True)
class RunState:
    """What one training run carries from step to step."""

    cfg: TrainConfig
    device: torch.device
    amp_dtype: torch.dtype | None  # autocast dtype of this session (None: full precision)
    model: UNet
    ema: EMA
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    data_generator: torch.Generator  # draws the batches, on the CPU
    step: int = 0  # optimizer steps done
    wall_time: float = 0.0  # training time over all sessions, in seconds
    last_loss: float = float("nan")  # the loss of the last step of this session

    @classmethod
    def fresh(cls, cfg: TrainConfig, device: torch.device, amp_dtype: torch.dtype | None,
              use_scaler: bool) -> "RunState":
        """The state before the first step, fully determined by ``cfg.seed``."""
        torch.manual_seed(cfg.seed)
        model = UNet(cfg.model).to(device)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return cls(
            cfg=cfg, device=device, amp_dtype=amp_dtype, model=model,
            ema=EMA(model, cfg.ema_decay),
            optimizer=make_optimizer(model, cfg),
            scaler=torch.amp.GradScaler(device.type, enabled=use_scaler),
            data_generator=torch.Generator().manual_seed(cfg.seed),
        )

    def restore(self, path: Path, ckpt: dict) -> None:
        """Continue from checkpoint ``ckpt`` (read from ``path``), which must come from this configuration."""
        saved = json.loads(ckpt["config"])
        diffs = config_differences(saved, self.cfg)
        if diffs:
            raise ValueError(f"checkpoint {path} comes from a different configuration: " + "; ".join(diffs))
        if ckpt["step"] > self.cfg.steps:
            raise ValueError(f"steps={self.cfg.steps} is smaller than the checkpoint's step {ckpt['step']}")
        if self.cfg.lr_decay == "cosine" and saved["steps"] != self.cfg.steps:
            raise ValueError(f"with lr_decay='cosine' the learning rate depends on steps, so steps must stay "
                             f"{saved['steps']} (the checkpoint's); got steps={self.cfg.steps}")
        self.model.load_state_dict(ckpt["model"])
        self.ema.load_state_dict(ckpt["ema"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self._restore_scaler(ckpt, path)
        self.step, self.wall_time = int(ckpt["step"]), float(ckpt["wall_time_s"])
        torch.set_rng_state(ckpt["rng_cpu"].cpu())
        if self.device.type == "cuda" and ckpt.get("rng_cuda") is not None:
            torch.cuda.set_rng_state_all([s.cpu() for s in ckpt["rng_cuda"]])
        self.data_generator.set_state(ckpt["rng_data"].cpu())

    def _restore_scaler(self, ckpt: dict, path: Path) -> None:
        """Restore the gradient scaler, or start a fresh one if the checkpoint's session had none.

        A run may resume on another kind of device (Colab can hand out a T4 after an A100): the
        precision then changes, the run goes on, and a warning says it is no longer exactly what
        one uninterrupted session would have computed.
        """
        saved, now = ckpt.get("autocast"), dtype_name(self.amp_dtype)
        if saved is not None and saved != now:
            warnings.warn(f"checkpoint {path} was trained with autocast {saved}; this session uses {now} "
                          f"(another device). Training goes on, but no longer bit-identically to an "
                          f"uninterrupted run", stacklevel=5)  # the caller of train()
        if self.scaler.is_enabled() and not ckpt["scaler"]:
            return  # the saving session ran without a scaler: this one starts with a fresh scale
        self.scaler.load_state_dict(ckpt["scaler"])

    def checkpoint(self, data_state: torch.Tensor) -> dict:
        """Everything :meth:`restore` needs, as tensors and plain data.

        ``data_state`` is the data generator's state before the next batch to train on
        (:meth:`~ddpm_core.train.batches.BatchStream.generator_state`): a loader reading ahead
        has moved the generator itself further.
        """
        return {
            "step": self.step,
            "wall_time_s": self.wall_time,
            "config": json.dumps(self.cfg.to_dict()),
            "autocast": dtype_name(self.amp_dtype),  # what amp resolved to on this session's device
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
            "rng_data": data_state,
        }

    def save(self, run_dir: Path, data_state: torch.Tensor) -> Path:
        """Write the checkpoint of this step (only if every weight is finite) and prune old ones."""
        self.check_finite()
        path = checkpoint_path(run_dir, self.step)
        state = self.checkpoint(data_state)
        write_atomic(path, lambda tmp: torch.save(state, tmp))
        if self.cfg.keep_checkpoints:
            for old in list_checkpoints(run_dir)[1:-self.cfg.keep_checkpoints]:  # the first and the newest stay
                old.unlink()
        return path

    def check_finite(self) -> None:
        """Raise :class:`NonFiniteLossError` if a weight or an average of one is NaN or infinite."""
        bad = [n for n, p in self.model.named_parameters() if not bool(torch.isfinite(p).all())]
        bad += [f"ema.{n}" for n, v in self.ema.shadow.items() if not bool(torch.isfinite(v).all())]
        if bad:
            raise NonFiniteLossError(f"non-finite weights at step {self.step} ({bad[:3]} ...); no checkpoint written")


def dtype_name(dtype: torch.dtype | None) -> str:
    """"float32" for full precision, else the autocast dtype's name ("bfloat16", "float16")."""
    return "float32" if dtype is None else str(dtype).removeprefix("torch.")


def start_or_resume(cfg: TrainConfig, run_dir: Path, resume: bool, device: torch.device,
                    amp_dtype: torch.dtype | None, use_scaler: bool) -> tuple[RunState, Path | None]:
    """A fresh state, or the state of the newest readable checkpoint of ``run_dir``, and that checkpoint's path."""
    state = RunState.fresh(cfg, device, amp_dtype, use_scaler)  # a resumed run overwrites all of it
    if list_checkpoints(run_dir) and not resume:
        raise ValueError(f"run_dir {run_dir} already holds checkpoints; resume it (resume=True; on the command "
                         f"line, leave out --no-resume) or use a new run_dir")
    newest = load_newest_checkpoint(run_dir, map_location=device) if resume else None
    if newest is None:
        if resume and list_checkpoints(run_dir):
            raise ValueError(f"no checkpoint in {run_dir / 'checkpoints'} can be read; move them away to start the run over")
        return state, None
    state.restore(*newest)
    return state, newest[0]
