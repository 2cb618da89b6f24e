"""Tests of ddpm_core.parameterizations: eps, x_0, v and the score, converted into each other.

References: the definitions written out directly (the closed form, v of Salimans and Ho),
round trips in float64, and Tweedie's formula against autograd of the mixture's density.
Timestep convention: the paper's t = 1..T.
"""

from __future__ import annotations

import pytest
import torch

from ddpm_core import (
    NoiseSchedule,
    eps_from_score,
    eps_from_v,
    eps_from_x0,
    predict_x0_from_eps,
    q_sample,
    score_from_eps,
    v_from_eps,
    x0_from_v,
)
from ddpm_core.toy import optimal_eps, ring_mixture

SCHEDULE = NoiseSchedule.linear(1000)
T_VALUES = torch.tensor([1, 2, 10, 100, 500, 999, 1000, 37])


def draws(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x_0, eps and x_t in float64, one timestep of T_VALUES per example."""
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(len(T_VALUES), 3, 4, generator=g, dtype=torch.float64) * 2 - 1
    eps = torch.randn(len(T_VALUES), 3, 4, generator=g, dtype=torch.float64)
    return x0, eps, q_sample(SCHEDULE, x0, T_VALUES, noise=eps)


def coefficients(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """sqrt(alphabar_t) and sqrt(1 - alphabar_t), shaped (B, 1, 1)."""
    abar = SCHEDULE.alphas_cumprod[t].reshape(-1, 1, 1)
    return abar.sqrt(), (1 - abar).sqrt()


def test_eps_from_x0_recovers_the_noise():
    x0, eps, x_t = draws()
    torch.testing.assert_close(eps_from_x0(SCHEDULE, x_t, T_VALUES, x0), eps, rtol=0, atol=1e-9)
    torch.testing.assert_close(predict_x0_from_eps(SCHEDULE, x_t, T_VALUES, eps), x0, rtol=0, atol=1e-9)


def test_v_from_eps_is_the_definition():
    x0, eps, x_t = draws(1)
    a, s = coefficients(T_VALUES)
    torch.testing.assert_close(v_from_eps(SCHEDULE, x_t, T_VALUES, eps), a * eps - s * x0, rtol=0, atol=1e-9)


def test_eps_and_x0_from_v_recover_both():
    x0, eps, x_t = draws(2)
    a, s = coefficients(T_VALUES)
    v = a * eps - s * x0
    torch.testing.assert_close(eps_from_v(SCHEDULE, x_t, T_VALUES, v), eps, rtol=0, atol=1e-12)
    torch.testing.assert_close(x0_from_v(SCHEDULE, x_t, T_VALUES, v), x0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("t", [1, 2, 500, 1000])
def test_round_trips(t):
    _, eps, x_t = draws(3)
    v = v_from_eps(SCHEDULE, x_t, t, eps)
    torch.testing.assert_close(eps_from_v(SCHEDULE, x_t, t, v), eps, rtol=0, atol=1e-12)
    x0 = predict_x0_from_eps(SCHEDULE, x_t, t, eps)
    torch.testing.assert_close(eps_from_x0(SCHEDULE, x_t, t, x0), eps, rtol=0, atol=1e-9)
    score = score_from_eps(SCHEDULE, eps, t)
    torch.testing.assert_close(eps_from_score(SCHEDULE, score, t), eps, rtol=0, atol=1e-12)


def test_score_from_eps_spot_value():
    eps = torch.ones(1, 2, dtype=torch.float64)
    expected = -1 / (1 - SCHEDULE.alphas_cumprod[500]).sqrt()
    torch.testing.assert_close(score_from_eps(SCHEDULE, eps, 500), expected.expand(1, 2))


@pytest.mark.parametrize("t", [1, 10, 300, 1000])
def test_tweedie_score_is_the_gradient_of_log_density(t):
    ring = ring_mixture()
    x = ring.marginal(float(SCHEDULE.alphas_cumprod[t])).sample(32, torch.Generator().manual_seed(t))
    x.requires_grad_(True)
    ring.marginal(float(SCHEDULE.alphas_cumprod[t])).log_prob(x).sum().backward()
    score = score_from_eps(SCHEDULE, optimal_eps(ring, SCHEDULE)(x.detach(), torch.full((32,), t)), t)
    torch.testing.assert_close(score, x.grad, rtol=1e-10, atol=1e-10)


def test_float32_keeps_its_dtype():
    _, eps, x_t = draws()
    v = v_from_eps(SCHEDULE, x_t.float(), T_VALUES, eps.float())
    assert v.dtype == torch.float32
    assert score_from_eps(SCHEDULE, eps.float(), 3).dtype == torch.float32


@pytest.mark.parametrize("call, name", [
    (lambda x, e: eps_from_x0(SCHEDULE, x, 5, e.long()), "x0"),
    (lambda x, e: v_from_eps(SCHEDULE, x.long(), 5, e), "x_t"),
    (lambda x, e: eps_from_v(SCHEDULE, x, 5, e[:2]), "v"),
    (lambda x, e: x0_from_v(SCHEDULE, x, 0, e), "t"),
    (lambda x, e: v_from_eps(SCHEDULE, x, 1001, e), "t"),
    (lambda x, e: v_from_eps(SCHEDULE, x, 2.0, e), "t"),
    (lambda x, e: score_from_eps(SCHEDULE, e.long(), 5), "eps"),
    (lambda x, e: eps_from_score(SCHEDULE, [1.0], 5), "score"),
    (lambda x, e: eps_from_score(SCHEDULE, e, torch.tensor([1, 2])), "t"),
])
def test_bad_arguments_name_the_argument(call, name):
    _, eps, x_t = draws()
    with pytest.raises(ValueError, match=rf"^{name} "):
        call(x_t, eps)
