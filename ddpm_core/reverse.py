"""The reverse (denoising) process p_theta(x_{t-1} | x_t) and ancestral sampling (Algorithm 2).

The model is any callable ``model(x_t, t) -> eps_hat`` that predicts the noise eps from
x_t, with t a long tensor of shape (B,) in 1..T (the paper's convention).

Each public function checks its arguments once and calls an unchecked step (``_p_sample``,
``_p_mean_variance``) that holds the maths. :func:`p_sample_loop` checks before its loop and
calls the unchecked steps inside it: checking a timestep reads it back from the device, and
doing that T times would make the CPU wait for the GPU at every step.
"""

from __future__ import annotations

from typing import Callable, Literal, NamedTuple

import torch

from .posterior import _predict_x0_from_eps, _q_posterior_mean_variance
from .schedules import NoiseSchedule, extract
from .validation import check_choice, check_floating, check_int, check_timesteps

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
VARIANCES = ("beta", "beta_tilde")


class PMeanVariance(NamedTuple):
    """What :func:`p_mean_variance` returns."""

    mean: torch.Tensor  # mu_theta(x_t, t), shape of x_t
    variance: torch.Tensor  # sigma_t^2, shape (B, 1, ..., 1)
    log_variance: torch.Tensor  # log sigma_t^2, shape (B, 1, ..., 1)
    pred_x0: torch.Tensor  # x_0 implied by the predicted noise (clipped if asked)
    pred_eps: torch.Tensor  # eps_theta(x_t, t)


def p_mean_variance(
    schedule: NoiseSchedule,
    model: EpsModel,
    x_t: torch.Tensor,
    t: torch.Tensor | int,
    variance: Literal["beta", "beta_tilde"] = "beta",
    clip_x0: bool = True,
) -> PMeanVariance:
    """Mean and variance of p_theta(x_{t-1} | x_t) = N(mu_theta(x_t, t), sigma_t^2 I).

    The mean is the posterior mean {eq}`eq-posterior-mean` with x_0 replaced by the model's
    estimate {eq}`eq-x0-from-eps`; without clipping this is exactly the eps-form
    {eq}`eq-mu-theta`. The variance is fixed (eq. {eq}`eq-reverse-variance`): sigma_t^2 = beta_t
    (``"beta"``, the paper's choice) or beta-tilde_t (``"beta_tilde"``).

    Args:
        schedule: the noise schedule.
        model: callable ``model(x_t, t) -> eps_hat`` with t in 1..T.
        x_t: the current sample, floating tensor of shape (B, ...).
        t: timesteps in 1..T, an int or a long tensor of shape (B,).
        variance: ``"beta"`` or ``"beta_tilde"``.
        clip_x0: clip the estimate of x_0 to [-1, 1] (the data range) before forming the mean.

    Returns:
        :class:`PMeanVariance` (mean, variance, log_variance, pred_x0, pred_eps).
    """
    t = _check_step(schedule, x_t, t, variance)
    return _p_mean_variance(schedule, model, x_t, t, variance, clip_x0)


def _check_step(schedule: NoiseSchedule, x_t: torch.Tensor, t: torch.Tensor | int, variance: str) -> torch.Tensor:
    """Check the arguments of one reverse step; return t as a long tensor of shape (B,) on x_t's device."""
    check_choice("variance", variance, VARIANCES)
    check_floating("x_t", x_t)
    return check_timesteps(t, schedule.T, x_t.shape[0]).to(x_t.device)


def _p_mean_variance(
    schedule: NoiseSchedule, model: EpsModel, x_t: torch.Tensor, t: torch.Tensor, variance: str, clip_x0: bool
) -> PMeanVariance:
    """:func:`p_mean_variance` without the checks; t is a long tensor of shape (B,) on x_t's device."""
    pred_eps = model(x_t, t)
    if pred_eps.shape != x_t.shape:  # known only now; comparing shapes does not wait for the device
        raise ValueError(f"model output must have the shape of x_t {tuple(x_t.shape)}, got {tuple(pred_eps.shape)}")
    pred_x0 = _predict_x0_from_eps(schedule, x_t, t, pred_eps)
    if clip_x0:
        pred_x0 = pred_x0.clamp(-1.0, 1.0)
    mean, _, _ = _q_posterior_mean_variance(schedule, pred_x0, x_t, t)
    if variance == "beta":
        var = extract(schedule.betas, t, x_t)
        log_var = torch.log(var)
    else:
        var = extract(schedule.posterior_variance, t, x_t)
        log_var = extract(schedule.posterior_log_variance_clipped, t, x_t)
    return PMeanVariance(mean, var, log_var, pred_x0, pred_eps)


@torch.no_grad()
def p_sample(
    schedule: NoiseSchedule,
    model: EpsModel,
    x_t: torch.Tensor,
    t: torch.Tensor | int,
    variance: Literal["beta", "beta_tilde"] = "beta",
    clip_x0: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One step of Algorithm 2: x_{t-1} = mu_theta(x_t, t) + sigma_t z, with z = 0 at t = 1.

    Eq. {eq}`eq-sampling-step`.

    Args:
        schedule: the noise schedule.
        model: callable ``model(x_t, t) -> eps_hat`` with t in 1..T.
        x_t: the current sample, floating tensor of shape (B, ...).
        t: timesteps in 1..T, an int or a long tensor of shape (B,).
        variance: ``"beta"`` or ``"beta_tilde"``, see :func:`p_mean_variance`.
        clip_x0: clip the estimate of x_0 to [-1, 1].
        generator: random generator for z.

    Returns:
        x_{t-1}, same shape as ``x_t``.
    """
    t = _check_step(schedule, x_t, t, variance)
    return _p_sample(schedule, model, x_t, t, variance, clip_x0, generator)


def _p_sample(
    schedule: NoiseSchedule,
    model: EpsModel,
    x_t: torch.Tensor,
    t: torch.Tensor,
    variance: str,
    clip_x0: bool,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """:func:`p_sample` without the checks; t is a long tensor of shape (B,) on x_t's device."""
    out = _p_mean_variance(schedule, model, x_t, t, variance, clip_x0)
    z = torch.randn(x_t.shape, generator=generator, dtype=x_t.dtype, device=x_t.device)
    not_last = (t != 1).to(x_t.dtype).reshape(-1, *([1] * (x_t.dim() - 1)))  # (B, 1, ..., 1)
    return out.mean + not_last * torch.exp(0.5 * out.log_variance) * z


def first_timestep(schedule: NoiseSchedule, start_t: int | None, x_T: torch.Tensor | None) -> int:
    """The t a sampling loop starts at: T, or ``start_t`` in 1..T, which needs the given x at start_t
    (``x_T``), e.g. a digit noised by ``q_sample`` (SDEdit)."""
    if start_t is None:
        return schedule.T
    check_int("start_t", start_t, 1, schedule.T)
    if x_T is None:
        raise ValueError(f"start_t = {start_t} needs x_T, the x at t = {start_t} to denoise (e.g. from q_sample)")
    return start_t


def initial_noise(
    shape: tuple[int, ...],
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    x_T: torch.Tensor | None = None,
) -> torch.Tensor:
    """The start of every sampler: x_T ~ N(0, I) (Algorithm 2, line 1), or a given x_T.

    Args:
        shape: shape of the batch to generate, (B, C, H, W) for images.
        generator: random generator for x_T (on ``device``).
        device: where to sample; defaults to the generator's device, else the CPU.
        x_T: use this tensor instead of fresh noise; it must have shape ``shape``.

    Returns:
        x_T on ``device``.
    """
    if device is None:
        device = generator.device if generator is not None else "cpu"
    if x_T is None:
        return torch.randn(shape, generator=generator, device=device)
    check_floating("x_T", x_T)
    if tuple(x_T.shape) != tuple(shape):
        raise ValueError(f"x_T must have shape {tuple(shape)}, got {tuple(x_T.shape)}")
    return x_T.to(device)


@torch.no_grad()
def p_sample_loop(
    schedule: NoiseSchedule,
    model: EpsModel,
    shape: tuple[int, ...],
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    variance: Literal["beta", "beta_tilde"] = "beta",
    clip_x0: bool = True,
    return_intermediates: bool = False,
    x_T: torch.Tensor | None = None,
    start_t: int | None = None,
) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
    """Algorithm 2: start from x_T ~ N(0, I) and apply :func:`p_sample` for t = T, ..., 1.

    With ``start_t`` the loop starts at that t instead of T, from the given ``x_T``, the x at
    start_t (e.g. ``q_sample(schedule, x_0, start_t)`` of a digit to be denoised: SDEdit, Meng et
    al., 2022), and applies :func:`p_sample` for t = start_t, ..., 1; no x_T is drawn then.

    Args:
        schedule: the noise schedule.
        model: callable ``model(x_t, t) -> eps_hat`` with t in 1..T.
        shape: shape of the batch to generate, (B, C, H, W) for images.
        generator: random generator for x_T and every z (on ``device``).
        device: where to sample; defaults to the generator's device, else the CPU.
        variance: ``"beta"`` or ``"beta_tilde"``, see :func:`p_mean_variance`.
        clip_x0: clip the estimate of x_0 to [-1, 1] at every step.
        return_intermediates: also return the whole chain.
        x_T: start from this tensor instead of fresh noise (required with ``start_t``: x at start_t).
        start_t: the t of the first step, in 1..T; None (the default) is T.

    Returns:
        x_0 of shape ``shape``; with ``return_intermediates``, also the list
        [x_T, x_{T-1}, ..., x_0] (T + 1 tensors, on the CPU), so that entry i is x_{T-i}
        (with ``start_t``: [x_{start_t}, ..., x_0], start_t + 1 tensors).
    """
    check_choice("variance", variance, VARIANCES)
    first = first_timestep(schedule, start_t, x_T)
    x = initial_noise(shape, generator=generator, device=device, x_T=x_T)
    schedule = schedule.to(x.device)  # once, instead of copying each array at every step
    chain = [x.cpu()] if return_intermediates else []
    for t in range(first, 0, -1):
        t_batch = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)  # (B,)
        x = _p_sample(schedule, model, x, t_batch, variance, clip_x0, generator)
        if return_intermediates:
            chain.append(x.cpu())
    return (x, chain) if return_intermediates else x
