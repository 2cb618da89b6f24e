"""The reverse process p_theta(x_{t-1} | x_t) and ancestral sampling (Algorithm 2).

The whole chain is checked on Gaussian data x_0 ~ N(m, s^2) (per dimension), where the optimal
noise predictor E[eps | x_t] has a closed form and the sampler is a linear-Gaussian chain whose
output distribution can be computed exactly by an independent recursion.
Timestep convention: the paper's t = 1..T; the model receives t as a long tensor in 1..T.
"""

import math

import numpy as np
import pytest
import torch

from ddpm_core import (
    NoiseSchedule,
    p_mean_variance,
    p_sample,
    p_sample_loop,
    posterior_mean_from_eps,
    predict_x0_from_eps,
    q_posterior_mean_variance,
    vb_terms_bpd,
)
from ddpm_core import ddim, posterior, reverse, schedules, validation  # the modules whose checks are counted
from ddpm_core.ddim import ddim_sample_loop

N_SE = 4.5  # Monte Carlo tolerance, in standard errors
pytestmark = pytest.mark.usefixtures("one_thread")

# Gaussian data, one (mean, std) per dimension.
DATA_MEAN = [0.5, -0.3, 0.0]
DATA_STD = [0.5, 1.0, 0.2]


def gaussian_oracle(schedule: NoiseSchedule, mean: torch.Tensor, std: torch.Tensor):
    """model(x_t, t) = E[eps | x_t] for x_0 ~ N(mean, diag(std^2)), the best possible eps-predictor.

    x_t ~ N(sqrt(ab) m, ab s^2 + 1 - ab) and Cov(eps, x_t) = sqrt(1 - ab), so
    E[eps | x_t] = sqrt(1 - ab) (x_t - sqrt(ab) m) / (ab s^2 + 1 - ab).
    """

    def model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        assert t.dtype == torch.long and t.shape == (x_t.shape[0],)
        assert 1 <= int(t.min()) and int(t.max()) <= schedule.T
        ab = schedule.alphas_cumprod[t].to(x_t.dtype)
        ab = ab.reshape(-1, *([1] * (x_t.dim() - 1)))  # (B, 1, ..., 1)
        return (1 - ab).sqrt() * (x_t - ab.sqrt() * mean) / (ab * std**2 + 1 - ab)

    return model


def exact_chain_moments(betas_1_to_T: np.ndarray, m: float, s: float, variance: str) -> tuple[float, float]:
    """Mean and variance of x_0 produced by Algorithm 2 with the Gaussian oracle, computed exactly.

    Independent of ddpm_core: with the oracle, the model's x_0 estimate is the conditional mean
    E[x_0 | x_t] = m + K (x_t - sqrt(ab) m), K = sqrt(ab) s^2 / (ab s^2 + 1 - ab), so each step is
    x_{t-1} = coef1 E[x_0 | x_t] + coef2 x_t + sigma_t z = A x_t + c + sigma_t z, and the mean M
    and variance V of x_t follow M <- A M + c, V <- A^2 V + sigma_t^2, from x_T ~ N(0, 1).
    """
    T = len(betas_1_to_T)
    beta = np.concatenate([[0.0], betas_1_to_T])
    ab = np.cumprod(1.0 - beta)
    M, V = 0.0, 1.0
    for t in range(T, 0, -1):
        coef1 = math.sqrt(ab[t - 1]) * beta[t] / (1 - ab[t])
        coef2 = math.sqrt(1 - beta[t]) * (1 - ab[t - 1]) / (1 - ab[t])
        K = math.sqrt(ab[t]) * s**2 / (ab[t] * s**2 + 1 - ab[t])
        A = coef1 * K + coef2
        c = coef1 * (m - K * math.sqrt(ab[t]) * m)
        if t == 1:
            sigma2 = 0.0  # Algorithm 2 adds no noise at the last step
        elif variance == "beta":
            sigma2 = beta[t]
        else:
            sigma2 = (1 - ab[t - 1]) / (1 - ab[t]) * beta[t]
        M, V = A * M + c, A * A * V + sigma2
    return M, V


def run_chain(schedule: NoiseSchedule, variance: str, n: int, seed: int) -> torch.Tensor:
    mean = torch.tensor(DATA_MEAN, dtype=torch.float64)
    std = torch.tensor(DATA_STD, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    x_T = torch.randn(n, len(DATA_MEAN), generator=g, dtype=torch.float64)
    model = gaussian_oracle(schedule, mean, std)
    return p_sample_loop(schedule, model, x_T.shape, generator=g, variance=variance, clip_x0=False, x_T=x_T)


# --- one step ------------------------------------------------------------------------------


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_p_mean_variance_closed_form(variance):
    s = NoiseSchedule.linear(50, 1e-3, 0.3)
    g = torch.Generator().manual_seed(0)
    x_t = torch.randn(6, 2, 3, generator=g, dtype=torch.float64) * 2
    t = torch.tensor([1, 2, 3, 17, 49, 50])
    eps = torch.randn(6, 2, 3, generator=g, dtype=torch.float64)
    out = p_mean_variance(s, lambda x, tt: eps, x_t, t, variance=variance, clip_x0=False)
    torch.testing.assert_close(out.pred_eps, eps, rtol=0, atol=0)
    torch.testing.assert_close(out.pred_x0, predict_x0_from_eps(s, x_t, t, eps))
    # Unclipped, the mean is the eps-form of the posterior mean, eq. mu_theta.
    torch.testing.assert_close(out.mean, posterior_mean_from_eps(s, x_t, t, eps), rtol=1e-10, atol=1e-10)
    expected_var = s.betas[t] if variance == "beta" else s.posterior_variance[t]
    torch.testing.assert_close(out.variance.flatten(), expected_var)
    assert out.variance.shape == (6, 1, 1) and out.log_variance.shape == (6, 1, 1)
    if variance == "beta":
        torch.testing.assert_close(out.log_variance.flatten(), torch.log(s.betas[t]))
    else:  # log beta-tilde, with the t = 1 entry (log 0) replaced by the t = 2 value
        torch.testing.assert_close(out.log_variance.flatten()[1:], torch.log(s.posterior_variance[t[1:]]))
        assert float(out.log_variance.flatten()[0]) == pytest.approx(math.log(float(s.posterior_variance[2])))


def test_p_mean_variance_clips_x0_estimate():
    s = NoiseSchedule.linear(50, 1e-3, 0.3)
    x_t = torch.tensor([[3.0, -3.0, 0.1]], dtype=torch.float64)
    eps = torch.tensor([[-2.0, 2.0, 0.0]], dtype=torch.float64)  # implies |x_0| > 1 in the first two
    t = 10
    raw = predict_x0_from_eps(s, x_t, t, eps)
    assert float(raw.abs().max()) > 1.0
    out = p_mean_variance(s, lambda x, tt: eps, x_t, t, clip_x0=True)
    torch.testing.assert_close(out.pred_x0, raw.clamp(-1, 1))
    mean, _, _ = q_posterior_mean_variance(s, raw.clamp(-1, 1), x_t, t)
    torch.testing.assert_close(out.mean, mean)


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_p_sample_draws_from_the_stated_gaussian(variance):
    s = NoiseSchedule.linear(50, 1e-3, 0.3)
    n = 50_000
    x_t = torch.linspace(-2, 2, 4, dtype=torch.float64).expand(n, 4).clone()
    model = gaussian_oracle(s, torch.tensor(0.3, dtype=torch.float64), torch.tensor(0.5, dtype=torch.float64))
    out = p_mean_variance(s, model, x_t[:1], 7, variance=variance, clip_x0=False)
    x = p_sample(s, model, x_t, 7, variance=variance, clip_x0=False, generator=torch.Generator().manual_seed(1))
    var = float(out.variance)
    assert bool(((x.mean(0) - out.mean[0]).abs() < N_SE * math.sqrt(var / n)).all())
    assert bool(((x.var(0) - var).abs() < N_SE * var * math.sqrt(2 / (n - 1))).all())


def test_t_equals_one_adds_no_noise():
    s = NoiseSchedule.linear(50, 1e-3, 0.3)
    x_t = torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    model = gaussian_oracle(s, torch.tensor(0.0, dtype=torch.float64), torch.tensor(0.5, dtype=torch.float64))
    for variance in ("beta", "beta_tilde"):
        a = p_sample(s, model, x_t, 1, variance=variance, generator=torch.Generator().manual_seed(1))
        b = p_sample(s, model, x_t, 1, variance=variance, generator=torch.Generator().manual_seed(2))
        mean = p_mean_variance(s, model, x_t, 1, variance=variance).mean
        torch.testing.assert_close(a, mean, rtol=0, atol=0)
        torch.testing.assert_close(b, mean, rtol=0, atol=0)
        # At t = 2 the two generators give different noise.
        a2 = p_sample(s, model, x_t, 2, variance=variance, generator=torch.Generator().manual_seed(1))
        b2 = p_sample(s, model, x_t, 2, variance=variance, generator=torch.Generator().manual_seed(2))
        assert not torch.equal(a2, b2)
    # Mixed batch: only the examples at t = 1 are noise-free.
    t = torch.tensor([1, 2, 1, 2, 1])
    a = p_sample(s, model, x_t, t, generator=torch.Generator().manual_seed(1))
    b = p_sample(s, model, x_t, t, generator=torch.Generator().manual_seed(2))
    assert (a == b).all(dim=1).tolist() == [True, False, True, False, True]


# --- the whole chain -----------------------------------------------------------------------


def test_return_intermediates_and_generator_reproducibility():
    s = NoiseSchedule.linear(20, 1e-3, 0.3)
    model = gaussian_oracle(s, torch.tensor(0.2), torch.tensor(0.4))
    shape = (3, 1, 2, 2)
    x, chain = p_sample_loop(s, model, shape, generator=torch.Generator().manual_seed(5), return_intermediates=True)
    assert len(chain) == s.T + 1
    assert all(c.shape == shape for c in chain)
    torch.testing.assert_close(chain[-1], x, rtol=0, atol=0)
    same = p_sample_loop(s, model, shape, generator=torch.Generator().manual_seed(5))
    other = p_sample_loop(s, model, shape, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(same, x, rtol=0, atol=0)
    assert not torch.equal(other, x)
    # chain[0] is x_T: the generator's first draw, or the given x_T.
    torch.testing.assert_close(chain[0], torch.randn(shape, generator=torch.Generator().manual_seed(5)))
    x_T = torch.full(shape, 0.7)
    g = torch.Generator().manual_seed(5)
    _, chain2 = p_sample_loop(s, model, shape, x_T=x_T, generator=g, return_intermediates=True)
    torch.testing.assert_close(chain2[0], x_T, rtol=0, atol=0)


def test_start_t_is_p_sample_from_start_t_down_to_1():
    """From a given x_t (SDEdit), Algorithm 2 is p_sample for t = start_t, ..., 1 with one z a step
    from the generator (no x_T drawn), and the chain is [x_{start_t}, ..., x_0]."""
    s = NoiseSchedule.linear(20, 1e-3, 0.3)
    model = gaussian_oracle(s, torch.tensor(0.2), torch.tensor(0.4))
    x_t = torch.randn(3, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    out, chain = p_sample_loop(s, model, x_t.shape, x_T=x_t, start_t=6, variance="beta_tilde",
                               generator=torch.Generator().manual_seed(1), return_intermediates=True)
    g, x, expected = torch.Generator().manual_seed(1), x_t, [x_t]
    for t in range(6, 0, -1):
        x = p_sample(s, model, x, t, variance="beta_tilde", generator=g)
        expected.append(x)
    assert torch.equal(out, x)
    assert len(chain) == 7 and all(torch.equal(a, b) for a, b in zip(chain, expected))
    full = p_sample_loop(s, model, x_t.shape, x_T=x_t, generator=torch.Generator().manual_seed(1))
    assert torch.equal(full, p_sample_loop(s, model, x_t.shape, x_T=x_t, start_t=20,
                                           generator=torch.Generator().manual_seed(1)))  # start_t = T: the default


@pytest.mark.parametrize("start_t, x_T, message", [
    (0, torch.zeros(1, 2), "start_t must be an integer in 1..20, got 0"),
    (21, torch.zeros(1, 2), "start_t must be an integer in 1..20, got 21"),
    (5, None, "start_t = 5 needs x_T, the x at t = 5"),
])
def test_p_sample_loop_rejects_bad_start_t(start_t, x_T, message):
    with pytest.raises(ValueError, match=message):
        p_sample_loop(NoiseSchedule.linear(20), lambda x, t: x, (1, 2), x_T=x_T, start_t=start_t)


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_chain_with_gaussian_oracle_matches_exact_recursion(variance):
    """Sample moments of Algorithm 2 against the exact moments of the linear-Gaussian chain.

    T = 100 with large betas, where the chain is far from its T -> infinity limit: the exact
    recursion predicts a variance off from s^2 by -23% to +10% depending on the dimension and
    the variance choice, and the two choices differ by 8% to 33%, more than the Monte Carlo
    tolerance (4.5 SE, about 4.5% of the variance at n = 20000), so this test tells the two
    choices apart and pins every coefficient of the sampler.
    """
    T = 100
    betas_np = np.linspace(1e-3, 0.2, T)
    s = NoiseSchedule(torch.tensor(betas_np))
    n = 20_000
    x = run_chain(s, variance, n, seed=11)
    for d, (m, sd) in enumerate(zip(DATA_MEAN, DATA_STD)):
        M, V = exact_chain_moments(betas_np, m, sd, variance)
        assert abs(float(x[:, d].mean()) - M) < N_SE * math.sqrt(V / n), (d, M)
        assert abs(float(x[:, d].var()) - V) < N_SE * V * math.sqrt(2 / (n - 1)), (d, V)
    # The two choices bracket the data variance for s < 1: sigma_t^2 = beta_t and beta-tilde_t are
    # the upper and lower bounds of Ho et al. (2020), sec. 3.2.
    V_beta = exact_chain_moments(betas_np, 0.0, 0.2, "beta")[1]
    V_tilde = exact_chain_moments(betas_np, 0.0, 0.2, "beta_tilde")[1]
    assert V_tilde < 0.2**2 < V_beta


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_chain_with_gaussian_oracle_reproduces_the_data(variance):
    """Algorithm 2 with the optimal predictor reproduces N(m, s^2), up to a small, bounded bias.

    The chain is exact only as T -> infinity. The reverse step's true variance is
    Var_q(x_{t-1} | x_t) = beta-tilde_t + coef1_t^2 Var(x_0 | x_t): "beta_tilde" leaves out the
    second term (so the output variance comes out low), "beta" overshoots for s < 1 (high), and
    the last step adds no noise. For the paper's schedule (linear, T = 1000) the exact recursion
    puts the mean within 2e-5 of m, and the variance off from s^2 by -1.5%, -0.9%, -3.7%
    (beta_tilde) and +0.3%, -0.01%, +0.9% (beta) for s = 0.5, 1.0, 0.2. We therefore allow
    4.5 standard errors plus a bias bound of 1e-4 on the mean and, on the variance, 4% of s^2
    (beta_tilde) or 1% (beta), and check those bounds against the recursion.
    """
    T = 1000
    s = NoiseSchedule.linear(T)
    betas_np = np.linspace(1e-4, 0.02, T)
    n = 20_000
    x = run_chain(s, variance, n, seed=12)
    var_bias = 0.04 if variance == "beta_tilde" else 0.01  # relative to s^2
    for d, (m, sd) in enumerate(zip(DATA_MEAN, DATA_STD)):
        M, V = exact_chain_moments(betas_np, m, sd, variance)
        assert abs(M - m) < 1e-4 and abs(V - sd**2) < var_bias * sd**2, (d, M, V)
        assert abs(float(x[:, d].mean()) - m) < N_SE * sd / math.sqrt(n) + 1e-4, d
        assert abs(float(x[:, d].var()) - sd**2) < (N_SE * math.sqrt(2 / (n - 1)) + var_bias) * sd**2, d


def test_defaults_are_the_papers_choices():
    """Every sampler entry point defaults to sigma_t^2 = beta_t (Ho et al.'s choice) and clip_x0=True."""
    s = NoiseSchedule.linear(20, 1e-3, 0.3)
    model = lambda x, t: -x  # noqa: E731  implies x0_hat = x (1 + sqrt(1 - ab)) / sqrt(ab): outside [-1, 1]
    x_t = torch.randn(64, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    # p_mean_variance: variance is beta_5 from the linspace formula, and x0_hat is clipped.
    out = p_mean_variance(s, model, x_t, 5)
    beta_5 = 1e-3 + 4 * (0.3 - 1e-3) / 19
    torch.testing.assert_close(out.variance.flatten(), torch.full((64,), beta_5, dtype=torch.float64))
    assert float(out.pred_x0.abs().max()) == 1.0
    # p_sample, p_sample_loop and vb_terms_bpd: default == explicit ("beta", True), != the alternatives.
    def sample(**kw):
        return p_sample(s, model, x_t, 5, generator=torch.Generator().manual_seed(1), **kw)

    def loop(**kw):
        return p_sample_loop(s, model, (64, 3), generator=torch.Generator().manual_seed(2), **kw)

    def vb(**kw):
        return vb_terms_bpd(s, model, x_t.clamp(-1, 1), x_t, torch.full((64,), 5), **kw)

    for run in (sample, loop, vb):
        default = run()
        torch.testing.assert_close(default, run(variance="beta", clip_x0=True), rtol=0, atol=0)
        assert not torch.allclose(default, run(variance="beta_tilde", clip_x0=True))
        assert not torch.allclose(default, run(variance="beta", clip_x0=False))


# --- what a sampling loop costs per step ---------------------------------------------------

LOOPS = {
    "p_sample_loop": lambda s, model, shape, **kw: p_sample_loop(s, model, shape, **kw),
    "ddim_sample_loop": lambda s, model, shape, **kw: ddim_sample_loop(s, model, shape, num_steps=s.T, eta=1.0, **kw),
}


def small_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return 0.1 * x + 1e-3 * t.to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))


def record_checks(monkeypatch) -> list[str]:
    """Wrap every ``ddpm_core.validation`` check the samplers' modules import; return the list of calls."""
    calls = []
    for module in (reverse, ddim, posterior, schedules):
        for name, value in vars(module).items():
            if name.startswith("check_") and value is getattr(validation, name, None):

                def recording(*args, _name=name, _check=value, **kwargs):
                    calls.append(_name)
                    return _check(*args, **kwargs)

                monkeypatch.setattr(module, name, recording)
    return calls


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_sampling_loop_checks_its_arguments_before_the_loop_not_at_each_step(monkeypatch, loop):
    calls = record_checks(monkeypatch)
    x_T = torch.randn(2, 3, generator=torch.Generator().manual_seed(0))
    counts = []
    for T in (3, 30):
        schedule = NoiseSchedule.linear(T)
        calls.clear()
        LOOPS[loop](schedule, small_model, (2, 3), x_T=x_T, generator=torch.Generator().manual_seed(1))
        counts.append(len(calls))
    assert 1 <= counts[0] <= 5 and counts[1] == counts[0], counts  # a few checks, however many steps
    # The public one-step functions still check what they are given, once each.
    calls.clear()
    p_sample(schedule, small_model, x_T, 2)
    assert sorted(calls) == ["check_choice", "check_floating", "check_timesteps"]
    with pytest.raises(ValueError, match="t must be in 1..30"):
        p_sample(schedule, small_model, x_T, 31)


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_sampling_loop_reads_no_tensor_back_to_python(monkeypatch, loop):
    """On a GPU, reading a value back (int(t), t.item(), if tensor: ...) waits for every queued step."""

    def refuse(self, *args):
        raise AssertionError("a tensor's value was read back during sampling")

    schedule = NoiseSchedule.linear(10)
    for method in ("__bool__", "__int__", "__float__", "__index__", "item", "tolist"):
        monkeypatch.setattr(torch.Tensor, method, refuse)
    LOOPS[loop](schedule, small_model, (2, 3), generator=torch.Generator().manual_seed(1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_sampling_loop_on_the_gpu_never_waits_for_it(loop):
    schedule = NoiseSchedule.linear(10).to("cuda")  # moving it is the one copy; the loop then finds it there
    generator = torch.Generator("cuda").manual_seed(1)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        x = LOOPS[loop](schedule, small_model, (2, 3), generator=generator)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert x.is_cuda and bool(x.isfinite().all())
