"""Noise schedules: closed forms in float64 against an independent NumPy computation.

Timestep convention: the paper's t = 1..T; schedule arrays have length T + 1 and entry 0
stands for x_0 (beta_0 = 0, alphabar_0 = 1, posterior quantities NaN).
"""

import math

import numpy as np
import pytest
import torch

from ddpm_core import NoiseSchedule, cosine_beta_schedule, extract, linear_beta_schedule

RTOL = 1e-12  # float64 rounding, with room for a few hundred operations

ARRAY_NAMES = [
    "betas",
    "alphas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod",
    "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod",
    "posterior_variance",
    "posterior_log_variance_clipped",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
]


def numpy_reference(betas_1_to_T: np.ndarray) -> dict[str, np.ndarray]:
    """Every schedule quantity from its definition, element by element, in NumPy float64."""
    T = len(betas_1_to_T)
    beta = np.concatenate([[0.0], betas_1_to_T])  # indexed by t = 0..T
    alphabar = np.array([np.prod(1.0 - beta[1 : t + 1]) for t in range(T + 1)])  # alphabar_t = prod_{s<=t} alpha_s
    ref = {"beta": beta, "alphabar": alphabar}
    ref["beta_tilde"] = np.full(T + 1, np.nan)
    ref["coef1"] = np.full(T + 1, np.nan)
    ref["coef2"] = np.full(T + 1, np.nan)
    for t in range(1, T + 1):
        ref["beta_tilde"][t] = (1.0 - alphabar[t - 1]) / (1.0 - alphabar[t]) * beta[t]
        ref["coef1"][t] = math.sqrt(alphabar[t - 1]) * beta[t] / (1.0 - alphabar[t])
        ref["coef2"][t] = math.sqrt(1.0 - beta[t]) * (1.0 - alphabar[t - 1]) / (1.0 - alphabar[t])
    return ref


SCHEDULES = {
    "linear-1000": lambda: (NoiseSchedule.linear(1000), np.linspace(1e-4, 0.02, 1000)),
    "linear-50": lambda: (NoiseSchedule.linear(50, 1e-3, 0.3), np.linspace(1e-3, 0.3, 50)),
    "cosine-200": lambda: (NoiseSchedule.cosine(200), cosine_beta_schedule(200).numpy()),
}


@pytest.fixture(params=list(SCHEDULES))
def schedule_and_ref(request):
    schedule, betas_np = SCHEDULES[request.param]()
    return schedule, numpy_reference(betas_np)


def test_arrays_have_length_T_plus_1_and_float64(schedule_and_ref):
    schedule, _ = schedule_and_ref
    for name in ARRAY_NAMES:
        values = getattr(schedule, name)
        assert values.dtype == torch.float64, name
        assert values.shape == (schedule.T + 1,), name


def test_alphabar_is_the_product_of_alphas(schedule_and_ref):
    schedule, ref = schedule_and_ref
    np.testing.assert_allclose(schedule.betas.numpy(), ref["beta"], rtol=RTOL, atol=1e-15)
    np.testing.assert_allclose(schedule.alphas.numpy(), 1.0 - ref["beta"], rtol=RTOL)
    np.testing.assert_allclose(schedule.alphas_cumprod.numpy(), ref["alphabar"], rtol=RTOL)
    np.testing.assert_allclose(schedule.alphas_cumprod_prev.numpy()[1:], ref["alphabar"][:-1], rtol=RTOL)


def test_posterior_variance_and_mean_coefficients(schedule_and_ref):
    schedule, ref = schedule_and_ref
    # Entry 0 is NaN in both; assert_allclose treats NaN == NaN as equal.
    np.testing.assert_allclose(schedule.posterior_variance.numpy(), ref["beta_tilde"], rtol=RTOL, atol=1e-300)
    np.testing.assert_allclose(schedule.posterior_mean_coef1.numpy(), ref["coef1"], rtol=RTOL)
    np.testing.assert_allclose(schedule.posterior_mean_coef2.numpy(), ref["coef2"], rtol=RTOL)


def test_coefficients_of_the_closed_form_and_its_inverse(schedule_and_ref):
    schedule, ref = schedule_and_ref
    ab = ref["alphabar"]
    np.testing.assert_allclose(schedule.sqrt_alphas_cumprod.numpy(), np.sqrt(ab), rtol=RTOL)
    np.testing.assert_allclose(schedule.sqrt_one_minus_alphas_cumprod.numpy(), np.sqrt(1.0 - ab), rtol=RTOL)
    np.testing.assert_allclose(schedule.sqrt_recip_alphas_cumprod.numpy(), 1.0 / np.sqrt(ab), rtol=RTOL)
    np.testing.assert_allclose(schedule.sqrt_recipm1_alphas_cumprod.numpy(), np.sqrt((1.0 - ab) / ab), rtol=RTOL)
    np.testing.assert_allclose(schedule.log_one_minus_alphas_cumprod.numpy()[1:], np.log(1.0 - ab[1:]), rtol=RTOL)
    # The inverse coefficients undo the forward ones: 1/sqrt(ab) * sqrt(ab) = 1 and
    # 1/sqrt(ab) * sqrt(1 - ab) = sqrt(1/ab - 1).
    s = schedule
    np.testing.assert_allclose((s.sqrt_recip_alphas_cumprod * s.sqrt_alphas_cumprod).numpy(), 1.0, rtol=RTOL)
    np.testing.assert_allclose(
        (s.sqrt_recip_alphas_cumprod * s.sqrt_one_minus_alphas_cumprod).numpy(),
        s.sqrt_recipm1_alphas_cumprod.numpy(),
        rtol=RTOL,
        atol=1e-300,
    )


def test_posterior_coefficients_satisfy_the_variance_identity(schedule_and_ref):
    # The posterior is a conditional of q(x_{t-1}, x_t | x_0), so the laws of total variance and
    # total expectation hold: Var(x_{t-1} | x_0) = beta-tilde_t + coef2^2 Var(x_t | x_0).
    schedule, _ = schedule_and_ref
    t = torch.arange(1, schedule.T + 1)
    ab, ab_prev = schedule.alphas_cumprod[t], schedule.alphas_cumprod_prev[t]
    c2, var = schedule.posterior_mean_coef2[t], schedule.posterior_variance[t]
    torch.testing.assert_close(c2**2 * (1.0 - ab) + var, 1.0 - ab_prev, rtol=RTOL, atol=1e-15)
    # and the means agree: E[x_{t-1} | x_0] = coef1 x0 + coef2 E[x_t | x_0] for every x0.
    c1 = schedule.posterior_mean_coef1[t]
    torch.testing.assert_close(c1 + c2 * ab.sqrt(), ab_prev.sqrt(), rtol=RTOL, atol=1e-15)


def test_entry_zero_and_t_equals_one_conventions():
    s = NoiseSchedule.linear(100, 1e-3, 0.2)
    assert s.betas[0] == 0.0 and s.alphas[0] == 1.0 and s.alphas_cumprod[0] == 1.0
    assert s.sqrt_alphas_cumprod[0] == 1.0 and s.sqrt_one_minus_alphas_cumprod[0] == 0.0
    assert s.sqrt_recipm1_alphas_cumprod[0] == 0.0
    assert s.log_one_minus_alphas_cumprod[0] == -math.inf
    assert math.isinf(float(s.snr()[0]))
    for name in ("alphas_cumprod_prev", "posterior_variance", "posterior_mean_coef1", "posterior_mean_coef2"):
        assert math.isnan(float(getattr(s, name)[0])), name
    # t = 1: x_0 is known given x_0, so beta-tilde_1 = 0, mu-tilde_1 = x_0 (coef1 = 1, coef2 = 0);
    # the clipped log-variance uses beta-tilde_2 there instead of log 0.
    assert s.alphas_cumprod_prev[1] == 1.0
    assert s.posterior_variance[1] == 0.0
    assert float(s.posterior_mean_coef1[1]) == pytest.approx(1.0, rel=1e-15)
    assert s.posterior_mean_coef2[1] == 0.0
    assert s.posterior_log_variance_clipped[1] == torch.log(s.posterior_variance[2])
    torch.testing.assert_close(s.posterior_log_variance_clipped[2:], torch.log(s.posterior_variance[2:]))


def test_T_equals_one_schedule():
    s = NoiseSchedule(torch.tensor([0.3], dtype=torch.float64))
    assert s.T == 1
    assert float(s.alphas_cumprod[1]) == pytest.approx(0.7, rel=1e-15)
    # With no t = 2, beta_1 stands in for the clipped log-variance at t = 1.
    assert float(s.posterior_log_variance_clipped[1]) == pytest.approx(math.log(0.3), rel=1e-15)


def test_linear_spot_values():
    s = NoiseSchedule.linear(1000)
    reference = np.prod(1.0 - np.linspace(1e-4, 0.02, 1000))
    assert float(s.alphas_cumprod[1000]) == pytest.approx(reference, rel=1e-12)
    assert float(s.alphas_cumprod[1000]) == pytest.approx(4.035829765375676e-05, rel=1e-12)
    assert float(s.betas[1]) == pytest.approx(1e-4, rel=1e-15)
    assert float(s.betas[1000]) == pytest.approx(0.02, rel=1e-15)
    assert float(s.betas[500]) == pytest.approx(1e-4 + 499 * (0.02 - 1e-4) / 999, rel=1e-13)
    betas = linear_beta_schedule(10, 0.1, 0.5)
    assert betas.shape == (10,) and betas.dtype == torch.float64
    torch.testing.assert_close(betas, torch.tensor(np.linspace(0.1, 0.5, 10)), rtol=1e-15, atol=0)


def test_cosine_alphabar_follows_the_cos_squared_formula_before_clipping():
    T, s_off = 1000, 0.008
    sched = NoiseSchedule.cosine(T, s_off)

    def f(t: int) -> float:
        return math.cos((t / T + s_off) / (1 + s_off) * math.pi / 2) ** 2

    expected = np.array([f(t) / f(0) for t in range(T + 1)])
    # Only the last beta is clipped at 0.999 (f(T) = 0 would make it 1); before it the
    # product of alphas reproduces f(t) / f(0).
    np.testing.assert_allclose(sched.alphas_cumprod.numpy()[:T], expected[:T], rtol=1e-10, atol=1e-15)
    assert float(sched.betas[T]) == 0.999
    assert float(sched.betas[1:T].max()) < 0.999
    assert float(sched.alphas_cumprod[T]) == pytest.approx(expected[T - 1] * 0.001, rel=1e-10)
    assert bool((sched.betas[1:] > 0).all())
    assert bool((sched.alphas_cumprod[1:] < sched.alphas_cumprod[:-1]).all())


def test_extract_reads_values_at_t_and_broadcasts():
    s = NoiseSchedule.linear(20, 1e-3, 0.2)
    x = torch.zeros(3, 1, 4, 4, dtype=torch.float32)
    t = torch.tensor([1, 7, 20])
    out = extract(s.alphas_cumprod, t, x)
    assert out.shape == (3, 1, 1, 1) and out.dtype == torch.float32
    torch.testing.assert_close(out.flatten(), s.alphas_cumprod[t].float())


def test_snr_is_alphabar_over_one_minus_alphabar():
    s = NoiseSchedule.linear(30, 1e-3, 0.2)
    ab = s.alphas_cumprod[1:]
    torch.testing.assert_close(s.snr()[1:], ab / (1 - ab), rtol=RTOL, atol=0)
    assert bool((s.snr()[1:] < s.snr()[:-1]).all())


def test_to_returns_the_schedule_itself_when_its_arrays_are_already_there():
    s = NoiseSchedule.linear(20)
    assert s.to("cpu") is s
    assert s.to(torch.device("cpu")) is s


def test_to_moves_every_array_and_leaves_the_original_in_place():
    s = NoiseSchedule.cosine(20)
    moved = s.to("meta")  # a device without data, so that the test needs no GPU
    arrays = [name for name, value in vars(s).items() if isinstance(value, torch.Tensor)]
    assert "betas" in arrays and "posterior_log_variance_clipped" in arrays
    for name in arrays:
        assert getattr(moved, name).device.type == "meta", name
        assert getattr(moved, name).dtype == torch.float64, name
        assert getattr(s, name).device.type == "cpu", name
    assert moved.T == s.T
    assert moved.to("meta") is moved


def test_extract_does_not_copy_an_array_already_on_the_batch_device(monkeypatch):
    s = NoiseSchedule.linear(20)
    copies = []
    original_to = torch.Tensor.to

    def recording_to(self, *args, **kwargs):
        out = original_to(self, *args, **kwargs)
        if self is s.alphas_cumprod and out is not self:
            copies.append(args)
        return out

    monkeypatch.setattr(torch.Tensor, "to", recording_to)
    extract(s.alphas_cumprod, torch.tensor([1, 7, 20]), torch.zeros(3, 2))
    assert copies == []
    extract(s.alphas_cumprod, torch.tensor([1, 7, 20]), torch.zeros(3, 2, device="meta"))
    assert len(copies) == 1  # the same array for a batch on another device is copied there


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_schedule_moved_to_the_gpu_is_not_copied_again():
    s = NoiseSchedule.linear(20).to("cuda")
    assert s.betas.is_cuda
    assert s.to("cuda") is s and s.to(s.betas.device) is s
    assert s.to(s.betas.device).alphas_cumprod.data_ptr() == s.alphas_cumprod.data_ptr()
    x = torch.zeros(3, 2, device="cuda")
    torch.testing.assert_close(extract(s.alphas_cumprod, torch.tensor([1, 7, 20], device="cuda"), x).flatten().cpu(),
                               NoiseSchedule.linear(20).alphas_cumprod[[1, 7, 20]].float())
