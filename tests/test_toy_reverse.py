"""Tests of ddpm_core.true_reverse: the exact reverse step q(x_{t-1} | x_t) of mixture data.

References: Bayes' rule evaluated on a grid (prior q(x_{t-1}) times the step q(x_t | x_{t-1}),
normalised numerically), the closed form of the KL between two Gaussians, and the law of
total expectation (the mean of the reverse step is the posterior mean at E[x_0 | x_t]).
Timestep convention: the paper's t = 1..T.
"""

from __future__ import annotations

import math

import pytest
import torch

from ddpm_core import NoiseSchedule, q_posterior_mean_variance
from ddpm_core.toy import GaussianMixture, optimal_x0, ring_mixture
from ddpm_core.true_reverse import kl_to_gaussian_1d, reverse_step_mixture

SCHEDULE = NoiseSchedule.linear(10, beta_start=0.01, beta_end=0.5)  # large steps: far from Gaussian
MIXTURE = GaussianMixture(weights=torch.tensor([0.3, 0.5, 0.2]), means=torch.tensor([[-0.6], [0.1], [0.7]]),
                          stds=torch.tensor([0.1, 0.05, 0.08]))


def mixture_density(weights, means, variances, x):
    """sum_k w_k N(x; m_k, c_k) for one-dimensional mixtures, on points x of shape (G,): (B, G)."""
    comp = torch.exp(-0.5 * (x[None, :, None] - means[:, None, :, 0]) ** 2 / variances[:, None, :])
    return (weights[:, None, :] * comp / torch.sqrt(2 * math.pi * variances[:, None, :])).sum(-1)


@pytest.mark.parametrize("t", [1, 2, 5, 10])
def test_reverse_step_is_bayes_rule_on_a_grid(t):
    x_t = torch.tensor([[-1.2], [0.0], [0.35], [2.0]], dtype=torch.float64)
    grid = torch.linspace(-8, 8, 32001, dtype=torch.float64)
    prior = MIXTURE.marginal(float(SCHEDULE.alphas_cumprod_prev[t])).log_prob(grid[:, None]).exp()  # (G,)
    a, b = float(SCHEDULE.alphas[t]), float(SCHEDULE.betas[t])
    likelihood = torch.exp(-0.5 * (x_t - math.sqrt(a) * grid[None, :]) ** 2 / b)  # (B, G)
    brute = prior * likelihood
    brute = brute / (brute.sum(1, keepdim=True) * (grid[1] - grid[0]))
    closed = mixture_density(*reverse_step_mixture(MIXTURE, SCHEDULE, t, x_t), grid)
    torch.testing.assert_close(closed, brute, rtol=0, atol=1e-9)


@pytest.mark.parametrize("t", [1, 3, 10])
def test_reverse_mean_is_the_posterior_mean_at_the_best_x0(t):
    ring = ring_mixture()
    x_t = ring.marginal(float(SCHEDULE.alphas_cumprod[t])).sample(16, torch.Generator().manual_seed(t))
    weights, means, _ = reverse_step_mixture(ring, SCHEDULE, t, x_t)
    x0_hat = optimal_x0(ring, SCHEDULE)(x_t, torch.full((16,), t))
    expected, _, _ = q_posterior_mean_variance(SCHEDULE, x0_hat, x_t, t)
    torch.testing.assert_close((weights[:, :, None] * means).sum(1), expected, rtol=0, atol=1e-12)


def test_shapes_and_weights():
    x_t = torch.zeros(5, 2)
    weights, means, variances = reverse_step_mixture(ring_mixture(k=4), SCHEDULE, 3, x_t)
    assert weights.shape == (5, 4) and means.shape == (5, 4, 2) and variances.shape == (5, 4)
    torch.testing.assert_close(weights.sum(1), torch.ones(5, dtype=torch.float64))


def test_kl_of_a_gaussian_is_zero_and_of_a_mixture_is_positive():
    one = kl_to_gaussian_1d(torch.ones(1, 1, dtype=torch.float64), torch.full((1, 1), 0.3, dtype=torch.float64),
                            torch.full((1, 1), 0.04, dtype=torch.float64))
    assert abs(float(one)) < 1e-13
    # Two equal, well separated spikes at +-1: KL to N(0, 1 + c) -> log 2 ... checked by a finer grid.
    w = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    m = torch.tensor([[-1.0, 1.0]], dtype=torch.float64)
    c = torch.tensor([[0.01, 0.01]], dtype=torch.float64)
    coarse, fine = kl_to_gaussian_1d(w, m, c, n_grid=801), kl_to_gaussian_1d(w, m, c, n_grid=8001)
    assert float(coarse) > 0.5
    torch.testing.assert_close(coarse, fine, rtol=1e-10, atol=0)
    # Closed form for well separated spikes: -H(p) - E_p log g, H(p) = log 2 + H(N(0, c)).
    s2 = 1.01
    expected = -math.log(2) - 0.5 * math.log(2 * math.pi * math.e * 0.01) + 0.5 * math.log(2 * math.pi * s2) + 0.5
    assert abs(float(fine) - expected) < 1e-9


@pytest.mark.parametrize("call, name", [
    (lambda: reverse_step_mixture(MIXTURE, SCHEDULE, 0, torch.zeros(2, 1)), "t"),
    (lambda: reverse_step_mixture(MIXTURE, SCHEDULE, 11, torch.zeros(2, 1)), "t"),
    (lambda: reverse_step_mixture(MIXTURE, SCHEDULE, 2, torch.zeros(2, 2)), "x_t"),
    (lambda: reverse_step_mixture(MIXTURE, SCHEDULE, 2, torch.zeros(2, 1, dtype=torch.long)), "x_t"),
    (lambda: kl_to_gaussian_1d(torch.ones(2, 1), torch.zeros(2, 2), torch.ones(2, 1)), "means"),
    (lambda: kl_to_gaussian_1d(torch.ones(2, 1), torch.zeros(2, 1), torch.ones(2, 1), n_grid=2), "n_grid"),
    (lambda: kl_to_gaussian_1d(torch.ones(2, 1), torch.zeros(2, 1), torch.ones(2, 1), width=0.0), "width"),
])
def test_bad_arguments_name_the_argument(call, name):
    with pytest.raises(ValueError, match=rf"^{name} "):
        call()
