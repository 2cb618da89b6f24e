"""The true reverse step q(x_{t-1} | x_t) for mixture data, and how far it is from a Gaussian.

DDPM models each reverse step as a Gaussian. The true step q(x_{t-1} | x_t), not conditioned
on x_0, is Gaussian only in the limit of small beta_t. For data that are a mixture of
Gaussians (:class:`ddpm_core.toy.GaussianMixture`) it is known exactly, eq.
{eq}`eq-true-reverse-mixture`: again a mixture of Gaussians.
:func:`kl_to_gaussian_1d` measures, in one dimension, how far such a mixture is from the
Gaussian with its own mean and variance.

Timestep convention: the paper's t = 1..T; schedule arrays are indexed by t directly.
"""

from __future__ import annotations

import math

import torch

from .schedules import NoiseSchedule
from .toy import GaussianMixture
from .validation import check_floating, check_int


def reverse_step_mixture(
    mixture: GaussianMixture, schedule: NoiseSchedule, t: int, x_t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q(x_{t-1} | x_t) = sum_k r_k(x_t) N(x_{t-1}; m_k(x_t), c_k I) when q(x_0) is ``mixture``.

    Eq. {eq}`eq-true-reverse-mixture`. Write a = alpha_t, b = beta_t. The prior
    q(x_{t-1}) is the mixture's marginal at alphabar_{t-1}: components
    N(mu'_k, v_k I) with mu'_k = sqrt(alphabar_{t-1}) mu_k, v_k = alphabar_{t-1} s_k^2 + 1 - alphabar_{t-1}.
    The step q(x_t | x_{t-1}) = N(sqrt(a) x_{t-1}, b I) conditions each component as in a
    linear Gaussian model:

        c_k = v_k b / (a v_k + b),
        m_k = mu'_k + sqrt(a) v_k / (a v_k + b) (x_t - sqrt(a) mu'_k),

    and the weights r_k(x_t) are the responsibilities of the components of q(x_t) (the
    marginal at alphabar_t), whose variances are a v_k + b.

    Args:
        mixture: the data distribution q(x_0).
        schedule: the noise schedule.
        t: the timestep, an int in 1..T (the paper's convention).
        x_t: points, floating tensor of shape (B, D).

    Returns:
        (weights, means, variances), float64, of shapes (B, K), (B, K, D) and (B, K).
    """
    check_int("t", t, 1, schedule.T)
    check_floating("x_t", x_t)
    if x_t.dim() != 2 or x_t.shape[1] != mixture.dim:
        raise ValueError(f"x_t must have shape (B, {mixture.dim}), got {tuple(x_t.shape)}")
    x = x_t.to(torch.float64).cpu()
    a, b = float(schedule.alphas[t]), float(schedule.betas[t])
    prior = mixture.marginal(float(schedule.alphas_cumprod_prev[t]))  # q(x_{t-1})
    v = prior.stds**2  # (K,)
    weights = mixture.marginal(float(schedule.alphas_cumprod[t])).responsibilities(x)  # (B, K)
    gain = math.sqrt(a) * v / (a * v + b)  # (K,)
    centred = x[:, None, :] - math.sqrt(a) * prior.means[None, :, :]  # (B, K, D)
    means = prior.means[None, :, :] + gain[None, :, None] * centred  # (B, K, D)
    variances = (v * b / (a * v + b)).expand(x.shape[0], -1)  # (B, K)
    return weights, means, variances


def kl_to_gaussian_1d(
    weights: torch.Tensor, means: torch.Tensor, variances: torch.Tensor, n_grid: int = 801, width: float = 12.0
) -> torch.Tensor:
    """KL(p || N(m, s^2)) for one-dimensional mixtures p, with m and s^2 the mean and variance of p.

    Of all Gaussians g, this one makes KL(p || g) smallest. The integral
    int p log(p / g) dx is a Riemann sum over ``n_grid`` evenly spaced points from
    m - width s to m + width s, in float64: for smooth integrands that decay within the grid
    the sum is accurate to near rounding error (about 1e-14 here).

    Args:
        weights: mixture weights, shape (B, K), rows summing to 1.
        means: component means, shape (B, K, 1) (as :func:`reverse_step_mixture` returns them) or (B, K).
        variances: component variances, shape (B, K), positive.
        n_grid: number of grid points, >= 3.
        width: half-width of the grid in standard deviations of p, > 0.

    Returns:
        float64 tensor of shape (B,), one divergence (in nats) per mixture.
    """
    check_int("n_grid", n_grid, 3)
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width}")
    if means.dim() == 3:
        if means.shape[2] != 1:
            raise ValueError(f"means must describe one-dimensional mixtures, got shape {tuple(means.shape)}")
        means = means[:, :, 0]
    for name, value in (("weights", weights), ("means", means), ("variances", variances)):
        check_floating(name, value)
        if value.shape != weights.shape or value.dim() != 2:
            raise ValueError(f"{name} must have shape (B, K) like weights {tuple(weights.shape)}, got {tuple(value.shape)}")
    w, mu, var = weights.double(), means.double(), variances.double()
    m = (w * mu).sum(1, keepdim=True)  # (B, 1)
    s2 = (w * (var + (mu - m) ** 2)).sum(1, keepdim=True)  # law of total variance, (B, 1)
    u = torch.linspace(-width, width, n_grid, dtype=torch.float64)  # in units of s
    x = m + s2.sqrt() * u  # (B, G)
    log_comp = -0.5 * ((x[:, :, None] - mu[:, None, :]) ** 2 / var[:, None, :] + torch.log(2 * math.pi * var[:, None, :]))
    log_p = torch.logsumexp(torch.log(w)[:, None, :] + log_comp, dim=2)  # (B, G)
    log_g = -0.5 * (u**2 + torch.log(2 * math.pi * s2))  # (B, G)
    dx = s2.sqrt()[:, 0] * (u[1] - u[0])  # (B,)
    return (log_p.exp() * (log_p - log_g)).sum(1) * dx


__all__ = ["reverse_step_mixture", "kl_to_gaussian_1d"]
