"""One step of Algorithm 1 of Ho et al. (2020): the whole of the mathematics of training.

Draw t ~ Uniform{1..T} and eps ~ N(0, I), form x_t, take a gradient step on L_simple,
eq. {eq}`eq-loss-simple`. The loop around it (:func:`ddpm_core.train.train`) only adds what
makes a run safe to stop and resume.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from ..losses import min_snr_weight, sample_timesteps, simple_loss
from ..schedules import NoiseSchedule


class NonFiniteLossError(RuntimeError):
    """Training met a NaN or infinite loss (or gradient, or weight) and stopped."""


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
    t: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
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
        t, noise: this batch's timesteps (B,) and noise (x0's shape), drawn here when None (a
            distributed run passes each process its slice of one global draw).
        labels: the images' classes (B,), for a class-conditional ``model(x_t, t, y)``.

    Returns:
        the loss of this batch (weighted, if ``loss_weighting`` says so), as a float.

    Raises:
        NonFiniteLossError: the loss (or, without a scaler, the gradient) is NaN or infinite;
            the weights are left untouched.
    """
    model.train()
    if t is None:
        t = sample_timesteps(x0.shape[0], schedule.T, device=x0.device)  # (B,) in 1..T
    if noise is None:
        noise = torch.randn_like(x0)
    weights = min_snr_weight(schedule, t, min_snr_gamma) if loss_weighting == "min_snr" else None  # (B,) or None
    with torch.autocast(device_type=x0.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        eps_model = model if labels is None else (lambda x_t, t_: model(x_t, t_, labels))
        loss = simple_loss(schedule, eps_model, x0, t, noise=noise, loss_type=loss_type, weights=weights)
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
