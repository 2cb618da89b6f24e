"""Tests of ddpm_core.toy: the mixture, its exact denoiser, and the sampler driven by it.

References: closed forms (a single Gaussian, the mixture's moments), an independent route
(Tweedie's formula through autograd of torch.distributions' density), seeded Monte Carlo
within a few standard errors, and brute force (1-D optimal transport by permutations).
Timestep convention: the paper's t = 1..T.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from ddpm_core import NoiseSchedule, p_sample_loop, q_sample
from ddpm_core.toy import (
    GaussianMixture,
    component_fractions,
    cov_distance,
    gaussian_sampler_variance,
    mean_distance,
    optimal_eps,
    optimal_x0,
    ring_mixture,
    sliced_wasserstein,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def lopsided_mixture() -> GaussianMixture:
    """Three components with different weights and widths, so no symmetry hides a mistake."""
    return GaussianMixture(
        weights=torch.tensor([0.5, 0.3, 0.2]),
        means=torch.tensor([[0.6, -0.2], [-0.5, 0.4], [0.1, 0.8]]),
        stds=torch.tensor([0.1, 0.25, 0.05]),
    )


def mixture_moments(m: GaussianMixture) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed-form mean and covariance: E[x] = sum w mu, Cov = sum w (s^2 I + mu mu^T) - E[x] E[x]^T."""
    mean = (m.weights[:, None] * m.means).sum(0)
    second = sum(
        w * (s**2 * torch.eye(m.dim, dtype=torch.float64) + torch.outer(mu, mu))
        for w, mu, s in zip(m.weights, m.means, m.stds)
    )
    return mean, second - torch.outer(mean, mean)


def reference_marginal(m: GaussianMixture, alphabar: torch.Tensor) -> MixtureSameFamily:
    """q(x_t) for one alphabar written with torch.distributions, independently of toy.py."""
    loc = alphabar.sqrt() * m.means  # (K, D)
    scale = torch.sqrt(alphabar * m.stds**2 + 1 - alphabar)[:, None].expand_as(loc)  # (K, D)
    return MixtureSameFamily(Categorical(probs=m.weights), Independent(Normal(loc, scale), 1))


# ---------------------------------------------------------------- the mixture itself


def test_ring_mixture_layout():
    m = ring_mixture(k=8, radius=0.7, std=0.08)
    assert m.means.shape == (8, 2) and m.dim == 2
    torch.testing.assert_close(m.means.norm(dim=1), torch.full((8,), 0.7, dtype=torch.float64))
    torch.testing.assert_close(m.weights.sum(), torch.tensor(1.0, dtype=torch.float64))
    # every component within [-1, 1]^2 up to three standard deviations
    assert float((m.means.abs() + 3 * m.stds[:, None]).max()) <= 1.0


def test_sample_moments_match_closed_form():
    m = lopsided_mixture()
    n = 40_000
    x = m.sample(n, torch.Generator().manual_seed(0))
    mean, cov = mixture_moments(m)
    se_mean = torch.sqrt(torch.diagonal(cov) / n)
    assert bool(((x.mean(0) - mean).abs() < 4 * se_mean).all())
    # the covariance entries are O(0.1); their sampling SE at n = 40,000 is below 1e-3
    torch.testing.assert_close(torch.cov(x.T), cov, atol=4e-3, rtol=0)


def test_log_prob_matches_torch_distributions_and_integrates_to_one():
    m = lopsided_mixture()
    x = m.sample(100, torch.Generator().manual_seed(1))
    reference = reference_marginal(m, torch.tensor(1.0, dtype=torch.float64))
    torch.testing.assert_close(m.log_prob(x), reference.log_prob(x))
    # brute-force integral of the density over a fine grid that holds all of its mass
    h = 0.01
    axis = torch.arange(-2.0, 2.0, h, dtype=torch.float64)
    grid = torch.cartesian_prod(axis, axis)  # (400 * 400, 2)
    assert abs(float(m.log_prob(grid).exp().sum()) * h * h - 1.0) < 1e-6
    torch.testing.assert_close(m.responsibilities(x).sum(1), torch.ones(100, dtype=torch.float64))


def test_marginal_matches_forward_process_moments():
    m = lopsided_mixture()
    schedule = NoiseSchedule.linear(100)
    t = 40
    n = 40_000
    x0 = m.sample(n, torch.Generator().manual_seed(2))
    x_t = q_sample(schedule, x0, t, generator=torch.Generator().manual_seed(3))
    mean, cov = mixture_moments(m.marginal(float(schedule.alphas_cumprod[t])))
    se_mean = torch.sqrt(torch.diagonal(cov) / n)
    assert bool(((x_t.mean(0) - mean).abs() < 4 * se_mean).all())
    torch.testing.assert_close(torch.cov(x_t.T), cov, atol=1e-2, rtol=0)


# ---------------------------------------------------------------- the exact denoiser


@pytest.mark.parametrize("t", [1, 10, 50, 100])
def test_optimal_eps_single_gaussian_closed_form(t):
    """K = 1: E[eps | x_t] = sqrt(1 - a) (x_t - sqrt(a) mu) / (a s^2 + 1 - a)."""
    mu, s = torch.tensor([[0.3, -0.7]], dtype=torch.float64), 0.4
    m = GaussianMixture(weights=torch.tensor([1.0]), means=mu, stds=torch.tensor([s], dtype=torch.float64))
    schedule = NoiseSchedule.linear(100)
    x_t = torch.randn(64, 2, generator=torch.Generator().manual_seed(t), dtype=torch.float64)
    a = schedule.alphas_cumprod[t]
    expected = torch.sqrt(1 - a) * (x_t - a.sqrt() * mu) / (a * s**2 + 1 - a)
    got = optimal_eps(m, schedule)(x_t, torch.full((64,), t))
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("t", [1, 5, 30, 200, 1000])
def test_optimal_eps_is_tweedie_score(t):
    """E[eps | x_t] = -sqrt(1 - alphabar_t) grad log q(x_t), with the gradient by autograd."""
    m = lopsided_mixture()
    schedule = NoiseSchedule.linear(1000)
    a = schedule.alphas_cumprod[t]
    x_t = (a.sqrt() * m.sample(200, torch.Generator().manual_seed(4))
           + torch.sqrt(1 - a) * torch.randn(200, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64))
    x_t.requires_grad_(True)
    log_q = reference_marginal(m, a).log_prob(x_t).sum()
    (score,) = torch.autograd.grad(log_q, x_t)
    got = optimal_eps(m, schedule)(x_t.detach(), torch.full((200,), t))
    torch.testing.assert_close(got, -torch.sqrt(1 - a) * score, rtol=1e-9, atol=1e-9)


def test_optimal_eps_matches_importance_weighted_monte_carlo():
    """E[eps | x_t] = sum_i w_i eps_i / sum_i w_i with x0_i ~ q(x_0), w_i = q(x_t | x0_i)."""
    m = lopsided_mixture()
    schedule = NoiseSchedule.linear(1000)
    t = 150
    a = schedule.alphas_cumprod[t]
    points = torch.tensor([[0.0, 0.0], [0.5, -0.1], [-0.6, 0.6], [0.2, 1.2]], dtype=torch.float64)
    x0 = m.sample(200_000, torch.Generator().manual_seed(6))  # (M, 2)
    exact = optimal_eps(m, schedule)(points, torch.full((4,), t))
    for x_t, e in zip(points, exact):
        eps = (x_t - a.sqrt() * x0) / torch.sqrt(1 - a)  # (M, 2): the noise that maps x0_i to x_t
        logw = -0.5 * (eps**2).sum(1)  # log q(x_t | x0_i) up to a constant
        w = torch.softmax(logw, dim=0)
        estimate = (w[:, None] * eps).sum(0)
        se = torch.sqrt(((w[:, None] * (eps - estimate)) ** 2).sum(0))  # delta-method SE
        assert bool((se < 0.01).all()), se  # the check has power
        assert bool(((estimate - e).abs() < 4 * se).all()), (estimate, e, se)


def test_optimal_x0_and_eps_satisfy_the_closed_form():
    """x_t = sqrt(a) E[x_0 | x_t] + sqrt(1 - a) E[eps | x_t], eq. eq-forward-closed-form in expectation."""
    m = ring_mixture()
    schedule = NoiseSchedule.linear(1000)
    x_t = torch.randn(50, 2, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    t = torch.arange(1, 1000, 20)[:50]
    a = schedule.alphas_cumprod[t][:, None]
    rebuilt = a.sqrt() * optimal_x0(m, schedule)(x_t, t) + torch.sqrt(1 - a) * optimal_eps(m, schedule)(x_t, t)
    torch.testing.assert_close(rebuilt, x_t, rtol=1e-12, atol=1e-12)


def test_optimal_x0_tends_to_nearest_mean_at_low_noise():
    m = ring_mixture()
    schedule = NoiseSchedule.linear(1000)
    x0_hat = optimal_x0(m, schedule)(m.means * 1.02, torch.ones(8, dtype=torch.long))
    torch.testing.assert_close(x0_hat, m.means * 1.02, atol=1e-3, rtol=0)  # at t = 1, x_0 ~ x_1
    x0_hat = optimal_x0(m, schedule)(m.means, torch.full((8,), 1000))
    assert float(x0_hat.norm(dim=1).max()) < 1e-2  # at t = T, x_t says almost nothing: E[x_0] = 0


def test_optimal_eps_keeps_dtype_and_shape():
    m = ring_mixture()
    model = optimal_eps(m, NoiseSchedule.linear(10))
    out = model(torch.zeros(3, 2), torch.tensor([1, 5, 10]))
    assert out.dtype == torch.float32 and out.shape == (3, 2)


# ---------------------------------------------------------------- the sampler driven by it


def test_gaussian_sampler_variance_is_exact_for_standard_normal_data():
    """For data N(0, I) with sigma_t^2 = beta_t every step is exact but the last (no noise at
    t = 1), which leaves Var(x_0) = alpha_1 = 1 - beta_1."""
    schedule = NoiseSchedule.linear(1000)
    assert gaussian_sampler_variance(schedule, 1.0, "beta") == pytest.approx(1 - float(schedule.betas[1]), abs=1e-12)


@pytest.mark.parametrize("variance", ["beta_tilde", "beta"])
def test_gaussian_sampler_variance_matches_monte_carlo(variance):
    s = 0.15
    m = GaussianMixture(weights=torch.tensor([1.0]), means=torch.tensor([[0.2, -0.1]]), stds=torch.tensor([s]))
    schedule = NoiseSchedule.linear(100)
    n = 4000
    x = p_sample_loop(schedule, optimal_eps(m, schedule), (n, 2), generator=torch.Generator().manual_seed(8),
                      variance=variance, clip_x0=False).double()
    predicted = gaussian_sampler_variance(schedule, s**2, variance)
    measured = float(((x - x.mean(0)) ** 2).mean())  # both coordinates pooled: 2n values
    se = predicted * math.sqrt(2 / (2 * n))
    assert abs(measured - predicted) < 4 * se
    if variance == "beta_tilde":
        # the exact model with beta-tilde under-disperses, by much more than the sampling error
        assert s**2 - predicted > 8 * se


def mixture_z_scores(m: GaussianMixture, x: torch.Tensor, variance_ratio: float) -> dict[str, float]:
    """Largest |z| of three checks on samples x of an equal-width mixture, each point assigned
    to its nearest mean: component fractions (binomial SE), component means (s / sqrt(n_k)),
    and the pooled mean squared distance to the assigned mean, expected D s^2 variance_ratio
    (its SE: the squared norm of a D-dim Gaussian has variance 2 D s^4)."""
    x = x.double()
    n, d = x.shape
    s = float(m.stds[0])
    nearest = torch.cdist(x, m.means).argmin(1)
    frac = component_fractions(m, x)
    z_frac = (frac - m.weights) / torch.sqrt(m.weights * (1 - m.weights) / n)
    offsets = x - m.means[nearest]  # (n, D)
    counts = torch.bincount(nearest, minlength=len(m.weights)).double()
    comp_means = torch.zeros_like(m.means).index_add_(0, nearest, offsets) / counts[:, None]  # (K, D)
    z_means = comp_means / (s / counts.sqrt()[:, None])
    sq = (offsets**2).sum(1)
    expected_sq = d * s**2 * variance_ratio
    z_spread = (float(sq.mean()) - expected_sq) / (math.sqrt(2 * d) * s**2 * variance_ratio / math.sqrt(n))
    return {"fractions": float(z_frac.abs().max()), "means": float(z_means.abs().max()), "spread": abs(z_spread)}


@pytest.mark.parametrize("variance", ["beta_tilde", "beta"])
def test_sampler_with_exact_model_reproduces_the_ring(variance):
    m = ring_mixture()
    schedule = NoiseSchedule.linear(1000)
    n = 5000
    x = p_sample_loop(schedule, optimal_eps(m, schedule), (n, 2), generator=torch.Generator().manual_seed(9),
                      variance=variance, clip_x0=False)
    data = [m.sample(n, torch.Generator().manual_seed(10 + i)) for i in range(4)]
    proj = torch.Generator().manual_seed(20)
    floor = sum(sliced_wasserstein(data[0], d, 256, proj.manual_seed(20)) for d in data[1:]) / 3
    distance = sliced_wasserstein(x, data[0], 256, proj.manual_seed(20))
    assert distance < 2 * floor, (distance, floor)
    ratio = gaussian_sampler_variance(schedule, float(m.stds[0]) ** 2, variance) / float(m.stds[0]) ** 2
    z = mixture_z_scores(m, x, ratio)
    assert max(z.values()) < 4, z
    assert mean_distance(x, data[0]) < 0.03 and cov_distance(x, data[0]) < 0.03


def test_mixture_checks_detect_a_wrong_distribution():
    """The checks above have power: samples of slightly different mixtures fail them."""
    m = ring_mixture()
    n = 5000
    wider = GaussianMixture(weights=m.weights, means=m.means, stds=1.1 * m.stds)
    assert mixture_z_scores(m, wider.sample(n, torch.Generator().manual_seed(30)), 1.0)["spread"] > 4
    shifted = GaussianMixture(weights=m.weights, means=1.03 * m.means, stds=m.stds)
    assert mixture_z_scores(m, shifted.sample(n, torch.Generator().manual_seed(31)), 1.0)["means"] > 4
    w = torch.tensor([0.16] + [0.12] * 7)
    reweighted = GaussianMixture(weights=w / w.sum(), means=m.means, stds=m.stds)
    assert mixture_z_scores(m, reweighted.sample(n, torch.Generator().manual_seed(32)), 1.0)["fractions"] > 4
    assert mixture_z_scores(m, m.sample(n, torch.Generator().manual_seed(33)), 1.0)["spread"] < 4


# ---------------------------------------------------------------- distances


def test_sliced_wasserstein_in_one_dimension_is_brute_force_optimal_transport():
    a = torch.randn(6, 1, generator=torch.Generator().manual_seed(40), dtype=torch.float64)
    b = torch.randn(6, 1, generator=torch.Generator().manual_seed(41), dtype=torch.float64) + 0.5
    best = min(float(((a[:, 0] - b[list(p), 0]) ** 2).mean()) for p in itertools.permutations(range(6)))
    assert sliced_wasserstein(a, b, 3, torch.Generator().manual_seed(0)) == pytest.approx(math.sqrt(best), rel=1e-12)


def test_sliced_wasserstein_of_a_translation():
    """b = a + c moves every projection by u.c, so SW^2 = mean_u (u.c)^2 -> |c|^2 / 2 in 2-D."""
    a = torch.randn(500, 2, generator=torch.Generator().manual_seed(42), dtype=torch.float64)
    c = torch.tensor([0.3, -0.4], dtype=torch.float64)
    assert sliced_wasserstein(a, a, 16, torch.Generator().manual_seed(0)) == 0.0
    got = sliced_wasserstein(a, a + c, 20_000, torch.Generator().manual_seed(0))
    assert got == pytest.approx(0.5 / math.sqrt(2), rel=0.02)
    assert isinstance(got, float)


def test_mean_and_cov_distance_known_values():
    a = torch.tensor([[0.0, 0.0], [2.0, 0.0]])  # mean (1, 0), Cov diag(2, 0)
    b = torch.tensor([[1.0, 3.0], [1.0, 5.0]])  # mean (1, 4), Cov diag(0, 2)
    assert mean_distance(a, b) == pytest.approx(4.0)
    assert cov_distance(a, b) == pytest.approx(math.sqrt(8.0))


def test_component_fractions_known_points():
    m = ring_mixture(k=4, radius=1.0, std=0.1)  # means (1,0), (0,1), (-1,0), (0,-1)
    x = torch.tensor([[0.9, 0.1], [1.2, 0.0], [0.0, 0.8], [-0.1, -2.0]])
    torch.testing.assert_close(component_fractions(m, x), torch.tensor([0.5, 0.25, 0.0, 0.25], dtype=torch.float64))


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(weights=torch.tensor([1.0]), means=torch.zeros(2), stds=torch.tensor([1.0])), "means"),
        (dict(weights=torch.tensor([0.5, 0.5]), means=torch.zeros(1, 2), stds=torch.tensor([1.0])), "weights"),
        (dict(weights=torch.tensor([1.0]), means=torch.zeros(1, 2), stds=torch.tensor([1.0, 1.0])), "stds"),
        (dict(weights=torch.tensor([0.5, 0.6]), means=torch.zeros(2, 2), stds=torch.ones(2)), "weights"),
        (dict(weights=torch.tensor([1.5, -0.5]), means=torch.zeros(2, 2), stds=torch.ones(2)), "weights"),
        (dict(weights=torch.tensor([1.0]), means=torch.zeros(1, 2), stds=torch.tensor([0.0])), "stds"),
    ],
)
def test_gaussian_mixture_rejects_bad_fields(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(**kwargs)


def test_gaussian_mixture_is_frozen_and_keyword_only():
    m = ring_mixture()
    with pytest.raises(AttributeError):
        m.stds = torch.ones(8)
    with pytest.raises(TypeError):
        GaussianMixture(torch.tensor([1.0]), torch.zeros(1, 2), torch.ones(1))


def test_bad_arguments_raise_value_errors():
    m = ring_mixture()
    schedule = NoiseSchedule.linear(10)
    with pytest.raises(ValueError, match="n must be"):
        m.sample(0)
    with pytest.raises(ValueError, match="x must have shape"):
        m.log_prob(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="floating-point"):
        m.log_prob(torch.zeros(3, 2, dtype=torch.long))
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="alphabar"):
            m.marginal(bad)
    for kwargs, match in ((dict(k=0), "k must be"), (dict(radius=0.0), "radius"), (dict(std=-1.0), "std")):
        with pytest.raises(ValueError, match=match):
            ring_mixture(**kwargs)
    model = optimal_eps(m, schedule)
    with pytest.raises(ValueError, match=r"t must be in 1\.\.10"):
        model(torch.zeros(2, 2), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="x_t must have shape"):
        model(torch.zeros(2, 3), torch.tensor([1, 1]))
    with pytest.raises(ValueError, match="variance"):
        gaussian_sampler_variance(schedule, 0.1, "sigma")
    with pytest.raises(ValueError, match="data_var"):
        gaussian_sampler_variance(schedule, -0.1)
    with pytest.raises(ValueError, match="b must have the same shape"):
        sliced_wasserstein(torch.zeros(3, 2), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="n_projections"):
        sliced_wasserstein(torch.zeros(3, 2), torch.zeros(3, 2), 0)
    with pytest.raises(ValueError, match="a must have shape"):
        sliced_wasserstein(torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="shapes"):
        mean_distance(torch.zeros(3, 2), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="at least 2 points"):
        cov_distance(torch.zeros(1, 2), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="x must have shape"):
        component_fractions(m, torch.zeros(3, 1))
