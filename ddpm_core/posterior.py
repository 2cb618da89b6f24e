"""The forward-process posterior q(x_{t-1} | x_t, x_0), eqs. {eq}`eq-posterior-variance` and
{eq}`eq-posterior-mean`, and x_0 recovered from a noise prediction, eq. {eq}`eq-x0-from-eps`.

Timestep convention: the paper's t = 1..T; schedule arrays are indexed by t directly.

:func:`q_posterior_mean_variance` and :func:`predict_x0_from_eps` check their arguments and
then call an unchecked twin (``_...``) that holds the formula; the samplers check once before
their loop and call the twins inside it.
"""

from __future__ import annotations

import torch

from .schedules import NoiseSchedule, extract
from .validation import check_floating, check_same_shape, check_timesteps


def q_posterior_mean_variance(
    schedule: NoiseSchedule, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor | int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean, variance and clipped log-variance of q(x_{t-1} | x_t, x_0).

    mu-tilde_t = sqrt(alphabar_{t-1}) beta_t / (1 - alphabar_t) x_0
               + sqrt(alpha_t) (1 - alphabar_{t-1}) / (1 - alphabar_t) x_t,   eq. {eq}`eq-posterior-mean`
    beta-tilde_t = (1 - alphabar_{t-1}) / (1 - alphabar_t) beta_t,             eq. {eq}`eq-posterior-variance`

    Args:
        schedule: the noise schedule.
        x0: clean data x_0, floating tensor of shape (B, ...).
        x_t: the noisy sample at step t, same shape as ``x0``.
        t: timesteps in 1..T, an int or a long tensor of shape (B,).

    Returns:
        (mean, variance, log_variance_clipped): the mean has x0's shape, the others (B, 1, ..., 1).
    """
    check_floating("x0", x0)
    check_floating("x_t", x_t)
    check_same_shape("x0", x0, "x_t", x_t)
    t = check_timesteps(t, schedule.T, x0.shape[0])
    return _q_posterior_mean_variance(schedule, x0, x_t, t)


def _q_posterior_mean_variance(
    schedule: NoiseSchedule, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`q_posterior_mean_variance` without the checks, for the samplers' inner loops."""
    mean = extract(schedule.posterior_mean_coef1, t, x_t) * x0 + extract(schedule.posterior_mean_coef2, t, x_t) * x_t
    variance = extract(schedule.posterior_variance, t, x_t)
    log_variance = extract(schedule.posterior_log_variance_clipped, t, x_t)
    return mean, variance, log_variance


def predict_x0_from_eps(
    schedule: NoiseSchedule, x_t: torch.Tensor, t: torch.Tensor | int, eps: torch.Tensor
) -> torch.Tensor:
    """Invert the closed form: x_0 = (x_t - sqrt(1 - alphabar_t) eps) / sqrt(alphabar_t).

    Eq. {eq}`eq-x0-from-eps`, written as 1/sqrt(alphabar_t) x_t - sqrt(1/alphabar_t - 1) eps.

    Args:
        schedule: the noise schedule.
        x_t: the noisy sample at step t, floating tensor of shape (B, ...).
        t: timesteps in 1..T, an int or a long tensor of shape (B,).
        eps: the noise (true or predicted), same shape as ``x_t``.

    Returns:
        the implied x_0, same shape as ``x_t``.
    """
    check_floating("x_t", x_t)
    check_floating("eps", eps)
    check_same_shape("x_t", x_t, "eps", eps)
    t = check_timesteps(t, schedule.T, x_t.shape[0])
    return _predict_x0_from_eps(schedule, x_t, t, eps)


def _predict_x0_from_eps(schedule: NoiseSchedule, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """:func:`predict_x0_from_eps` without the checks, for the samplers' inner loops."""
    return extract(schedule.sqrt_recip_alphas_cumprod, t, x_t) * x_t - extract(schedule.sqrt_recipm1_alphas_cumprod, t, x_t) * eps


def posterior_mean_from_eps(
    schedule: NoiseSchedule, x_t: torch.Tensor, t: torch.Tensor | int, eps: torch.Tensor
) -> torch.Tensor:
    """The posterior mean in its eps-form: mu-tilde_t = (x_t - beta_t / sqrt(1 - alphabar_t) eps) / sqrt(alpha_t).

    Eq. {eq}`eq-posterior-mean-eps`. Equal to :func:`q_posterior_mean_variance`'s mean when
    x_0 is the one implied by ``eps`` (the book proves it with SymPy; a test checks it).

    Args:
        schedule: the noise schedule.
        x_t: the noisy sample at step t, floating tensor of shape (B, ...).
        t: timesteps in 1..T, an int or a long tensor of shape (B,).
        eps: the noise (true or predicted), same shape as ``x_t``.

    Returns:
        mu-tilde_t, same shape as ``x_t``.
    """
    check_floating("x_t", x_t)
    check_floating("eps", eps)
    check_same_shape("x_t", x_t, "eps", eps)
    t = check_timesteps(t, schedule.T, x_t.shape[0])
    eps_coef = extract(schedule.betas / schedule.sqrt_one_minus_alphas_cumprod, t, x_t)
    return (x_t - eps_coef * eps) / extract(schedule.alphas.sqrt(), t, x_t)
