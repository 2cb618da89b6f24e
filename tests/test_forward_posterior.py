"""Forward process q(x_t | x_0) and posterior q(x_{t-1} | x_t, x_0).

Checked three ways: closed forms in float64, brute-force Gaussian conditioning of the joint
(x_{t-1}, x_t | x_0) in NumPy, and seeded Monte Carlo within a few standard errors.
Timestep convention: the paper's t = 1..T; schedule arrays are indexed by t.
"""

import math

import numpy as np
import pytest
import torch

from ddpm_core import (
    NoiseSchedule,
    posterior_mean_from_eps,
    predict_x0_from_eps,
    q_mean_variance,
    q_posterior_mean_variance,
    q_sample,
    q_step,
)

N_SE = 4.5  # Monte Carlo tolerance, in standard errors
pytestmark = pytest.mark.usefixtures("one_thread")


def np_alphabar(betas_1_to_T: np.ndarray) -> np.ndarray:
    """alphabar_0..alphabar_T in NumPy float64 (alphabar_0 = 1)."""
    return np.concatenate([[1.0], np.cumprod(1.0 - betas_1_to_T)])


@pytest.fixture(params=["linear", "cosine"])
def schedule(request):
    return NoiseSchedule.linear(1000) if request.param == "linear" else NoiseSchedule.cosine(1000)


# --- closed forms --------------------------------------------------------------------------


def test_q_sample_is_the_closed_form():
    betas = np.linspace(1e-4, 0.02, 1000)
    ab = np_alphabar(betas)
    s = NoiseSchedule.linear(1000)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(5, 2, 3, generator=g, dtype=torch.float64) * 2 - 1
    noise = torch.randn(5, 2, 3, generator=g, dtype=torch.float64)
    t = torch.tensor([1, 10, 250, 999, 1000])
    x_t = q_sample(s, x0, t, noise)
    for i, ti in enumerate(t.tolist()):
        expected = np.sqrt(ab[ti]) * x0[i].numpy() + np.sqrt(1 - ab[ti]) * noise[i].numpy()
        np.testing.assert_allclose(x_t[i].numpy(), expected, rtol=1e-12, atol=1e-14)
    # An int t means the same step for the whole batch; float32 data stay float32.
    x32 = q_sample(s, x0.float(), 250, noise.float())
    assert x32.dtype == torch.float32
    torch.testing.assert_close(x32, q_sample(s, x0, 250, noise).float(), rtol=1e-6, atol=1e-6)


def test_q_sample_draws_its_own_noise_reproducibly():
    s = NoiseSchedule.linear(100, 1e-3, 0.2)
    x0 = torch.zeros(4, 3)
    a = q_sample(s, x0, 50, generator=torch.Generator().manual_seed(3))
    b = q_sample(s, x0, 50, generator=torch.Generator().manual_seed(3))
    c = q_sample(s, x0, 50, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)


def test_q_mean_variance_is_the_closed_form():
    betas = np.linspace(1e-4, 0.02, 1000)
    ab = np_alphabar(betas)
    s = NoiseSchedule.linear(1000)
    x0 = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(3, 1, 2, 2)
    t = torch.tensor([1, 500, 1000])
    mean, var, log_var = q_mean_variance(s, x0, t)
    assert mean.shape == x0.shape and var.shape == (3, 1, 1, 1) and log_var.shape == (3, 1, 1, 1)
    for i, ti in enumerate(t.tolist()):
        np.testing.assert_allclose(mean[i].numpy(), np.sqrt(ab[ti]) * x0[i].numpy(), rtol=1e-12)
        assert float(var[i]) == pytest.approx(1 - ab[ti], rel=1e-12)
        assert float(log_var[i]) == pytest.approx(np.log(1 - ab[ti]), rel=1e-12)


def test_predict_x0_from_eps_inverts_q_sample(schedule):
    T = schedule.T
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(T, 3, generator=g, dtype=torch.float64) * 2 - 1  # one example per t
    noise = torch.randn(T, 3, generator=g, dtype=torch.float64)
    t = torch.arange(1, T + 1)
    x_t = q_sample(schedule, x0, t, noise)
    x0_back = predict_x0_from_eps(schedule, x_t, t, noise)
    # Dividing by sqrt(alphabar_t) amplifies rounding by up to 1/sqrt(alphabar_T) (~160 linear,
    # ~5000 cosine), so the tolerance scales with it.
    scale = schedule.sqrt_recip_alphas_cumprod[t].unsqueeze(1)
    assert bool(((x0_back - x0).abs() <= 1e-14 * scale).all())


def test_posterior_mean_from_eps_equals_posterior_mean_of_implied_x0(schedule):
    T = schedule.T
    g = torch.Generator().manual_seed(2)
    x_t = torch.randn(T, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(T, 4, generator=g, dtype=torch.float64)
    t = torch.arange(1, T + 1)
    x0_hat = predict_x0_from_eps(schedule, x_t, t, eps)
    mean, _, _ = q_posterior_mean_variance(schedule, x0_hat, x_t, t)
    mean_eps = posterior_mean_from_eps(schedule, x_t, t, eps)
    # The two routes are algebraically equal, so they differ only by float64 rounding, amplified
    # by the condition numbers of the coefficients: 1/sqrt(alphabar_t) (large at t near T) and
    # 1/(1 - alphabar_t) (1 - alphabar_t cancels digits at t near 1).
    ab = schedule.alphas_cumprod[t].unsqueeze(1)
    scale = (x_t.abs() + eps.abs()) * schedule.sqrt_recip_alphas_cumprod[t].unsqueeze(1) / (1.0 - ab)
    assert bool(((mean - mean_eps).abs() <= 1e-14 * scale).all())


# --- posterior by brute-force conditioning of the joint -------------------------------------


def conditioned_joint(betas_1_to_T: np.ndarray, x0: float, x_t: float, t: int) -> tuple[float, float]:
    """Mean and variance of x_{t-1} given (x_t, x_0), from the joint Gaussian of the forward process.

    x_{t-1} = sqrt(ab_{t-1}) x0 + sqrt(1 - ab_{t-1}) e1 and x_t = sqrt(alpha_t) x_{t-1} + sqrt(beta_t) e2,
    i.e. [x_{t-1}, x_t] = m + A [e1, e2] with Cov = A A^T; condition with the Schur complement.
    """
    ab = np_alphabar(betas_1_to_T)
    beta_t = betas_1_to_T[t - 1]
    alpha_t = 1.0 - beta_t
    m = np.array([np.sqrt(ab[t - 1]) * x0, np.sqrt(alpha_t) * np.sqrt(ab[t - 1]) * x0])
    A = np.array(
        [
            [np.sqrt(1 - ab[t - 1]), 0.0],
            [np.sqrt(alpha_t) * np.sqrt(1 - ab[t - 1]), np.sqrt(beta_t)],
        ]
    )
    S = A @ A.T  # 2x2 covariance of (x_{t-1}, x_t) given x_0
    mean = m[0] + S[0, 1] / S[1, 1] * (x_t - m[1])
    var = S[0, 0] - S[0, 1] ** 2 / S[1, 1]
    return mean, var


@pytest.mark.parametrize(
    "betas_np, make",
    [
        (np.linspace(1e-4, 0.02, 1000), lambda: NoiseSchedule.linear(1000)),
        (np.linspace(1e-3, 0.3, 40), lambda: NoiseSchedule.linear(40, 1e-3, 0.3)),
    ],
)
def test_posterior_matches_gaussian_conditioning_of_the_joint(betas_np, make):
    s = make()
    T = s.T
    ts = [1, 2, 3, T // 2, T - 1, T]
    x0_vals = [-1.0, 0.25, 0.9]
    xt_vals = [-2.0, 0.0, 1.5]
    # One batch with a different t per example, to check per-example indexing too.
    rows = [(t, a, b) for t in ts for a in x0_vals for b in xt_vals]
    t = torch.tensor([r[0] for r in rows])
    x0 = torch.tensor([r[1] for r in rows], dtype=torch.float64).unsqueeze(1)
    x_t = torch.tensor([r[2] for r in rows], dtype=torch.float64).unsqueeze(1)
    mean, var, log_var = q_posterior_mean_variance(s, x0, x_t, t)
    assert mean.shape == (len(rows), 1) and var.shape == (len(rows), 1)
    for i, (ti, a, b) in enumerate(rows):
        ref_mean, ref_var = conditioned_joint(betas_np, a, b, ti)
        assert float(mean[i]) == pytest.approx(ref_mean, rel=1e-11, abs=1e-13)
        assert float(var[i]) == pytest.approx(ref_var, rel=1e-11, abs=1e-15)
        if ti >= 2:
            assert float(log_var[i]) == pytest.approx(np.log(ref_var), rel=1e-11)


# --- Monte Carlo ---------------------------------------------------------------------------


def assert_mean_var_within_se(samples: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> None:
    """Column-wise sample mean and variance against the truth, within N_SE standard errors.

    SE of the mean: sqrt(var / n). SE of the sample variance of Gaussian data: var sqrt(2 / (n - 1)).
    """
    n = samples.shape[0]
    se_mean = (var / n).sqrt()
    se_var = var * (2.0 / (n - 1)) ** 0.5
    assert bool(((samples.mean(0) - mean).abs() < N_SE * se_mean).all()), (samples.mean(0), mean)
    assert bool(((samples.var(0) - var).abs() < N_SE * se_var).all()), (samples.var(0), var)


def test_iterated_q_step_matches_the_closed_form_marginal():
    s = NoiseSchedule.linear(30, 1e-3, 0.3)
    n = 50_000
    g = torch.Generator().manual_seed(10)
    x0_row = torch.tensor([-1.0, 0.0, 0.4, 1.0], dtype=torch.float64)
    x0 = x0_row.expand(n, 4).clone()
    x = x0
    checked = 0
    for t in range(1, s.T + 1):
        x = q_step(s, x, t, generator=g)
        if t in (1, 2, 5, 15, 30):
            mean, var, _ = q_mean_variance(s, x0[:1], t)  # (1, 4), (1, 1)
            assert_mean_var_within_se(x, mean[0], var[0].expand(4))
            checked += 1
    assert checked == 5


def test_q_sample_monte_carlo_matches_q_mean_variance():
    s = NoiseSchedule.cosine(100)
    n = 100_000
    x0 = torch.tensor([[-0.8, 0.3]], dtype=torch.float64).expand(n, 2)
    for t in (1, 50, 100):
        x_t = q_sample(s, x0, t, generator=torch.Generator().manual_seed(t))
        mean, var, _ = q_mean_variance(s, x0[:1], t)
        assert_mean_var_within_se(x_t, mean[0], var[0].expand(2))


@pytest.mark.parametrize("t", [2, 10, 40])
def test_posterior_matches_regression_on_sampled_pairs(t):
    """Sample (x_{t-1}, x_t) from the forward process with x_0 fixed and regress x_{t-1} on x_t.

    The posterior says x_{t-1} = coef1 x_0 + coef2 x_t + noise of variance beta-tilde_t, so the
    least-squares slope is coef2, the fitted mean at x_t = E[x_t] is the posterior mean there,
    and the residual variance is beta-tilde_t.
    """
    s = NoiseSchedule.linear(40, 1e-3, 0.3)
    n = 200_000
    g = torch.Generator().manual_seed(100 + t)
    x0_value = 0.6
    x0 = torch.full((n, 1), x0_value, dtype=torch.float64)
    x_prev = q_sample(s, x0, t - 1, generator=g)
    x_t = q_step(s, x_prev, t, generator=g)
    a, b = x_t[:, 0], x_prev[:, 0]
    a_bar, b_bar = a.mean(), b.mean()
    sxx = ((a - a_bar) ** 2).sum()
    slope = ((a - a_bar) * (b - b_bar)).sum() / sxx
    resid = b - b_bar - slope * (a - a_bar)
    resid_var = (resid**2).sum() / (n - 2)

    # The posterior's answer, evaluated at x_t = a_bar (where the fitted line passes through b_bar).
    mean_at_abar, post_var, _ = q_posterior_mean_variance(s, x0[:1], a_bar.reshape(1, 1), t)
    coef2 = float(s.posterior_mean_coef2[t])
    beta_tilde = float(post_var)

    se_slope = (beta_tilde / sxx).sqrt()
    se_mean = (beta_tilde / n) ** 0.5  # SE of the fitted value at the centre of the regressor
    se_var = beta_tilde * (2.0 / (n - 2)) ** 0.5
    assert abs(float(slope) - coef2) < N_SE * float(se_slope)
    assert abs(float(b_bar) - float(mean_at_abar)) < N_SE * se_mean
    assert abs(float(resid_var) - beta_tilde) < N_SE * se_var


def test_posterior_log_variance_is_clipped_at_t_equals_one():
    """q_posterior_mean_variance returns the *clipped* log-variance: at t = 1, where beta-tilde_1 = 0,
    it is log beta-tilde_2, not -inf. Closed form with alphabar_1 = 1 - beta_1,
    alphabar_2 = (1 - beta_1)(1 - beta_2): beta-tilde_2 = beta_1 beta_2 / (1 - (1 - beta_1)(1 - beta_2))."""
    s = NoiseSchedule.linear(40, 1e-3, 0.3)
    b1, b2 = 1e-3, 1e-3 + (0.3 - 1e-3) / 39
    bt2 = b1 * b2 / (1 - (1 - b1) * (1 - b2))
    x = torch.zeros(2, 3, dtype=torch.float64)
    _, var, log_var = q_posterior_mean_variance(s, x, x, torch.tensor([1, 2]))
    assert float(var[0]) == 0.0 and float(var[1]) == pytest.approx(bt2, rel=1e-12)
    assert float(log_var[0]) == pytest.approx(math.log(bt2), rel=1e-12)
    assert float(log_var[1]) == pytest.approx(math.log(bt2), rel=1e-12)


def test_exercise_squared_betas_leave_x_T_far_from_a_standard_normal():
    """Chapter 2's exercise: with beta_t^2 as each step's noise variance, v_t = alpha_t v_{t-1} + beta_t^2.

    The solution says x_T ends with a variance of about 0.019 (a standard deviation of 0.14), about
    22 times its remaining signal sqrt(alphabar_T), and far from the N(0, I) sampling starts from.
    """
    schedule = NoiseSchedule.linear(1000)
    v = torch.zeros((), dtype=torch.float64)
    for t in range(1, 1001):
        v = schedule.alphas[t] * v + schedule.betas[t] ** 2
    assert round(float(v), 3) == 0.019 and round(float(v.sqrt()), 2) == 0.14
    assert round(float(v.sqrt() / schedule.alphas_cumprod[-1].sqrt())) == 22
