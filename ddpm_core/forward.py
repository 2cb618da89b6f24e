"""The forward (noising) process q(x_t | x_0), eq. {eq}`eq-forward-closed-form`.

Timestep convention: the paper's t = 1..T; schedule arrays are indexed by t directly.
"""

from __future__ import annotations

import torch

from .schedules import NoiseSchedule, extract
from .validation import check_floating, check_same_shape, check_timesteps


def q_sample(
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    t: torch.Tensor | int,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw x_t ~ q(x_t | x_0) in one step: x_t = sqrt(alphabar_t) x_0 + sqrt(1 - alphabar_t) eps.

    Eq. {eq}`eq-forward-closed-form`.

    Args:
        schedule: the noise schedule.
        x0: clean data, floating tensor of shape (B, ...), images scaled to [-1, 1].
        t: timesteps in 1..T (the paper's convention), an int or a long tensor of shape (B,).
        noise: eps ~ N(0, I) with the shape of ``x0``; drawn if not given.
        generator: random generator used when ``noise`` is drawn here.

    Returns:
        x_t, same shape and dtype as ``x0``.
    """
    check_floating("x0", x0)
    t = check_timesteps(t, schedule.T, x0.shape[0])
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    check_floating("noise", noise)
    check_same_shape("x0", x0, "noise", noise)
    return (
        extract(schedule.sqrt_alphas_cumprod, t, x0) * x0
        + extract(schedule.sqrt_one_minus_alphas_cumprod, t, x0) * noise
    )


def q_mean_variance(
    schedule: NoiseSchedule, x0: torch.Tensor, t: torch.Tensor | int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean, variance and log-variance of q(x_t | x_0) = N(sqrt(alphabar_t) x_0, (1 - alphabar_t) I).

    Eq. {eq}`eq-forward-closed-form`.

    Args:
        schedule: the noise schedule.
        x0: clean data, floating tensor of shape (B, ...).
        t: timesteps in 1..T, an int or a long tensor of shape (B,).

    Returns:
        (mean, variance, log_variance); the mean has x0's shape, the others shape (B, 1, ..., 1).
    """
    check_floating("x0", x0)
    t = check_timesteps(t, schedule.T, x0.shape[0])
    mean = extract(schedule.sqrt_alphas_cumprod, t, x0) * x0
    variance = extract(1.0 - schedule.alphas_cumprod, t, x0)
    log_variance = extract(schedule.log_one_minus_alphas_cumprod, t, x0)
    return mean, variance, log_variance


def q_step(
    schedule: NoiseSchedule,
    x_prev: torch.Tensor,
    t: torch.Tensor | int,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One step of the forward chain: x_t = sqrt(alpha_t) x_{t-1} + sqrt(beta_t) eps_t.

    Eq. {eq}`eq-forward-step`. Iterating it t times from x_0 gives the same distribution
    as one call of :func:`q_sample`; the book and the tests check that.

    Args:
        schedule: the noise schedule.
        x_prev: x_{t-1}, floating tensor of shape (B, ...).
        t: timesteps in 1..T, an int or a long tensor of shape (B,).
        noise: eps_t ~ N(0, I) with the shape of ``x_prev``; drawn if not given.
        generator: random generator used when ``noise`` is drawn here.

    Returns:
        x_t, same shape as ``x_prev``.
    """
    check_floating("x_prev", x_prev)
    t = check_timesteps(t, schedule.T, x_prev.shape[0])
    if noise is None:
        noise = torch.randn(x_prev.shape, generator=generator, dtype=x_prev.dtype, device=x_prev.device)
    check_floating("noise", noise)
    check_same_shape("x_prev", x_prev, "noise", noise)
    return extract(schedule.alphas.sqrt(), t, x_prev) * x_prev + extract(schedule.betas.sqrt(), t, x_prev) * noise
