"""Autoguidance: the combination, its carry-over to x0_hat and the posterior mean, w = 1, checks."""

import math

import pytest
import torch

from ddpm_core.ddim import ddim_sample_loop
from ddpm_core.guidance import Autoguided
from ddpm_core.posterior import posterior_mean_from_eps, predict_x0_from_eps
from ddpm_core.schedules import NoiseSchedule

pytestmark = pytest.mark.usefixtures("one_thread")


def affine_model(scale: float, shift: float):
    """eps_hat = scale * x_t + shift * t / 1000: a stand-in network with a known output."""
    return lambda x, t: scale * x + shift * (t.to(x.dtype) / 1000).view(-1, *([1] * (x.dim() - 1)))


def test_combination_is_the_formula():
    model, guide = affine_model(0.7, 0.2), affine_model(-0.4, 1.5)
    torch.manual_seed(0)
    x = torch.randn(5, 1, 8, 8, dtype=torch.float64)
    t = torch.tensor([1, 10, 250, 600, 1000])
    for w in (1.0, 1.5, 2.0, 3.25):
        expected = guide(x, t) + w * (model(x, t) - guide(x, t))
        torch.testing.assert_close(Autoguided(model, guide, w)(x, t), expected, rtol=0, atol=1e-15)


def test_weight_one_is_the_model_alone_and_skips_the_guide():
    calls = []

    def guide(x, t):
        calls.append(1)
        return torch.zeros_like(x)

    model = affine_model(0.5, 0.1)
    x, t = torch.randn(3, 1, 4, 4), torch.tensor([5, 50, 500])
    assert torch.equal(Autoguided(model, guide, 1.0)(x, t), model(x, t))
    assert calls == []
    Autoguided(model, guide, 2.0)(x, t)
    assert calls == [1]


@pytest.mark.parametrize("make_schedule", [NoiseSchedule.linear, NoiseSchedule.cosine])
def test_same_weights_carry_over_to_x0_and_the_posterior_mean(make_schedule):
    """x0_hat and mu-tilde are affine in eps with weights summing to 1: the combination commutes."""
    schedule = make_schedule(1000)
    model, guide = affine_model(0.7, 0.2), affine_model(-0.4, 1.5)
    torch.manual_seed(1)
    x = torch.randn(6, 1, 8, 8, dtype=torch.float64)
    t = torch.tensor([1, 2, 100, 400, 800, 1000])
    w = 1.8
    eps_w = Autoguided(model, guide, w)(x, t)
    for form in (predict_x0_from_eps, posterior_mean_from_eps):
        of_model, of_guide = form(schedule, x, t, model(x, t)), form(schedule, x, t, guide(x, t))
        torch.testing.assert_close(form(schedule, x, t, eps_w), of_guide + w * (of_model - of_guide),
                                   rtol=1e-10, atol=1e-10)


def test_guided_sampler_runs_and_depends_on_the_weight():
    schedule = NoiseSchedule.linear(100)
    model, guide = affine_model(0.3, 0.5), affine_model(0.1, -0.5)
    runs = {}
    for w in (1.0, 2.0):
        g = torch.Generator().manual_seed(0)
        runs[w] = ddim_sample_loop(schedule, Autoguided(model, guide, w), (4, 1, 8, 8), num_steps=10, eta=1.0,
                                   generator=g)
        assert torch.isfinite(runs[w]).all()
    g = torch.Generator().manual_seed(0)
    assert torch.equal(runs[1.0], ddim_sample_loop(schedule, model, (4, 1, 8, 8), num_steps=10, eta=1.0, generator=g))
    assert not torch.equal(runs[1.0], runs[2.0])


@pytest.mark.parametrize("weight", [0.5, 0.0, -1.0, math.inf, math.nan, True, "2", None])
def test_bad_weight_is_refused_with_its_name(weight):
    with pytest.raises(ValueError, match="weight must be a finite number >= 1"):
        Autoguided(affine_model(1, 0), affine_model(0, 1), weight)
