"""Training objectives: L_simple, the Gaussian KL, the discretized decoder and the variational bound.

Timestep convention: the paper's t = 1..T; the model receives t as a long tensor in 1..T.
"""

import math

import pytest
import torch

from ddpm_core import (
    NoiseSchedule,
    bpd_bound,
    bpd_bound_stratified,
    discretized_gaussian_log_likelihood,
    min_snr_weight,
    normal_kl,
    prior_bpd,
    q_sample,
    sample_timesteps,
    simple_loss,
    vb_terms_bpd,
)

LEVELS = torch.arange(256, dtype=torch.float64) * 2 / 255 - 1  # the 256 pixel values in [-1, 1]


def eps_oracle(schedule: NoiseSchedule, x0: torch.Tensor):
    """A model that knows x_0 and so recovers the true noise: eps = (x_t - sqrt(ab) x_0) / sqrt(1 - ab)."""

    def model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        assert t.dtype == torch.long and t.shape == (x_t.shape[0],)
        assert 1 <= int(t.min()) and int(t.max()) <= schedule.T
        ab = schedule.alphas_cumprod[t].to(x_t.dtype).reshape(-1, *([1] * (x_t.dim() - 1)))  # (B, 1, ..., 1)
        return (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()

    return model


def grid_images(batch: int, seed: int) -> torch.Tensor:
    """Random (B, 1, 4, 4) float64 images on the 256-level grid in [-1, 1], including both ends."""
    g = torch.Generator().manual_seed(seed)
    k = torch.randint(0, 256, (batch, 1, 4, 4), generator=g)
    k[0, 0, 0, 0], k[0, 0, 0, 1] = 0, 255
    return LEVELS[k]


def phi(z: float) -> float:
    """Standard normal CDF from Python's math.erfc (independent of torch)."""
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


# --- L_simple ------------------------------------------------------------------------------


def test_simple_loss_is_zero_for_the_noise_oracle():
    s = NoiseSchedule.linear(100, 1e-3, 0.2)
    x0 = grid_images(8, 0)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    t = torch.arange(1, 101, 13)[:8]
    # Two oracles: one that returns the noise it was handed, one that recovers it from x_t,
    # which checks that simple_loss builds x_t with the closed form at the right t.
    handed = simple_loss(s, lambda x_t, tt: noise, x0, t, noise=noise)
    recovered = simple_loss(s, eps_oracle(s, x0), x0, t, noise=noise)
    assert float(handed) == 0.0
    assert float(recovered) < 1e-20
    assert float(simple_loss(s, eps_oracle(s, x0), x0, t, noise=noise, loss_type="l1")) < 1e-10


def test_simple_loss_l1_and_l2():
    s = NoiseSchedule.linear(100, 1e-3, 0.2)
    x0 = grid_images(4, 2)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    off_by_half = lambda x_t, t: noise + 0.5  # noqa: E731
    assert float(simple_loss(s, off_by_half, x0, 10, noise=noise, loss_type="l2")) == pytest.approx(0.25, rel=1e-12)
    assert float(simple_loss(s, off_by_half, x0, 10, noise=noise, loss_type="l1")) == pytest.approx(0.5, rel=1e-12)
    zero_model = lambda x_t, t: torch.zeros_like(x_t)  # noqa: E731
    l2 = simple_loss(s, zero_model, x0, 10, noise=noise, loss_type="l2")
    l1 = simple_loss(s, zero_model, x0, 10, noise=noise, loss_type="l1")
    assert float(l2) == pytest.approx(float((noise**2).mean()), rel=1e-12)
    assert float(l1) == pytest.approx(float(noise.abs().mean()), rel=1e-12)
    assert l2.shape == () and l1.shape == ()


def test_simple_loss_draws_standard_normal_noise_reproducibly():
    s = NoiseSchedule.linear(100, 1e-3, 0.2)
    x0 = torch.zeros(4000, 1, 4, 4, dtype=torch.float64)  # 64,000 noise values
    zero_model = lambda x_t, t: torch.zeros_like(x_t)  # noqa: E731
    a = simple_loss(s, zero_model, x0, 5, generator=torch.Generator().manual_seed(7))
    b = simple_loss(s, zero_model, x0, 5, generator=torch.Generator().manual_seed(7))
    c = simple_loss(s, zero_model, x0, 5, generator=torch.Generator().manual_seed(8))
    assert float(a) == float(b) and float(a) != float(c)
    # With eps_theta = 0 the loss is the mean of eps^2: E = 1, SD of the mean = sqrt(2 / n).
    n = x0.numel()
    assert abs(float(a) - 1.0) < 4.5 * math.sqrt(2 / n)
    # L1: E|eps| = sqrt(2 / pi), Var|eps| = 1 - 2 / pi.
    l1 = simple_loss(s, zero_model, x0, 5, loss_type="l1", generator=torch.Generator().manual_seed(9))
    assert abs(float(l1) - math.sqrt(2 / math.pi)) < 4.5 * math.sqrt((1 - 2 / math.pi) / n)


def test_sample_timesteps_covers_1_to_T():
    t = sample_timesteps(5000, 10, generator=torch.Generator().manual_seed(0))
    assert t.dtype == torch.long and t.shape == (5000,)
    assert set(t.tolist()) == set(range(1, 11))


# --- KL and the discretized decoder --------------------------------------------------------


def test_normal_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    m1, m2 = torch.randn(50, generator=g, dtype=torch.float64), torch.randn(50, generator=g, dtype=torch.float64)
    lv1, lv2 = torch.randn(50, generator=g, dtype=torch.float64), torch.randn(50, generator=g, dtype=torch.float64)
    p = torch.distributions.Normal(m1, torch.exp(0.5 * lv1))
    q = torch.distributions.Normal(m2, torch.exp(0.5 * lv2))
    expected = torch.distributions.kl_divergence(p, q)
    torch.testing.assert_close(normal_kl(m1, lv1, m2, lv2), expected, rtol=1e-12, atol=1e-14)
    assert bool((normal_kl(m1, lv1, m2, lv2) >= 0).all())
    # Broadcasting: a (B, 1) log-variance against (B, D) means.
    out = normal_kl(m1.reshape(5, 10), lv1[:5].reshape(5, 1), m2.reshape(5, 10), torch.zeros(5, 1, dtype=torch.float64))
    assert out.shape == (5, 10)


def test_normal_kl_is_zero_for_equal_gaussians():
    m = torch.linspace(-3, 3, 7, dtype=torch.float64)
    lv = torch.linspace(-5, 2, 7, dtype=torch.float64)
    torch.testing.assert_close(normal_kl(m, lv, m, lv), torch.zeros(7, dtype=torch.float64), rtol=0, atol=1e-15)


@pytest.mark.parametrize("mean, scale", [(0.0, 0.1), (0.3, 0.5), (-0.97, 0.02), (0.999, 0.004), (1.5, 2.0)])
def test_discretized_likelihood_sums_to_one_over_the_256_levels(mean, scale):
    means = torch.full((256,), mean, dtype=torch.float64)
    log_p = discretized_gaussian_log_likelihood(LEVELS, means, torch.tensor(math.log(scale), dtype=torch.float64))
    assert log_p.shape == (256,)
    assert float(log_p.exp().sum()) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("mean, scale", [(0.0, 0.1), (0.3, 0.5), (-0.97, 0.02), (1.5, 2.0)])
def test_discretized_likelihood_is_a_cdf_difference(mean, scale):
    means = torch.full((256,), mean, dtype=torch.float64)
    log_p = discretized_gaussian_log_likelihood(LEVELS, means, torch.full((256,), math.log(scale), dtype=torch.float64))
    for k in range(256):
        x = float(LEVELS[k])
        upper = 1.0 if k == 255 else phi((x + 1 / 255 - mean) / scale)  # the top bin reaches +inf
        lower = 0.0 if k == 0 else phi((x - 1 / 255 - mean) / scale)  # the bottom bin reaches -inf
        # Probabilities below 1e-12 are clamped there before the log, hence the absolute tolerance.
        assert math.exp(float(log_p[k])) == pytest.approx(upper - lower, rel=1e-9, abs=2e-12), k


def test_discretized_likelihood_accepts_float32_images():
    x = LEVELS.float().reshape(4, 1, 8, 8)
    out = discretized_gaussian_log_likelihood(x, torch.zeros_like(x), torch.full((4, 1, 1, 1), -1.0))
    assert out.shape == x.shape and out.dtype == torch.float32
    assert bool(torch.isfinite(out).all()) and bool((out <= 0).all())


# --- the variational bound -----------------------------------------------------------------


def test_prior_bpd_is_near_zero_for_the_linear_schedule():
    s = NoiseSchedule.linear(1000)
    x0 = grid_images(4, 5)
    bpd = prior_bpd(s, x0)
    assert bpd.shape == (4,)
    ab = float(s.alphas_cumprod[1000])
    # Closed form: KL(N(sqrt(ab) x0, 1 - ab) || N(0, 1)) = (-log(1 - ab) - ab + ab x0^2) / 2 nats.
    expected = ((-math.log(1 - ab) - ab + ab * x0**2) / 2).reshape(4, -1).mean(1) / math.log(2)
    torch.testing.assert_close(bpd, expected, rtol=1e-9, atol=1e-15)
    assert float(bpd.max()) < 1e-4
    assert float(prior_bpd(NoiseSchedule.linear(10), x0).min()) > 0.1  # a short schedule leaves a real prior term


@pytest.mark.parametrize("clip_x0", [False, True])
def test_vb_terms_with_the_true_posterior_are_zero_for_t_at_least_2(clip_x0):
    s = NoiseSchedule.linear(100, 1e-3, 0.2)
    B = 6
    x0 = grid_images(B, 6)
    t = torch.tensor([2, 3, 10, 50, 99, 100])
    x_t = q_sample(s, x0, t, generator=torch.Generator().manual_seed(0))
    model = eps_oracle(s, x0)
    # With the true noise the model's mean is the posterior mean, and with sigma^2 = beta-tilde
    # the two Gaussians coincide: KL = 0.
    tilde = vb_terms_bpd(s, model, x0, x_t, t, variance="beta_tilde", clip_x0=clip_x0)
    assert tilde.shape == (B,)
    assert float(tilde.abs().max()) < 1e-9
    # With sigma^2 = beta_t only the variances differ: KL = (beta-tilde/beta - 1 - log(beta-tilde/beta)) / 2.
    beta = vb_terms_bpd(s, model, x0, x_t, t, variance="beta", clip_x0=clip_x0)
    r = s.posterior_variance[t] / s.betas[t]
    torch.testing.assert_close(beta, (r - 1 - torch.log(r)) / 2 / math.log(2), rtol=1e-6, atol=1e-9)
    assert float(beta.min()) > 0


def test_vb_term_at_t_equals_one_is_the_decoder_nll():
    s = NoiseSchedule.linear(100, 1e-3, 0.2)
    x0 = grid_images(3, 7)
    x_1 = q_sample(s, x0, 1, generator=torch.Generator().manual_seed(1))
    # At t = 1 the posterior mean is x_0 itself, so with the oracle every pixel is decoded by a
    # Gaussian centred on its own value with std sqrt(beta_1): its bin has probability
    # Phi(1/255 / sd) - Phi(-1/255 / sd) inside, 1 - Phi(-1/255 / sd) at the two ends.
    sd = math.sqrt(float(s.betas[1]))
    mid = phi(1 / 255 / sd) - phi(-1 / 255 / sd)
    end = 1 - phi(-1 / 255 / sd)
    is_end = (x0.abs() > 0.999).reshape(3, -1)
    log_p = torch.full((3, 16), math.log(mid), dtype=torch.float64)  # (B, pixels)
    log_p[is_end] = math.log(end)
    expected = -log_p.mean(1) / math.log(2)
    out = vb_terms_bpd(s, eps_oracle(s, x0), x0, x_1, 1, variance="beta", clip_x0=False)
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-12)


def test_bpd_bound_shapes_and_sum():
    s = NoiseSchedule.linear(20, 1e-3, 0.4)
    B = 3
    x0 = grid_images(B, 8)
    g = torch.Generator().manual_seed(0)
    out = bpd_bound(s, eps_oracle(s, x0), x0, variance="beta_tilde", clip_x0=False, generator=g)
    assert out["total"].shape == (B,) and out["prior"].shape == (B,) and out["terms"].shape == (B, s.T)
    torch.testing.assert_close(out["total"], out["prior"] + out["terms"].sum(1))
    torch.testing.assert_close(out["prior"], prior_bpd(s, x0))
    # The oracle knows the true posterior: every term but L_0 (column t = 1) vanishes.
    assert float(out["terms"][:, 1:].abs().max()) < 1e-9
    assert float(out["terms"][:, 0].min()) > 0
    # A model that always says eps = 0 is worse at every t >= 2.
    bad = bpd_bound(s, lambda x_t, t: torch.zeros_like(x_t), x0, variance="beta_tilde", clip_x0=False)
    assert bool((bad["terms"][:, 1:] > 1e-3).all())


def test_bpd_bound_stratified_parts_and_runs():
    s = NoiseSchedule.linear(20, 1e-3, 0.4)
    x0 = grid_images(3, 9)
    zero = lambda x_t, t: torch.zeros_like(x_t)  # noqa: E731
    out = bpd_bound_stratified(s, zero, x0, blocks=4, variance="beta_tilde", clip_x0=False,
                               generator=torch.Generator().manual_seed(0))
    assert out["t"].shape == (3, 4) and out["terms"].shape == (3, 4) and out["widths"].tolist() == [5, 5, 4, 5]
    torch.testing.assert_close(out["total"], out["prior"] + out["L0"] + out["middle"])
    torch.testing.assert_close(out["middle"], (out["terms"] * out["widths"]).sum(1))
    torch.testing.assert_close(out["prior"], prior_bpd(s, x0))
    # Every draw lies in its own run of 2..T, and the runs cover 2..T exactly once.
    edges = torch.cat([torch.tensor([2]), 2 + out["widths"].cumsum(0)])
    assert int(edges[-1]) == s.T + 1
    assert bool(((out["t"] >= edges[:-1]) & (out["t"] < edges[1:])).all())
    # With T - 1 runs, every t = 2..T is drawn once: one draw of each term, like bpd_bound.
    full_runs = bpd_bound_stratified(s, zero, x0, blocks=s.T - 1, variance="beta_tilde", clip_x0=False)
    assert full_runs["t"].tolist() == [list(range(2, s.T + 1))] * 3
    # The oracle makes every L_{t-1}, t >= 2, vanish, so the estimate is exact there too.
    oracle = bpd_bound_stratified(s, eps_oracle(s, x0), x0, blocks=4, variance="beta_tilde", clip_x0=False)
    assert float(oracle["middle"].abs().max()) < 1e-9


def test_bpd_bound_stratified_is_unbiased():
    """Averaged over many draws, the 3-run estimate agrees with the full sum of bpd_bound."""
    s = NoiseSchedule.linear(20, 1e-3, 0.4)
    x0 = grid_images(2, 10).repeat(1500, 1, 1, 1)  # (3000, 1, 4, 4): two digits, 1500 draws each
    model = lambda x_t, t: 0.5 * x_t  # noqa: E731  (a poor model whose terms vary with t and x_t)
    est = bpd_bound_stratified(s, model, x0, blocks=3, generator=torch.Generator().manual_seed(1))["total"]
    full = bpd_bound(s, model, x0, generator=torch.Generator().manual_seed(2))["total"]
    for k in range(2):  # per digit: the two estimates of the same expectation
        a, b = est[k::2], full[k::2]
        se = math.sqrt(a.var() / a.numel() + b.var() / b.numel())
        assert abs(float(a.mean() - b.mean())) < 4 * se, (float(a.mean()), float(b.mean()), se)
        assert float(a.std()) > float(b.std())  # stratifying over t costs variance, not bias


@pytest.mark.parametrize("blocks", [0, 20, 2.0, True])
def test_bpd_bound_stratified_refuses_bad_blocks(blocks):
    s = NoiseSchedule.linear(20)
    with pytest.raises(ValueError, match=r"blocks must be an integer in 1..19"):
        bpd_bound_stratified(s, lambda x_t, t: torch.zeros_like(x_t), grid_images(2, 0), blocks=blocks)


def test_bpd_bound_stratified_needs_two_steps():
    with pytest.raises(ValueError, match="schedule.T must be >= 2"):
        bpd_bound_stratified(NoiseSchedule.linear(1), lambda x_t, t: torch.zeros_like(x_t), grid_images(2, 0))


def test_simple_loss_weights_each_example():
    s = NoiseSchedule.linear(100, 1e-3, 0.2)
    x0 = grid_images(3, 5)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    zero_model = lambda x_t, t: torch.zeros_like(x_t)  # noqa: E731
    t = torch.tensor([3, 50, 90])
    per_example = (noise**2).mean(dim=(1, 2, 3))  # (3,): what eps_theta = 0 gets wrong
    w = torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64)
    weighted = simple_loss(s, zero_model, x0, t, noise=noise, weights=w)
    assert float(weighted) == pytest.approx(float((w * per_example).mean()), rel=1e-12)
    ones = simple_loss(s, zero_model, x0, t, noise=noise, weights=torch.ones(3))
    assert float(ones) == pytest.approx(float(simple_loss(s, zero_model, x0, t, noise=noise)), rel=1e-6)
    with pytest.raises(ValueError, match=r"weights must be a tensor of shape \(B,\) = \(3,\)"):
        simple_loss(s, zero_model, x0, t, noise=noise, weights=torch.ones(4))


def test_min_snr_weight():
    s = NoiseSchedule.linear(1000)
    t = torch.arange(1, 1001)
    abar = s.alphas_cumprod[1:]
    snr = abar / (1 - abar)
    for gamma in (1.0, 5.0):
        w = min_snr_weight(s, t, gamma)
        assert w.shape == (1000,) and w.dtype == torch.float32
        expected = torch.where(snr > gamma, gamma / snr, torch.ones_like(snr))
        torch.testing.assert_close(w.double(), expected, rtol=1e-6, atol=0)
        # Weight 1 exactly where the signal-to-noise ratio is at most gamma, below 1 where it is above.
        assert bool((w[snr <= gamma] == 1).all()) and bool((w[snr > gamma] < 1).all())
    # The identity behind it: an eps error is an x_0 error times sqrt(SNR_t),
    # so w_t ||eps error||^2 = min(SNR_t, gamma) ||x_0 error||^2.
    g = torch.Generator().manual_seed(0)
    x0, eps, eps_hat = (torch.randn(1000, 16, generator=g, dtype=torch.float64) for _ in range(3))
    ab = abar[:, None]
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    x0_hat = (x_t - (1 - ab).sqrt() * eps_hat) / ab.sqrt()
    lhs = min_snr_weight(s, t, 5.0).double() * ((eps_hat - eps) ** 2).sum(1)
    rhs = torch.clamp(snr, max=5.0) * ((x0_hat - x0) ** 2).sum(1)
    torch.testing.assert_close(lhs, rhs, rtol=1e-5, atol=1e-9)
    assert min_snr_weight(s, 1000).shape == (1,)


@pytest.mark.parametrize("gamma", [0.0, -1.0, math.inf, True, "5"])
def test_min_snr_weight_refuses_bad_gamma(gamma):
    with pytest.raises(ValueError, match="gamma must be a finite number > 0"):
        min_snr_weight(NoiseSchedule.linear(10), torch.tensor([1, 2]), gamma)


def test_min_snr_weight_refuses_bad_timesteps():
    with pytest.raises(ValueError, match=r"t must be in 1..10"):
        min_snr_weight(NoiseSchedule.linear(10), torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="integer"):
        min_snr_weight(NoiseSchedule.linear(10), torch.tensor([1.0, 2.0]))
