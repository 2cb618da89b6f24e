"""Three things a network can predict from x_t, and the score: conversions between them.

Given x_t and t, a network may predict the noise eps (Ho et al.), the data x_0, or the
velocity v = sqrt(alphabar_t) eps - sqrt(1 - alphabar_t) x_0 (Salimans and Ho, 2022),
eq. {eq}`eq-v-definition`. With x_t known, each determines the others, eqs.
{eq}`eq-x0-from-eps` and {eq}`eq-v-inverse`. The score grad log q(x_t) is the best noise
prediction rescaled, eq. {eq}`eq-tweedie`.

x_0 from eps is :func:`ddpm_core.posterior.predict_x0_from_eps`; this module does not repeat it.

Timestep convention: the paper's t = 1..T; schedule arrays are indexed by t directly.
"""

from __future__ import annotations

import torch

from .posterior import predict_x0_from_eps
from .schedules import NoiseSchedule, extract
from .validation import check_floating, check_same_shape, check_timesteps


def _checked(schedule: NoiseSchedule, first: str, a: torch.Tensor, second: str, b: torch.Tensor,
             t: torch.Tensor | int) -> torch.Tensor:
    """Check two same-shaped floating tensors and the timesteps; return t as a (B,) long tensor."""
    check_floating(first, a)
    check_floating(second, b)
    check_same_shape(first, a, second, b)
    return check_timesteps(t, schedule.T, a.shape[0])


def eps_from_x0(schedule: NoiseSchedule, x_t: torch.Tensor, t: torch.Tensor | int, x0: torch.Tensor) -> torch.Tensor:
    """The noise that links x_0 to x_t: eps = (x_t - sqrt(alphabar_t) x_0) / sqrt(1 - alphabar_t).

    The closed form {eq}`eq-forward-closed-form` solved for eps; the inverse of {eq}`eq-x0-from-eps`.

    Args:
        schedule: the noise schedule.
        x_t: the noisy sample at step t, floating tensor of shape (B, ...).
        t: timesteps in 1..T (the paper's convention), an int or a long tensor of shape (B,).
        x0: the data (true or predicted), same shape as ``x_t``.

    Returns:
        eps, same shape as ``x_t``.
    """
    t = _checked(schedule, "x_t", x_t, "x0", x0, t)
    a, s = extract(schedule.sqrt_alphas_cumprod, t, x_t), extract(schedule.sqrt_one_minus_alphas_cumprod, t, x_t)
    return (x_t - a * x0) / s


def v_from_eps(schedule: NoiseSchedule, x_t: torch.Tensor, t: torch.Tensor | int, eps: torch.Tensor) -> torch.Tensor:
    """The velocity implied by a noise prediction: v = sqrt(alphabar_t) eps - sqrt(1 - alphabar_t) x0_hat.

    Eq. {eq}`eq-v-definition` with x0_hat from eps by {eq}`eq-x0-from-eps`.

    Args:
        schedule: the noise schedule.
        x_t: the noisy sample at step t, floating tensor of shape (B, ...).
        t: timesteps in 1..T (the paper's convention), an int or a long tensor of shape (B,).
        eps: the noise (true or predicted), same shape as ``x_t``.

    Returns:
        v, same shape as ``x_t``.
    """
    t = _checked(schedule, "x_t", x_t, "eps", eps, t)
    x0 = predict_x0_from_eps(schedule, x_t, t, eps)
    a, s = extract(schedule.sqrt_alphas_cumprod, t, x_t), extract(schedule.sqrt_one_minus_alphas_cumprod, t, x_t)
    return a * eps - s * x0


def eps_from_v(schedule: NoiseSchedule, x_t: torch.Tensor, t: torch.Tensor | int, v: torch.Tensor) -> torch.Tensor:
    """The noise implied by a velocity prediction: eps = sqrt(1 - alphabar_t) x_t + sqrt(alphabar_t) v.

    Eq. {eq}`eq-v-inverse`.

    Args:
        schedule: the noise schedule.
        x_t: the noisy sample at step t, floating tensor of shape (B, ...).
        t: timesteps in 1..T (the paper's convention), an int or a long tensor of shape (B,).
        v: the velocity (true or predicted), same shape as ``x_t``.

    Returns:
        eps, same shape as ``x_t``.
    """
    t = _checked(schedule, "x_t", x_t, "v", v, t)
    a, s = extract(schedule.sqrt_alphas_cumprod, t, x_t), extract(schedule.sqrt_one_minus_alphas_cumprod, t, x_t)
    return s * x_t + a * v


def x0_from_v(schedule: NoiseSchedule, x_t: torch.Tensor, t: torch.Tensor | int, v: torch.Tensor) -> torch.Tensor:
    """The data implied by a velocity prediction: x_0 = sqrt(alphabar_t) x_t - sqrt(1 - alphabar_t) v.

    Eq. {eq}`eq-v-inverse`.

    Args:
        schedule: the noise schedule.
        x_t: the noisy sample at step t, floating tensor of shape (B, ...).
        t: timesteps in 1..T (the paper's convention), an int or a long tensor of shape (B,).
        v: the velocity (true or predicted), same shape as ``x_t``.

    Returns:
        x_0, same shape as ``x_t``.
    """
    t = _checked(schedule, "x_t", x_t, "v", v, t)
    a, s = extract(schedule.sqrt_alphas_cumprod, t, x_t), extract(schedule.sqrt_one_minus_alphas_cumprod, t, x_t)
    return a * x_t - s * v


def score_from_eps(schedule: NoiseSchedule, eps: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
    """The score implied by a noise prediction: grad log q(x_t) = -eps / sqrt(1 - alphabar_t).

    Eq. {eq}`eq-tweedie`: exact when ``eps`` is the best prediction E[eps | x_t].

    Args:
        schedule: the noise schedule.
        eps: the predicted noise, floating tensor of shape (B, ...).
        t: timesteps in 1..T (the paper's convention), an int or a long tensor of shape (B,).

    Returns:
        the score, same shape as ``eps``.
    """
    check_floating("eps", eps)
    t = check_timesteps(t, schedule.T, eps.shape[0])
    return -eps / extract(schedule.sqrt_one_minus_alphas_cumprod, t, eps)


def eps_from_score(schedule: NoiseSchedule, score: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
    """The noise prediction implied by a score: eps = -sqrt(1 - alphabar_t) grad log q(x_t).

    Eq. {eq}`eq-tweedie`, solved for the noise.

    Args:
        schedule: the noise schedule.
        score: the score (true or predicted), floating tensor of shape (B, ...).
        t: timesteps in 1..T (the paper's convention), an int or a long tensor of shape (B,).

    Returns:
        eps, same shape as ``score``.
    """
    check_floating("score", score)
    t = check_timesteps(t, schedule.T, score.shape[0])
    return -extract(schedule.sqrt_one_minus_alphas_cumprod, t, score) * score


__all__ = ["eps_from_x0", "v_from_eps", "eps_from_v", "x0_from_v", "score_from_eps", "eps_from_score"]
