"""DDIM sampling (Song, Meng & Ermon, 2021): the same trained eps_theta, fewer steps.

DDIM walks down an increasing subsequence tau_1 < ... < tau_S of 1..T. From x_t it moves to
x_s (s the previous element of the subsequence, or 0 after the last) by, eq. {eq}`eq-ddim-step`,

    x0_hat  = (x_t - sqrt(1 - alphabar_t) eps_theta(x_t, t)) / sqrt(alphabar_t)
    sigma^2 = eta^2 (1 - alphabar_s) / (1 - alphabar_t) (1 - alphabar_t / alphabar_s)
    x_s     = sqrt(alphabar_s) x0_hat + sqrt(1 - alphabar_s - sigma^2) eps_theta + sigma z.

With eta = 0 the step is deterministic; with eta = 1 and the full sequence 1..T, sigma^2 is
beta-tilde_t and the step is exactly DDPM's ancestral step with variance beta-tilde_t
(a test checks this identity).

Timestep convention: the paper's t = 1..T; alphabar_0 = 1 stands for x_0 (schedule entry 0).

:func:`ddim_sample_loop` can also start at a t < T from a given x_t, such as a digit noised by
q_sample: denoising it is SDEdit (Meng et al., 2022), "noise my digit to t and denoise it".

As in :mod:`ddpm_core.reverse`, :func:`ddim_sample_loop` checks its arguments before the loop
and calls the unchecked step ``_ddim_mean_variance`` inside it.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .posterior import _predict_x0_from_eps
from .reverse import EpsModel, first_timestep, initial_noise
from .schedules import NoiseSchedule
from .validation import check_floating, check_int, check_number, check_timesteps


def ddim_timesteps(T: int, num_steps: int) -> list[int]:
    """An evenly spaced subsequence of 1..T with ``num_steps`` entries, from T down to 1.

    ``num_steps = T`` gives every step T, T-1, ..., 1; ``num_steps = 1`` gives [T].

    Args:
        T: number of diffusion steps of the schedule.
        num_steps: how many model evaluations the sampler makes, in 1..T.

    Returns:
        the timesteps in the order the sampler visits them (decreasing).
    """
    check_int("num_steps", num_steps, 1, T)
    if num_steps == 1:
        return [T]
    # Spacing (T - 1) / (num_steps - 1) >= 1, so rounding keeps the entries distinct.
    return [round(T - i * (T - 1) / (num_steps - 1)) for i in range(num_steps)]


class DDIMStep(NamedTuple):
    """What :func:`ddim_mean_variance` returns."""

    mean: torch.Tensor  # sqrt(alphabar_s) x0_hat + sqrt(1 - alphabar_s - sigma^2) eps_hat
    variance: torch.Tensor  # sigma^2, shape (B, 1, ..., 1)
    pred_x0: torch.Tensor  # x0_hat (clipped if asked)
    pred_eps: torch.Tensor  # the eps consistent with x0_hat and x_t


def ddim_mean_variance(
    schedule: NoiseSchedule,
    model: EpsModel,
    x_t: torch.Tensor,
    t: torch.Tensor | int,
    t_prev: torch.Tensor | int,
    eta: float = 0.0,
    clip_x0: bool = True,
) -> DDIMStep:
    """Mean and variance of the DDIM step from x_t to x_{t_prev}, eq. {eq}`eq-ddim-step`.

    If x0_hat is clipped to [-1, 1], eps_hat is recomputed from it,
    eps_hat = (x_t - sqrt(alphabar_t) x0_hat) / sqrt(1 - alphabar_t), so that the pair
    (x0_hat, eps_hat) still reproduces x_t (as in the reference implementation).

    Args:
        schedule: the noise schedule.
        model: callable ``model(x_t, t) -> eps_hat`` with t in 1..T.
        x_t: the current sample, floating tensor of shape (B, ...).
        t: current timesteps in 1..T, an int or a long tensor of shape (B,).
        t_prev: target timesteps in 0..t-1 (0 means x_0), an int or a long tensor of shape (B,).
        eta: amount of noise, >= 0 (0: deterministic DDIM; 1: DDPM-like).
        clip_x0: clip x0_hat to [-1, 1].

    Returns:
        :class:`DDIMStep` (mean, variance, pred_x0, pred_eps).
    """
    check_floating("x_t", x_t)
    eta = check_number("eta", eta, low=0)
    t = check_timesteps(t, schedule.T, x_t.shape[0])
    t_prev = _check_prev_timesteps(t_prev, t)
    return _ddim_mean_variance(schedule, model, x_t, t.to(x_t.device), t_prev.to(x_t.device), eta, clip_x0)


def _ddim_mean_variance(
    schedule: NoiseSchedule,
    model: EpsModel,
    x_t: torch.Tensor,
    t: torch.Tensor,
    t_prev: torch.Tensor,
    eta: float,
    clip_x0: bool,
) -> DDIMStep:
    """:func:`ddim_mean_variance` without the checks; t and t_prev are long tensors of shape (B,) on x_t's device."""
    pred_eps = model(x_t, t)
    if pred_eps.shape != x_t.shape:  # known only now; comparing shapes does not wait for the device
        raise ValueError(f"model output must have the shape of x_t {tuple(x_t.shape)}, got {tuple(pred_eps.shape)}")
    pred_x0 = _predict_x0_from_eps(schedule, x_t, t, pred_eps)
    # The coefficients are formed in float64 (1 - alphabar_t / alphabar_s is tiny for nearby
    # steps) and cast to x_t's dtype at the end.
    abar = schedule.alphas_cumprod.to(x_t.device)  # no copy when the schedule is already there
    abar_t = abar[t].reshape(-1, *([1] * (x_t.dim() - 1)))  # (B, 1, 1, 1)
    abar_s = abar[t_prev].reshape(abar_t.shape)  # alphabar_0 = 1 stands for x_0
    if clip_x0:
        pred_x0 = pred_x0.clamp(-1.0, 1.0)
        pred_eps = (x_t - abar_t.sqrt().to(x_t.dtype) * pred_x0) / (1.0 - abar_t).sqrt().to(x_t.dtype)
    variance = eta**2 * (1.0 - abar_s) / (1.0 - abar_t) * (1.0 - abar_t / abar_s)
    # Rounding can make 1 - alphabar_s - sigma^2 slightly negative when it should be 0.
    eps_coef = (1.0 - abar_s - variance).clamp(min=0.0).sqrt()
    mean = abar_s.sqrt().to(x_t.dtype) * pred_x0 + eps_coef.to(x_t.dtype) * pred_eps
    variance = variance.to(x_t.dtype)
    return DDIMStep(mean, variance, pred_x0, pred_eps)


def _check_prev_timesteps(t_prev: torch.Tensor | int, t: torch.Tensor) -> torch.Tensor:
    """Return ``t_prev`` as a long tensor like ``t``, checking 0 <= t_prev < t (0 stands for x_0)."""
    if isinstance(t_prev, int) and not isinstance(t_prev, bool):
        t_prev = torch.full_like(t, t_prev)
    if not isinstance(t_prev, torch.Tensor) or torch.is_floating_point(t_prev) or t_prev.dtype == torch.bool:
        raise ValueError(f"t_prev must be an int or an integer tensor of timesteps, got {t_prev!r}")
    if t_prev.dim() == 0:
        t_prev = t_prev.expand(t.shape[0])
    if t_prev.shape != t.shape:
        raise ValueError(f"t_prev must have shape {tuple(t.shape)}, got {tuple(t_prev.shape)}")
    t_prev = t_prev.long().to(t.device)
    if bool((t_prev < 0).any()) or bool((t_prev >= t).any()):
        raise ValueError("t_prev must satisfy 0 <= t_prev < t for every example (0 stands for x_0)")
    return t_prev


@torch.no_grad()
def ddim_sample_loop(
    schedule: NoiseSchedule,
    model: EpsModel,
    shape: tuple[int, ...],
    num_steps: int,
    eta: float = 0.0,
    clip_x0: bool = True,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    return_intermediates: bool = False,
    x_T: torch.Tensor | None = None,
    start_t: int | None = None,
) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
    """DDIM sampling over :func:`ddim_timesteps` (T, num_steps), or (start_t, num_steps), eq. {eq}`eq-ddim-step`.

    Random numbers are drawn in the same order as :func:`ddpm_core.reverse.p_sample_loop`
    (x_T, then one z per step, even when it is multiplied by 0). So with ``eta=1``,
    ``num_steps=T``, the same generator and the same ``clip_x0``, this sampler returns the
    same images as ``p_sample_loop(..., variance="beta_tilde")`` (not its default
    ``variance="beta"``).

    With ``start_t`` the chain starts at that t instead of T (SDEdit, Meng et al., 2022): the
    steps are :func:`ddim_timesteps` (start_t, num_steps), from start_t down to 1 and then to
    x_0, and ``x_T`` is the given x at start_t, e.g. ``q_sample(schedule, x_0, start_t)``
    of a digit to be denoised; no x_T is drawn then, only one z per step.

    Args:
        schedule: the noise schedule.
        model: callable ``model(x_t, t) -> eps_hat`` with t in 1..T.
        shape: shape of the batch to generate, (B, C, H, W) for images.
        num_steps: number of model evaluations, in 1..T (in 1..start_t with ``start_t``).
        eta: noise level, >= 0 (0: deterministic).
        clip_x0: clip x0_hat to [-1, 1] at every step.
        generator: random generator for x_T (when drawn here) and every z (on ``device``).
        device: where to sample; defaults to the generator's device, else the CPU.
        return_intermediates: also return the chain [x_T, ..., x_0] (num_steps + 1 tensors, CPU);
            with ``start_t``, [x_{start_t}, ..., x_0].
        x_T: start from this tensor instead of fresh noise (required with ``start_t``: x at start_t).
        start_t: the t of the first step, in 1..T; None (the default) is T.

    Returns:
        x_0 of shape ``shape``; with ``return_intermediates``, also the chain.
    """
    timesteps = ddim_timesteps(first_timestep(schedule, start_t, x_T), num_steps)
    eta = check_number("eta", eta, low=0)
    x = initial_noise(shape, generator=generator, device=device, x_T=x_T)
    schedule = schedule.to(x.device)  # once, instead of copying alphabar at every step
    chain = [x.cpu()] if return_intermediates else []
    for t, s in zip(timesteps, timesteps[1:] + [0]):
        t_batch = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)  # (B,)
        s_batch = torch.full((x.shape[0],), s, dtype=torch.long, device=x.device)  # (B,), 0 after the last step
        step = _ddim_mean_variance(schedule, model, x, t_batch, s_batch, eta, clip_x0)
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        x = step.mean + step.variance.sqrt() * z  # sigma = 0 when s = 0
        if return_intermediates:
            chain.append(x.cpu())
    return (x, chain) if return_intermediates else x


__all__ = ["ddim_timesteps", "DDIMStep", "ddim_mean_variance", "ddim_sample_loop"]
