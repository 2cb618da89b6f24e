"""Training: Algorithm 1 of Ho et al. (2020) with the engineering around it.

The mathematics is three lines (:func:`training_step`): draw t ~ Uniform{1..T} and
eps ~ N(0, I), form x_t, take a gradient step on L_simple, eq. {eq}`eq-loss-simple`.
Everything else here makes a run reproducible and safe to stop:

* an exponential moving average of the weights (:class:`EMA`), which is what samples use;
* a learning-rate warm-up (:func:`lr_at`);
* Adam, or optionally :class:`Muon` for the weight matrices (:func:`make_optimizer`);
* checkpoints holding every piece of state (model, EMA, optimizer, gradient scaler, step,
  random-number generators), so that N steps in one go and N/2 + resume + N/2 give
  bit-identical weights on a CPU; resuming skips a damaged newest checkpoint for the one
  before it;
* a stop with :class:`NonFiniteLossError` at the first non-finite loss, before anything
  is written, so the last checkpoint on disk is always a good one;
* mixed precision, channels-last memory and ``torch.compile`` on a GPU, all optional.

Checkpoints are read with ``torch.load(..., weights_only=True)``, which refuses pickled
code; finished weights are exported as safetensors with a JSON sidecar (:func:`save_model`).

Timestep convention: the paper's t = 1..T; schedule arrays are indexed by t directly.

Command line::

    python -m ddpm_core.train --run-dir runs/mnist --quick --export weights.safetensors
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import re
import sys
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Literal

import torch

from .ddim import ddim_sample_loop
from .losses import min_snr_weight, sample_timesteps, simple_loss
from .schedules import NoiseSchedule
from .unet import UNet, UNetConfig

SCHEDULES = ("linear", "cosine")
LOSS_TYPES = ("l2", "l1")
LR_DECAYS = ("none", "cosine")
LOSS_WEIGHTINGS = ("uniform", "min_snr")
OPTIMIZERS = ("adam", "muon")
DATA_SOURCES = ("offline", "mnist")
AMP_MODES = ("auto", "off", "fp16", "bf16")
DEVICES = ("auto", "cpu", "cuda")
ASSETS = Path(__file__).parent / "assets"
PRETRAINED = ASSETS / "mnist_ddpm.safetensors"
PRETRAINED_GUIDE = ASSETS / "mnist_ddpm_guide.safetensors"  # its run's first checkpoint (ddpm_core.guidance)


class NonFiniteLossError(RuntimeError):
    """Training met a NaN or infinite loss (or gradient, or weight) and stopped."""


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything that determines a training run.

    A run resumes only with the configuration it was started with, except for the fields in
    :data:`RESUMABLE_CHANGES`, which do not change the weights (``steps`` may grow, unless
    ``lr_decay="cosine"``).

    Attributes:
        T: number of diffusion steps.
        schedule: ``"linear"`` (Ho et al.) or ``"cosine"`` (Nichol & Dhariwal).
        batch_size: images per step.
        lr: peak learning rate of Adam.
        optimizer: ``"adam"`` for every parameter, or ``"muon"``: :class:`Muon` for the
            weight matrices and convolution filters between the first and the last layer,
            Adam (at ``lr``) for the rest (:func:`make_optimizer`).
        muon_lr: peak learning rate of the Muon parameters (``optimizer="muon"`` only); it
            follows the same warm-up and decay as ``lr``.
        warmup_steps: steps of linear warm-up from 0 to ``lr`` (0: none).
        lr_decay: after the warm-up, ``"none"`` (constant ``lr``) or ``"cosine"`` (down to 0
            at the last step, eq. {eq}`eq-training-lr`). With ``"cosine"`` the learning rate
            depends on ``steps``, so a run cannot be resumed with a different ``steps``.
        steps: total number of optimizer steps.
        ema_decay: decay of the exponential moving average of the weights, in [0, 1).
        grad_clip: clip the gradient's global norm to this value (0: no clipping).
        loss_type: ``"l2"`` (L_simple) or ``"l1"``.
        loss_weighting: ``"uniform"`` (every t weighs 1: L_simple) or ``"min_snr"`` (each
            example's error times :func:`~ddpm_core.losses.min_snr_weight`, eq. {eq}`eq-min-snr`).
        min_snr_gamma: the cap gamma of ``"min_snr"``.
        seed: seed of the weights' initialisation, the data order and the noise.
        checkpoint_every: write a checkpoint every this many steps (0: only at the end).
        keep_checkpoints: keep the run's first checkpoint (the autoguidance guide) and the
            newest this many, deleting the others as new ones are written (0: keep all).
        log_every: append a line to metrics.jsonl every this many steps.
        sample_every: save a grid of EMA samples every this many steps (0: never).
        data: ``"offline"`` (the 4,500 training digits of :func:`ddpm_core.data.load_mnist_5k`)
            or ``"mnist"`` (60,000 digits through torchvision, needs a network).
        amp: mixed precision: ``"auto"`` (bf16 on GPUs and CPUs that compute in it natively;
            else fp16 with a gradient scaler on a GPU, off on a CPU), ``"off"``, ``"fp16"``
            (GPU only) or ``"bf16"``.
        channels_last: store activations as (B, H, W, C) in memory (faster on recent GPUs).
        compile: wrap the model in ``torch.compile``.
        device: ``"auto"`` (CUDA if available), ``"cpu"`` or ``"cuda"``.
        model: the :class:`~ddpm_core.unet.UNetConfig`.
    """

    T: int = 1000
    schedule: Literal["linear", "cosine"] = "linear"
    batch_size: int = 128
    lr: float = 2e-4
    optimizer: Literal["adam", "muon"] = "adam"
    muon_lr: float = 0.01
    warmup_steps: int = 1000
    lr_decay: Literal["none", "cosine"] = "none"
    steps: int = 20000
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    loss_type: Literal["l2", "l1"] = "l2"
    loss_weighting: Literal["uniform", "min_snr"] = "uniform"
    min_snr_gamma: float = 5.0
    seed: int = 0
    checkpoint_every: int = 1000
    keep_checkpoints: int = 0
    log_every: int = 100
    sample_every: int = 0
    data: Literal["offline", "mnist"] = "offline"
    amp: Literal["auto", "off", "fp16", "bf16"] = "auto"
    channels_last: bool = False
    compile: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    model: UNetConfig = dataclasses.field(default_factory=UNetConfig)

    def __post_init__(self) -> None:
        _check_int("T", self.T, 1)
        _check_choice("schedule", self.schedule, SCHEDULES)
        _check_int("batch_size", self.batch_size, 1)
        if not (_is_number(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        if not (_is_number(self.muon_lr) and self.muon_lr > 0):
            raise ValueError(f"muon_lr must be a finite number > 0, got {self.muon_lr!r}")
        _check_int("warmup_steps", self.warmup_steps, 0)
        _check_choice("lr_decay", self.lr_decay, LR_DECAYS)
        _check_int("steps", self.steps, 1)
        if not (_is_number(self.ema_decay) and 0.0 <= self.ema_decay < 1.0):
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay!r}")
        if not (_is_number(self.grad_clip) and self.grad_clip >= 0):
            raise ValueError(f"grad_clip must be a finite number >= 0 (0: no clipping), got {self.grad_clip!r}")
        _check_choice("loss_type", self.loss_type, LOSS_TYPES)
        _check_choice("loss_weighting", self.loss_weighting, LOSS_WEIGHTINGS)
        if not (_is_number(self.min_snr_gamma) and self.min_snr_gamma > 0):
            raise ValueError(f"min_snr_gamma must be a finite number > 0, got {self.min_snr_gamma!r}")
        _check_int("seed", self.seed, 0)
        _check_int("checkpoint_every", self.checkpoint_every, 0)
        _check_int("keep_checkpoints", self.keep_checkpoints, 0)
        _check_int("log_every", self.log_every, 1)
        _check_int("sample_every", self.sample_every, 0)
        _check_choice("data", self.data, DATA_SOURCES)
        _check_choice("amp", self.amp, AMP_MODES)
        for name in ("channels_last", "compile"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        _check_choice("device", self.device, DEVICES)
        if not isinstance(self.model, UNetConfig):
            raise ValueError(f"model must be a UNetConfig, got {type(self.model).__name__}")

    def to_dict(self) -> dict:
        """The fields as a JSON-friendly dict, with ``model`` nested."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["model"] = self.model.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {sorted(unknown)}")
        d = dict(d)
        if "model" in d:
            d["model"] = UNetConfig.from_dict(d["model"])
        return cls(**d)


# Fields a resumed session may set differently: they change when things are logged, saved,
# previewed or compiled, and how long the run is, but not what one step computes.
RESUMABLE_CHANGES = ("steps", "checkpoint_every", "keep_checkpoints", "log_every", "sample_every", "compile")


def make_schedule(cfg: TrainConfig) -> NoiseSchedule:
    """The :class:`NoiseSchedule` a configuration trains with."""
    return NoiseSchedule.linear(cfg.T) if cfg.schedule == "linear" else NoiseSchedule.cosine(cfg.T)


class EMA:
    """Exponential moving average of a model's parameters: theta_ema <- d theta_ema + (1 - d) theta.

    The decay is warmed up as d_n = min(decay, (1 + n) / (10 + n)) after n updates, so that a
    short run is not dominated by the random initial weights (with d = 0.999 and no warm-up,
    the initial weights would still weigh 0.999^2000 = 14% after 2,000 steps).

    Args:
        model: the model whose parameters are averaged (they are copied now).
        decay: the target decay d, in [0, 1).
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        if not (_is_number(decay) and 0.0 <= decay < 1.0):
            raise ValueError(f"decay must be in [0, 1), got {decay!r}")
        self.decay = float(decay)
        self.num_updates = 0
        self.shadow = {name: p.detach().clone() for name, p in model.named_parameters()}

    def current_decay(self) -> float:
        """The decay the next :meth:`update` uses."""
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """Move every average towards the model's current parameters."""
        d = self.current_decay()
        for name, p in model.named_parameters():
            self.shadow[name].lerp_(p.detach(), 1.0 - d)  # shadow + (1 - d) (p - shadow)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: torch.nn.Module) -> None:
        """Overwrite ``model``'s parameters with the averages."""
        for name, p in model.named_parameters():
            p.copy_(self.shadow[name])

    def state_dict(self) -> dict:
        """decay, num_updates and the averaged tensors."""
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": dict(self.shadow)}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""
        if set(state["shadow"]) != set(self.shadow):
            raise ValueError("EMA state does not match the model's parameters")
        self.decay = float(state["decay"])
        self.num_updates = int(state["num_updates"])
        for name, value in state["shadow"].items():
            self.shadow[name].copy_(value)



def newton_schulz_orthogonalize(G: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """Approximately the orthogonal factor U V^T of a matrix G = U S V^T, by Newton-Schulz.

    After scaling G to spectral norm <= 1 (dividing by its Frobenius norm), each iteration
    X <- a X + (b A + c A^2) X with A = X X^T applies the odd polynomial
    p(s) = a s + b s^3 + c s^5 to every singular value s and leaves U and V alone. The
    coefficients (a, b, c) = (3.4445, -4.7750, 2.0315) of Jordan et al.'s Muon push every
    s in (0, 1] towards 1 quickly, to roughly [0.7, 1.2] after five steps: close enough to
    U V^T for an optimizer, at the cost of 15 matrix products.

    Args:
        G: a matrix of shape (m, n), or a batch of them, (k, m, n), each treated alone.
        steps: iterations.

    Returns:
        float32, G's shape.
    """
    a, b, c = 3.4445, -4.7750, 2.0315
    X = G.to(torch.float32)
    X = X / (torch.linalg.matrix_norm(X, keepdim=True) + 1e-7)  # Frobenius norm of each matrix
    transposed = X.shape[-2] > X.shape[-1]
    if transposed:  # iterate on the wide orientation: A = X X^T is the smaller square
        X = X.mT
    for _ in range(steps):
        A = X @ X.mT
        X = a * X + (b * A + c * A @ A) @ X
    return X.mT if transposed else X


class Muon(torch.optim.Optimizer):
    """Muon (Jordan et al., 2024) for the groups with ``use_muon=True``, Adam for the others.

    For a weight W of shape (out, in) (a convolution's filters are read as (out, in * k * k)),
    with gradient G and momentum mu:

        M <- mu M + (1 - mu) G,     D = (1 - mu) G + mu M   (Nesterov),
        W <- W - lr * sqrt(max(1, out / in)) * newton_schulz_orthogonalize(D).

    The step replaces D's singular values by about 1, so every direction of the update moves
    the weight by a similar amount, however unequal the gradient's directions are. Matrices
    of the same shape are orthogonalized together, as one batch (fewer, larger products).
    Groups with ``use_muon=False`` (biases, normalisation gains, the first and last layers)
    take plain Adam steps with ``betas`` and ``eps``.
    """

    def __init__(self, param_groups: list[dict], momentum: float = 0.95, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        super().__init__(param_groups, dict(momentum=momentum, betas=betas, eps=eps))

    @torch.no_grad()
    def step(self, closure: None = None) -> None:
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if group["use_muon"]:
                self._muon_step(group, params)
            else:
                self._adam_step(group, params)

    def _muon_step(self, group: dict, params: list[torch.Tensor]) -> None:
        mu, directions = group["momentum"], []
        for p in params:
            state = self.state[p]
            if not state:
                state["momentum"] = torch.zeros_like(p)
            state["momentum"].lerp_(p.grad, 1 - mu)
            directions.append(p.grad.lerp(state["momentum"], mu).reshape(p.shape[0], -1))  # D, (out, in * k * k)
        by_shape: dict[torch.Size, list[int]] = {}
        for i, d in enumerate(directions):
            by_shape.setdefault(d.shape, []).append(i)
        for (rows, cols), indices in by_shape.items():
            orthogonal = newton_schulz_orthogonalize(torch.stack([directions[i] for i in indices]))
            scale = max(1.0, rows / cols) ** 0.5
            for i, o in zip(indices, orthogonal):
                params[i].add_(o.view_as(params[i]), alpha=-group["lr"] * scale)

    def _adam_step(self, group: dict, params: list[torch.Tensor]) -> None:
        beta1, beta2 = group["betas"]
        for p in params:
            state = self.state[p]
            if not state:
                state["step"], state["m"], state["v"] = 0, torch.zeros_like(p), torch.zeros_like(p)
            state["step"] += 1
            state["m"].lerp_(p.grad, 1 - beta1)
            state["v"].lerp_(p.grad.square(), 1 - beta2)
            m_hat = state["m"] / (1 - beta1 ** state["step"])
            v_hat = state["v"] / (1 - beta2 ** state["step"])
            p.addcdiv_(m_hat, v_hat.sqrt().add_(group["eps"]), value=-group["lr"])


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam over every parameter, or (``cfg.optimizer="muon"``) :class:`Muon`.

    With Muon, the weights of 2 or more dimensions take Muon steps at ``cfg.muon_lr``,
    except those of the first and last convolutions (``conv_in``, ``conv_out``), which,
    with every bias and normalisation gain, take Adam steps at ``cfg.lr``. Each group's
    ``lr_scale`` is its peak rate over ``cfg.lr``: :func:`train` sets a group's rate to
    ``lr_at(step, cfg) * lr_scale``.
    """
    if cfg.optimizer == "adam":
        return torch.optim.Adam([{"params": list(model.parameters()), "lr_scale": 1.0}], lr=cfg.lr)
    named = list(model.named_parameters())
    is_muon = [p.dim() >= 2 and not name.startswith(("conv_in.", "conv_out.")) for name, p in named]
    return Muon([
        {"params": [p for (_, p), m in zip(named, is_muon) if m], "use_muon": True, "lr": cfg.muon_lr,
         "lr_scale": cfg.muon_lr / cfg.lr},
        {"params": [p for (_, p), m in zip(named, is_muon) if not m], "use_muon": False, "lr": cfg.lr,
         "lr_scale": 1.0},
    ])


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate of step ``step`` (1-based): a linear warm-up to ``cfg.lr``, then ``cfg.lr_decay``.

    Warm-up, eq. {eq}`eq-training-warmup`: lr_n = lr * n / W for n <= W = ``warmup_steps``, as
    in Ho et al. (who warm up for 5,000 steps). After it, ``"none"`` keeps lr; ``"cosine"``,
    eq. {eq}`eq-training-lr`, follows half a cosine from lr down to 0 at n = N = ``steps``:
    lr_n = lr * (1 + cos(pi * (n - W) / (N - W))) / 2.
    """
    _check_int("step", step, 1)
    if step <= cfg.warmup_steps:
        return cfg.lr * step / cfg.warmup_steps
    if cfg.lr_decay == "none" or cfg.steps <= cfg.warmup_steps:
        return cfg.lr
    progress = min(1.0, (step - cfg.warmup_steps) / (cfg.steps - cfg.warmup_steps))  # 0 -> 1 after the warm-up
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def training_step(
    model: torch.nn.Module,
    schedule: NoiseSchedule,
    optimizer: torch.optim.Optimizer,
    x0: torch.Tensor,
    *,
    loss_type: Literal["l2", "l1"] = "l2",
    loss_weighting: Literal["uniform", "min_snr"] = "uniform",
    min_snr_gamma: float = 5.0,
    grad_clip: float = 1.0,
    scaler: torch.amp.GradScaler | None = None,
    amp_dtype: torch.dtype | None = None,
) -> float:
    """One step of Algorithm 1: t ~ Uniform{1..T}, eps ~ N(0, I), a gradient step on L_simple.

    Eq. {eq}`eq-loss-simple`. Random numbers come from torch's global generator on x0's
    device, so that :func:`train` can save and restore them.

    Args:
        model: eps_theta, called as ``model(x_t, t)`` with t in 1..T.
        schedule: the noise schedule.
        optimizer: the optimizer of ``model``'s parameters (its learning rate already set).
        x0: a batch of training images, shape (B, C, H, W), in [-1, 1].
        loss_type: ``"l2"`` or ``"l1"``, see :func:`ddpm_core.losses.simple_loss`.
        loss_weighting: ``"uniform"`` (L_simple) or ``"min_snr"`` (each example weighted by
            :func:`ddpm_core.losses.min_snr_weight` with ``min_snr_gamma``).
        grad_clip: clip the gradient's global norm to this value (0: no clipping).
        scaler: a gradient scaler for fp16 (None or disabled: no scaling).
        amp_dtype: autocast dtype (None: full precision).

    Returns:
        the loss of this batch (weighted, if ``loss_weighting`` says so), as a float.

    Raises:
        NonFiniteLossError: the loss (or, without a scaler, the gradient) is NaN or infinite;
            the weights are left untouched.
    """
    model.train()
    t = sample_timesteps(x0.shape[0], schedule.T, device=x0.device)  # (B,) in 1..T
    noise = torch.randn_like(x0)
    weights = min_snr_weight(schedule, t, min_snr_gamma) if loss_weighting == "min_snr" else None  # (B,) or None
    with torch.autocast(device_type=x0.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        loss = simple_loss(schedule, model, x0, t, noise=noise, loss_type=loss_type, weights=weights)
    value = float(loss.detach())
    if not math.isfinite(value):
        raise NonFiniteLossError(f"the loss is {value}; training stopped before the optimizer step")
    optimizer.zero_grad(set_to_none=True)
    scaling = scaler is not None and scaler.is_enabled()
    if scaling:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)  # so that the clipping threshold is in true gradient units
    else:
        loss.backward()
    max_norm = grad_clip if grad_clip > 0 else math.inf
    grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm))
    if not scaling and not math.isfinite(grad_norm):
        # (With fp16 an infinite gradient is routine: the scaler skips the step and lowers its scale.)
        raise NonFiniteLossError(f"the gradient norm is {grad_norm}; training stopped before the optimizer step")
    if scaling:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return value


def resolve_device(cfg: TrainConfig) -> torch.device:
    """The device a configuration runs on; ``"cuda"`` without a GPU raises ``ValueError``."""
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for but torch.cuda.is_available() is False")
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.device)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (AVX512-BF16 or AMX instructions).

    Without them torch still runs bf16 on a CPU, but by emulation, which is slower than float32.
    The checks are torch's own (private) ones; a torch without them counts as False.
    """
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check is not None and bool(check()) for check in checks)


def resolve_amp(cfg: TrainConfig, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """Autocast dtype (None: off) and whether a gradient scaler is needed.

    ``"auto"``: bf16 where the device computes in it natively: GPUs of compute capability
    >= 8.0, CPUs with AVX512-BF16 or AMX (:func:`cpu_has_native_bf16`). No scaler is needed:
    bf16 has float32's range. Otherwise fp16 with a scaler on a GPU (e.g. a T4), and float32
    on a CPU.
    """
    cuda = device.type == "cuda"
    if cfg.amp == "off":
        return None, False
    if cfg.amp == "fp16":
        if not cuda:
            raise ValueError("amp='fp16' needs a CUDA device (use 'bf16' or 'off' on a CPU)")
        return torch.float16, True
    if cfg.amp == "bf16":
        if cuda and torch.cuda.get_device_capability(device)[0] < 8:
            major, minor = torch.cuda.get_device_capability(device)
            raise ValueError(f"amp='bf16' needs a GPU of compute capability 8.0 or newer; this one is {major}.{minor}, "
                             f"which only emulates bf16, slowly. Use 'fp16' or 'auto'")
        return torch.bfloat16, False
    if not cuda:  # "auto" on a CPU
        return (torch.bfloat16, False) if cpu_has_native_bf16() else (None, False)
    # "auto" on a GPU. Native bf16 needs compute capability 8.0 (Ampere) or newer; older cards
    # such as Colab's T4 (7.5) only emulate it slowly, and torch.cuda.is_bf16_supported()
    # counts emulation as support, so the capability is checked instead.
    native_bf16 = torch.cuda.get_device_capability(device)[0] >= 8
    return (torch.bfloat16, False) if native_bf16 else (torch.float16, True)


def load_training_images(cfg: TrainConfig) -> torch.Tensor:
    """The training images of ``cfg.data``, shape (N, 1, 32, 32) in [-1, 1], on the CPU."""
    from .data import load_digits

    images, _ = load_digits(cfg.data, "train")
    return images


def sample_batch(images: torch.Tensor, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """Draw ``batch_size`` images uniformly with replacement, using ``generator`` (on the CPU)."""
    idx = torch.randint(0, images.shape[0], (batch_size,), generator=generator)
    return images[idx]  # (B, C, H, W)


# ----------------------------------------------------------------------------- checkpoints

CHECKPOINT_RE = re.compile(r"^step_(\d{7})\.pt$")


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    """run_dir/checkpoints/step_XXXXXXX.pt."""
    return Path(run_dir) / "checkpoints" / f"step_{step:07d}.pt"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """The checkpoints of a run, oldest first."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if CHECKPOINT_RE.match(p.name)]
    return sorted(found, key=lambda p: int(CHECKPOINT_RE.match(p.name).group(1)))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint safely: ``weights_only=True`` refuses anything but tensors and plain data."""
    return torch.load(path, map_location=map_location, weights_only=True)


def load_newest_checkpoint(run_dir: str | Path, map_location: str | torch.device = "cpu") -> tuple[Path, dict] | None:
    """The newest checkpoint of a run that can be read, as (path, contents); None if there is none.

    A file that cannot be read (cut short when a session died on a file system that lost the
    end of it, or damaged later) is skipped with a warning naming it, and the one before it is
    tried. The skipped file is left where it is; the resumed run overwrites it when it gets there.
    """
    for path in reversed(list_checkpoints(run_dir)):
        try:
            return path, load_checkpoint(path, map_location=map_location)
        except Exception as err:  # torch raises RuntimeError, EOFError or UnpicklingError for a damaged file
            warnings.warn(f"skipping checkpoint {path}, which cannot be read ({type(err).__name__}: {err}); "
                          f"trying the one before it", stacklevel=2)
    return None


def config_differences(saved: dict, cfg: TrainConfig, ignore: tuple[str, ...] = RESUMABLE_CHANGES) -> list[str]:
    """Fields (``model.*`` for the network's) where ``saved`` and ``cfg`` differ, ``ignore`` left out.

    A field missing from ``saved`` (written before the field existed) counts as its default.
    """
    current = cfg.to_dict()
    defaults = TrainConfig().to_dict()
    diffs = []
    for key in sorted(set(saved) | set(current)):
        if key in ignore:
            continue
        a, b = saved.get(key, defaults.get(key)), current.get(key)
        if key == "model" and isinstance(a, dict) and isinstance(b, dict):
            a = {**defaults["model"], **a}
            diffs += [f"model.{k}: {a.get(k)!r} != {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif a != b:
            diffs.append(f"{key}: {a!r} != {b!r}")
    return diffs


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write to a temporary file, flush it to disk, then rename: a crash never leaves half a file under ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())  # the bytes are on disk before the name points at them
    os.replace(tmp, path)


def _check_finite_state(model: torch.nn.Module, ema: EMA, step: int) -> None:
    bad = [n for n, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
    bad += [f"ema.{n}" for n, v in ema.shadow.items() if not bool(torch.isfinite(v).all())]
    if bad:
        raise NonFiniteLossError(f"non-finite weights at step {step} ({bad[:3]} ...); no checkpoint written")


# ----------------------------------------------------------------------------- the loop


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


def train(
    cfg: TrainConfig,
    run_dir: str | Path,
    resume: bool = True,
    progress: bool = True,
    on_sample: Callable[[int, torch.Tensor], None] | None = None,
    images: torch.Tensor | None = None,
) -> TrainResult:
    """Train eps_theta with Algorithm 1, writing config, metrics and checkpoints to ``run_dir``.

    Files: ``config.json``; ``metrics.jsonl`` (one JSON line per ``log_every`` steps with
    step, loss, lr, images_per_s); ``checkpoints/step_XXXXXXX.pt`` every ``checkpoint_every``
    steps and at the end; ``samples/step_XXXXXXX.png`` every ``sample_every`` steps.

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
    if images is None:
        images = load_training_images(cfg)
    expected = (cfg.model.image_channels, cfg.model.image_size, cfg.model.image_size)
    if images.dim() != 4 or tuple(images.shape[1:]) != expected or not torch.is_floating_point(images):
        raise ValueError(f"images must be a float tensor of shape (N, {', '.join(map(str, expected))}), got {tuple(images.shape)}")

    # Fresh state, fully determined by the seed; a resumed run overwrites all of it.
    torch.manual_seed(cfg.seed)
    model = UNet(cfg.model).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    ema = EMA(model, cfg.ema_decay)
    optimizer = make_optimizer(model, cfg)
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
    data_generator = torch.Generator().manual_seed(cfg.seed)
    schedule = make_schedule(cfg)
    step, wall_time = 0, 0.0

    if list_checkpoints(run_dir) and not resume:
        raise ValueError(f"run_dir {run_dir} already holds checkpoints; resume it (resume=True; on the command "
                         f"line, leave out --no-resume) or use a new run_dir")
    newest = load_newest_checkpoint(run_dir, map_location=device) if resume else None
    if resume and newest is None and list_checkpoints(run_dir):
        raise ValueError(f"no checkpoint in {run_dir / 'checkpoints'} can be read; move them away to start the run over")
    last_ckpt = newest[0] if newest else None
    if newest:
        path, ckpt = newest
        diffs = config_differences(json.loads(ckpt["config"]), cfg)
        if diffs:
            raise ValueError(f"checkpoint {path} comes from a different configuration: " + "; ".join(diffs))
        if ckpt["step"] > cfg.steps:
            raise ValueError(f"steps={cfg.steps} is smaller than the checkpoint's step {ckpt['step']}")
        saved_steps = json.loads(ckpt["config"])["steps"]
        if cfg.lr_decay == "cosine" and saved_steps != cfg.steps:
            raise ValueError(f"with lr_decay='cosine' the learning rate depends on steps, so steps must stay "
                             f"{saved_steps} (the checkpoint's); got steps={cfg.steps}")
        model.load_state_dict(ckpt["model"])
        ema.load_state_dict(ckpt["ema"])
        optimizer.load_state_dict(ckpt["optimizer"])
        _load_scaler(scaler, ckpt, amp_dtype, path)
        step, wall_time = int(ckpt["step"]), float(ckpt["wall_time_s"])
        torch.set_rng_state(ckpt["rng_cpu"].cpu())
        if device.type == "cuda" and ckpt.get("rng_cuda") is not None:
            torch.cuda.set_rng_state_all([s.cpu() for s in ckpt["rng_cuda"]])
        data_generator.set_state(ckpt["rng_data"].cpu())

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    metrics_file = run_dir / "metrics.jsonl"
    _truncate_metrics(metrics_file, step)  # drop lines a crashed session wrote after its last checkpoint

    def save(at_step: int) -> Path:
        _check_finite_state(model, ema, at_step)
        state = {
            "step": at_step,
            "wall_time_s": wall_time,
            "config": json.dumps(cfg.to_dict()),
            "autocast": _dtype_name(amp_dtype),  # what amp resolved to on this session's device
            "model": model.state_dict(),
            "ema": ema.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else None,
            "rng_data": data_generator.get_state(),
        }
        path = checkpoint_path(run_dir, at_step)
        _write_atomic(path, lambda tmp: torch.save(state, tmp))
        if cfg.keep_checkpoints:
            for old in list_checkpoints(run_dir)[1:-cfg.keep_checkpoints]:  # the first and the newest stay
                old.unlink()
        return path

    net = torch.compile(model) if cfg.compile else model
    if progress:
        from tqdm.auto import tqdm  # a widget in notebooks, text in a terminal
    else:
        from tqdm import tqdm  # disabled below; the plain class needs no notebook widgets

    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, desc="training", dynamic_ncols=True)
    window_losses: list[float] = []
    final_loss = _last_logged_loss(metrics_file)
    window_start = session_start = time.perf_counter()
    wall_at_start = wall_time
    try:
        while step < cfg.steps:
            step += 1
            lr = lr_at(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)  # (checkpoints before Muon have no lr_scale)
            x0 = sample_batch(images, cfg.batch_size, data_generator).to(device)
            if cfg.channels_last:
                x0 = x0.contiguous(memory_format=torch.channels_last)
            try:
                loss = training_step(
                    net, schedule, optimizer, x0,
                    loss_type=cfg.loss_type, loss_weighting=cfg.loss_weighting, min_snr_gamma=cfg.min_snr_gamma,
                    grad_clip=cfg.grad_clip, scaler=scaler, amp_dtype=amp_dtype,
                )
            except NonFiniteLossError as err:
                raise NonFiniteLossError(f"step {step}: {err}") from None
            ema.update(model)
            window_losses.append(loss)
            wall_time = wall_at_start + time.perf_counter() - session_start

            if step % cfg.log_every == 0 or step == cfg.steps:
                now = time.perf_counter()
                final_loss = sum(window_losses) / len(window_losses)
                speed = len(window_losses) * cfg.batch_size / max(now - window_start, 1e-9)
                row = {"step": step, "loss": final_loss, "lr": lr, "images_per_s": speed}
                with open(metrics_file, "a") as f:
                    f.write(json.dumps(row) + "\n")
                bar.set_postfix(loss=f"{final_loss:.4f}", img_s=f"{speed:.0f}")
                window_losses, window_start = [], now
            if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == cfg.steps:
                last_ckpt = save(step)
            if cfg.sample_every and step % cfg.sample_every == 0:
                _preview(ema, cfg, schedule, device, step, run_dir, on_sample)
            bar.update(1)
    finally:
        bar.close()

    ema_model = UNet(cfg.model).to(device)
    ema.copy_to(ema_model)
    return TrainResult(
        run_dir=run_dir, step=step, final_loss=final_loss, wall_time_s=wall_time,
        checkpoint=last_ckpt, model=model.eval(), ema_model=ema_model.eval(),
    )


def _dtype_name(dtype: torch.dtype | None) -> str:
    return "float32" if dtype is None else str(dtype).removeprefix("torch.")


def _load_scaler(scaler: torch.amp.GradScaler, ckpt: dict, amp_dtype: torch.dtype | None, path: Path) -> None:
    """Restore the gradient scaler, or start a fresh one if the checkpoint's session had none.

    A run may resume on another kind of device (Colab can hand out a T4 after an A100): the
    precision then changes, the run goes on, and a warning says it is no longer exactly what
    one uninterrupted session would have computed.
    """
    saved = ckpt.get("autocast")
    if saved is not None and saved != _dtype_name(amp_dtype):
        warnings.warn(f"checkpoint {path} was trained with autocast {saved}; this session uses "
                      f"{_dtype_name(amp_dtype)} (another device). Training goes on, but no longer "
                      f"bit-identically to an uninterrupted run", stacklevel=3)
    if scaler.is_enabled() and not ckpt["scaler"]:
        return  # the saving session ran without a scaler: this one starts with a fresh scale
    scaler.load_state_dict(ckpt["scaler"])


def _metrics_rows(metrics_file: Path) -> list[dict]:
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


def _truncate_metrics(metrics_file: Path, step: int) -> None:
    """Keep the rows up to ``step`` (the checkpoint resumed from), dropping any damaged line."""
    if not metrics_file.exists():
        return
    kept = [row for row in _metrics_rows(metrics_file) if row["step"] <= step]
    text = "".join(json.dumps(row) + "\n" for row in kept)
    if text != metrics_file.read_text():
        metrics_file.write_text(text)


def _last_logged_loss(metrics_file: Path) -> float:
    rows = _metrics_rows(metrics_file)
    return float(rows[-1]["loss"]) if rows else math.nan


@torch.no_grad()
def _preview(ema: EMA, cfg: TrainConfig, schedule: NoiseSchedule, device: torch.device, step: int,
             run_dir: Path, on_sample: Callable[[int, torch.Tensor], None] | None) -> None:
    """16 DDIM samples of the EMA model, from a generator of their own (training RNG untouched)."""
    from .plotting import image_grid, png_bytes

    # Building the network draws its initial weights from the global generators: fork them, so
    # that a run with previews trains exactly as one without, and resumes as one.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        model = UNet(cfg.model).to(device)
    ema.copy_to(model)
    model.eval()
    generator = torch.Generator(device=device).manual_seed(cfg.seed)  # the same noise at every preview
    shape = (16, cfg.model.image_channels, cfg.model.image_size, cfg.model.image_size)
    samples = ddim_sample_loop(schedule, model, shape, num_steps=min(50, cfg.T), generator=generator).cpu()
    path = run_dir / "samples" / f"step_{step:07d}.png"
    _write_atomic(path, lambda tmp: tmp.write_bytes(png_bytes(image_grid(samples, nrow=8))))
    if on_sample is not None:
        on_sample(step, samples)


# ----------------------------------------------------------------------------- weights files


def save_model(model: UNet, config: UNetConfig, path: str | Path, metadata: dict | None = None,
               dtype: torch.dtype = torch.float32) -> None:
    """Write ``model``'s weights as safetensors and a JSON sidecar (same name, ``.json``).

    Neither file can run code when read. The sidecar holds ``{"unet_config": ..., **metadata}``;
    put the training configuration under ``metadata["train_config"]`` so that
    :func:`load_pretrained` can rebuild the noise schedule.

    Args:
        model: the network.
        config: its :class:`UNetConfig`.
        path: the ``.safetensors`` file to write.
        metadata: JSON-serialisable provenance (command, steps, date, ...).
        dtype: storage dtype (float32, or float16 for half the size).
    """
    from safetensors.torch import save_file

    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"dtype must be torch.float32, torch.float16 or torch.bfloat16, got {dtype}")
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"path must end in .safetensors, got {str(path)!r}")
    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    sidecar = {"unet_config": config.to_dict(), **(metadata or {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"format": "pt"})
    path.with_suffix(".json").write_text(json.dumps(sidecar, indent=2) + "\n")


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[UNet, dict]:
    """Read what :func:`save_model` wrote: the network (float32, eval mode) and the sidecar dict."""
    from safetensors.torch import load_file

    path = Path(path)
    sidecar_path = path.with_suffix(".json")
    if not path.exists() or not sidecar_path.exists():
        raise ValueError(f"path must name a .safetensors file with a .json sidecar next to it, got {str(path)!r}")
    info = json.loads(sidecar_path.read_text())
    model = UNet(UNetConfig.from_dict(info["unet_config"]))
    state = {k: v.float() for k, v in load_file(str(path)).items()}
    model.load_state_dict(state)
    return model.to(device).eval(), info


def load_pretrained(path: str | Path | None = None, device: str | torch.device = "cpu") -> tuple[UNet, NoiseSchedule]:
    """The MNIST model shipped in ``ddpm_core/assets`` (EMA weights) and its noise schedule.

    Args:
        path: another ``.safetensors`` file written by :func:`save_model` with a ``train_config``.
        device: where to put the model.

    Returns:
        (model, schedule): the network in eval mode and the :class:`NoiseSchedule` it was trained with.
    """
    model, info = load_model(PRETRAINED if path is None else path, device=device)
    return model, make_schedule(TrainConfig.from_dict(info["train_config"]))


def export_checkpoint(checkpoint: str | Path, path: str | Path, metadata: dict | None = None,
                      dtype: torch.dtype = torch.float32) -> None:
    """Write a checkpoint's EMA weights with :func:`save_model` (``train_config`` added to the metadata)."""
    ckpt = load_checkpoint(checkpoint)
    cfg = TrainConfig.from_dict(json.loads(ckpt["config"]))
    model = UNet(cfg.model)
    model.load_state_dict(ckpt["model"])
    ema = EMA(model, cfg.ema_decay)
    ema.load_state_dict(ckpt["ema"])
    ema.copy_to(model)
    save_model(model, cfg.model, path, {"train_config": cfg.to_dict(), "steps": int(ckpt["step"]), **(metadata or {})}, dtype)


# ----------------------------------------------------------------------------- command line

# The CPU preset of ``--quick``: what trained the model in ddpm_core/assets.
QUICK = dict(steps=6000, batch_size=128, lr=3e-3, optimizer="muon", muon_lr=0.01, warmup_steps=100,
             lr_decay="cosine", ema_decay=0.999, loss_weighting="min_snr", min_snr_gamma=5.0, checkpoint_every=500,
             log_every=100, sample_every=0, device="cpu",
             model=UNetConfig(base_channels=16, dropout=0.0, attention_resolutions=()))


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())


def _flag(field: str) -> str:
    """The command-line flag of a configuration field: batch_size -> --batch-size."""
    return "--" + field.replace("_", "-")


def _config_flag_adder(group: argparse._ArgumentGroup, defaults: object) -> Callable[..., None]:
    """A function adding the flag of one field of ``defaults``' dataclass, its default shown in the help.

    The flag's own default is None ("not given"), so that :func:`config_from_args` can tell a
    flag given from one left out.
    """
    def add(field: str, help: str = "", **kwargs) -> None:
        value = getattr(defaults, field)
        shown = ",".join(map(str, value)) or "''" if isinstance(value, tuple) else value
        group.add_argument(_flag(field), dest=field, default=None, help=f"{help} (default: {shown})".strip(), **kwargs)

    return add


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m ddpm_core.train``."""
    p = argparse.ArgumentParser(prog="python -m ddpm_core.train", description="Train a DDPM on MNIST digits.")
    p.add_argument("--run-dir", required=True, help="folder for config, metrics and checkpoints")
    p.add_argument("--quick", action="store_true", help=f"CPU preset: {QUICK} (explicit flags win)")
    p.add_argument("--no-resume", action="store_true", help="refuse to continue an existing run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (CPU)")
    p.add_argument("--export", help="at the end, write the EMA weights to this .safetensors file")
    p.add_argument("--export-guide",
                   help="also write the EMA weights of the run's first checkpoint to this .safetensors file: "
                        "a weaker model of the same run, to guide sampling with (ddpm_core.guidance)")
    p.add_argument("--export-dtype", choices=("float32", "float16"), default="float32")
    g = p.add_argument_group("training (TrainConfig; defaults are TrainConfig's, or the preset's with --quick)")
    train_flag = _config_flag_adder(g, TrainConfig())
    train_flag("T", type=int)
    train_flag("schedule", choices=SCHEDULES)
    train_flag("batch_size", type=int)
    train_flag("lr", type=float)
    train_flag("optimizer", choices=OPTIMIZERS)
    train_flag("muon_lr", type=float)
    train_flag("warmup_steps", type=int)
    train_flag("lr_decay", choices=LR_DECAYS)
    train_flag("steps", type=int)
    train_flag("ema_decay", type=float)
    train_flag("grad_clip", type=float)
    train_flag("loss_type", choices=LOSS_TYPES)
    train_flag("loss_weighting", choices=LOSS_WEIGHTINGS)
    train_flag("min_snr_gamma", type=float)
    train_flag("seed", type=int)
    train_flag("checkpoint_every", type=int)
    train_flag("keep_checkpoints", type=int, help="keep the first checkpoint and the newest N (0: all)")
    train_flag("log_every", type=int)
    train_flag("sample_every", type=int)
    train_flag("data", choices=DATA_SOURCES)
    train_flag("amp", choices=AMP_MODES)
    train_flag("channels_last", action=argparse.BooleanOptionalAction)
    train_flag("compile", action=argparse.BooleanOptionalAction)
    train_flag("device", choices=DEVICES)
    m = p.add_argument_group("network (UNetConfig)")
    net_flag = _config_flag_adder(m, UNetConfig())
    net_flag("image_size", type=int)
    net_flag("patch_size", type=int)
    net_flag("base_channels", type=int)
    net_flag("channel_mults", type=_ints, help="comma-separated, e.g. 1,2,2")
    net_flag("num_res_blocks", type=int)
    net_flag("attention_resolutions", type=_ints, help="comma-separated grid sizes, '' for none")
    net_flag("dropout", type=float)
    net_flag("num_groups", type=int)
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """TrainConfig defaults, then the ``--quick`` preset, then every flag given."""
    values = dict(QUICK) if args.quick else {}
    model_fields = {f.name for f in dataclasses.fields(UNetConfig)}
    model_values = values.pop("model").to_dict() if "model" in values else {}
    for f in dataclasses.fields(TrainConfig):
        if f.name != "model" and getattr(args, f.name, None) is not None:
            values[f.name] = getattr(args, f.name)
    for name in model_fields:
        if getattr(args, name, None) is not None:
            model_values[name] = getattr(args, name)
    return TrainConfig(**values, model=UNetConfig.from_dict(model_values))


def main(argv: list[str] | None = None) -> TrainResult:
    """Entry point of ``python -m ddpm_core.train``; returns the :class:`TrainResult`.

    Raises:
        ValueError: a flag has a value that is not allowed (the message names the flag).
    """
    args = build_parser().parse_args(argv)
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be an integer >= 1, got {args.threads}")
    for flag, path in (("--export", args.export), ("--export-guide", args.export_guide)):
        if path is not None and Path(path).suffix != ".safetensors":
            raise ValueError(f"{flag} must name a .safetensors file, got {path!r}")  # checked before training, not after
    try:
        cfg = config_from_args(args)
    except ValueError as err:  # "steps must be ..." -> "--steps must be ..."
        field, _, rest = str(err).partition(" ")
        raise ValueError(f"{_flag(field)} {rest}" if field in vars(args) else str(err)) from None
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    result = train(cfg, args.run_dir, resume=not args.no_resume, progress=not args.no_progress)
    print(f"step {result.step}: loss {result.final_loss:.4f}, {result.wall_time_s:.0f} s, checkpoint {result.checkpoint}")
    metadata = {}
    if args.export or args.export_guide:
        command = "python -m ddpm_core.train " + " ".join(sys.argv[1:] if argv is None else argv)
        metadata = {
            "command": command,
            "wall_time_s": round(result.wall_time_s, 1),
            "final_loss": result.final_loss,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            "machine": f"{os.cpu_count()}-core {platform.machine()} CPU, {torch.get_num_threads()} torch thread(s)"
            if resolve_device(cfg).type == "cpu" else torch.cuda.get_device_name(),
            "data_split": "load_mnist_5k('train'): 4,500 digits" if cfg.data == "offline" else "MNIST train: 60,000 digits",
            "autocast": str(resolve_amp(cfg, resolve_device(cfg))[0] or "off (float32)").removeprefix("torch."),
            "torch": torch.__version__,
        }
    dtype = torch.float16 if args.export_dtype == "float16" else torch.float32
    if args.export:
        export_checkpoint(result.checkpoint, args.export, metadata, dtype=dtype)
        print(f"EMA weights written to {args.export}")
    if args.export_guide:
        first = list_checkpoints(args.run_dir)[0]
        about_run = {k: v for k, v in metadata.items() if k not in ("wall_time_s", "final_loss")}  # the whole run's
        about_run["role"] = "autoguidance guide: the EMA weights of the run's first checkpoint"
        export_checkpoint(first, args.export_guide, about_run, dtype=dtype)
        print(f"EMA weights of {first.name} (the guide) written to {args.export_guide}")
    return result


if __name__ == "__main__":
    try:
        main()
    except ValueError as err:  # a bad flag or an unusable run folder: a message, not a traceback
        build_parser().error(str(err))
