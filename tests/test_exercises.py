"""The checks of the implementation exercises (``ddpm_core.exercises``).

Each check says "Correct" for the library's own function (adapted to the exercise's
signature where the library's differs), "Not yet" for a plausible mistake, "Not attempted
yet" for a function that still raises NotImplementedError, and raises ValueError, naming
the argument, only when it is given something that is not a function.
"""

from __future__ import annotations

import math

import pytest
import torch

import ddpm_core as dc
from ddpm_core import exercises
from ddpm_core.ddim import ddim_mean_variance
from ddpm_core.train.batches import rank_slice


def q_sample_no_sqrt(schedule, x0, t, noise):
    """Forgets the square roots: scales by alphabar_t instead of sqrt(alphabar_t)."""
    abar = schedule.alphas_cumprod[t].reshape(-1, 1, 1, 1)
    return abar * x0 + (1 - abar) * noise


def posterior_library(schedule, x0, x_t, t):
    mean, variance, _ = dc.q_posterior_mean_variance(schedule, x0, x_t, t)
    return mean, variance


def posterior_beta_variance(schedule, x0, x_t, t):
    """Takes beta_t for the variance (the mean is right)."""
    mean, _, _ = dc.q_posterior_mean_variance(schedule, x0, x_t, t)
    return mean, schedule.betas[t].reshape(-1, 1, 1, 1)


def p_sample_library(schedule, model, x_t, t, z):
    out = dc.p_mean_variance(schedule, model, x_t, t, variance="beta", clip_x0=False)
    not_last = (t != 1).to(x_t.dtype).reshape(-1, 1, 1, 1)
    return out.mean + not_last * out.variance.sqrt() * z


def p_sample_noise_at_t1(schedule, model, x_t, t, z):
    """Adds noise at t = 1 too."""
    out = dc.p_mean_variance(schedule, model, x_t, t, variance="beta", clip_x0=False)
    return out.mean + out.variance.sqrt() * z


def simple_loss_library(schedule, model, x0, t, noise):
    return dc.simple_loss(schedule, model, x0, t, noise)


def simple_loss_l1(schedule, model, x0, t, noise):
    """The source's absolute error instead of the squared one."""
    return dc.simple_loss(schedule, model, x0, t, noise, loss_type="l1")


def embedding_cos_first(t, dim):
    """Cosines before sines."""
    emb = dc.sinusoidal_embedding(t, dim)
    return torch.cat([emb[:, dim // 2 :], emb[:, : dim // 2]], dim=1)


def ddim_library(schedule, model, x_t, t, s):
    return ddim_mean_variance(schedule, model, x_t, t, s, eta=0.0, clip_x0=False).mean


def ddim_wrong_prev(schedule, model, x_t, t, s):
    """Uses alphabar_{t-1} instead of alphabar_s."""
    return ddim_mean_variance(schedule, model, x_t, t, t - 1, eta=0.0, clip_x0=False).mean


def data_parallel_library(loss_fn, w, batch, world_size):
    grads = []
    for rank in range(world_size):
        w_rank = w.detach().clone().requires_grad_(True)
        loss_fn(w_rank, batch[rank_slice(batch.shape[0], rank, world_size)]).backward()
        grads.append(w_rank.grad)
    return torch.stack(grads).mean(dim=0)


def data_parallel_sum(loss_fn, w, batch, world_size):
    """Sums the processes' gradients instead of averaging them."""
    return data_parallel_library(loss_fn, w, batch, world_size) * world_size


def v_wrong_sign(schedule, x_t, t, eps):
    """Adds sqrt(1 - alphabar_t) x0_hat instead of subtracting it."""
    abar = schedule.alphas_cumprod[t].reshape(-1, 1, 1, 1)
    return abar.sqrt() * eps + (1 - abar).sqrt() * dc.predict_x0_from_eps(schedule, x_t, t, eps)


def not_written(*args):
    """# Your code here"""
    raise NotImplementedError("write the body")


def crashes(*args):
    return undefined_name  # noqa: F821  (a learner's NameError)


CHECKS = {  # check: (the library's function, a wrong one)
    exercises.check_q_sample: (dc.q_sample, q_sample_no_sqrt),
    exercises.check_q_posterior_mean_variance: (posterior_library, posterior_beta_variance),
    exercises.check_p_sample: (p_sample_library, p_sample_noise_at_t1),
    exercises.check_simple_loss: (simple_loss_library, simple_loss_l1),
    exercises.check_sinusoidal_embedding: (dc.sinusoidal_embedding, embedding_cos_first),
    exercises.check_ddim_step: (ddim_library, ddim_wrong_prev),
    exercises.check_data_parallel_gradient: (data_parallel_library, data_parallel_sum),
    exercises.check_v_from_eps: (dc.v_from_eps, v_wrong_sign),
}
IDS = [check.__name__ for check in CHECKS]


def verdict(check, fn, capsys) -> str:
    assert check(fn) is None
    out = capsys.readouterr().out
    assert out.endswith("\n") and out.count("\n") == 1, f"one line expected, got {out!r}"
    return out


@pytest.mark.parametrize("check", CHECKS, ids=IDS)
def test_the_library_is_correct(check, capsys):
    out = verdict(check, CHECKS[check][0], capsys)
    assert out.startswith("Correct: your ") and "on 5 random cases." in out


@pytest.mark.parametrize("check", CHECKS, ids=IDS)
def test_a_mistake_is_not_yet(check, capsys):
    out = verdict(check, CHECKS[check][1], capsys)
    assert out.startswith("Not yet: for ") and "Hint: " in out, out
    assert "(allowed 1e-06)" in out or "(allowed 0.001)" in out


@pytest.mark.parametrize("check", CHECKS, ids=IDS)
def test_an_unfinished_function_is_not_attempted(check, capsys):
    out = verdict(check, not_written, capsys)
    assert out.startswith("Not attempted yet: ") and "NotImplementedError" in out


@pytest.mark.parametrize("check", CHECKS, ids=IDS)
def test_an_error_is_reported_not_raised(check, capsys):
    out = verdict(check, crashes, capsys)
    assert out.startswith("Not yet: for ") and "NameError" in out


@pytest.mark.parametrize("check", CHECKS, ids=IDS)
@pytest.mark.parametrize("bad", [None, 3, "my_q_sample"])
def test_a_non_callable_is_a_value_error(check, bad):
    with pytest.raises(ValueError, match="^fn must be"):
        check(bad)


@pytest.mark.parametrize("check", CHECKS, ids=IDS)
def test_the_verdict_is_deterministic(check, capsys):
    """The same function gets the same words, whatever ran before (seeded inputs only)."""
    first = verdict(check, CHECKS[check][1], capsys)
    torch.manual_seed(12345)
    torch.randn(10)
    assert verdict(check, CHECKS[check][1], capsys) == first


def test_a_wrong_shape_is_named(capsys):
    out = verdict(exercises.check_q_sample, lambda s, x0, t, noise: x0[0], capsys)
    assert out.startswith("Not yet: for t = [") and "has shape (1, 4, 4), expected (3, 1, 4, 4)" in out


def test_a_scalar_is_required_for_the_loss(capsys):
    per_example = lambda s, m, x0, t, noise: ((noise - m(dc.q_sample(s, x0, t, noise), t)) ** 2).mean(dim=(1, 2, 3))
    out = verdict(exercises.check_simple_loss, per_example, capsys)
    assert "the loss should be one number" in out and "(3,)" in out


def test_posterior_variance_of_wrong_shape(capsys):
    flat = lambda s, x0, x_t, t: (posterior_library(s, x0, x_t, t)[0], s.posterior_variance[t])
    out = verdict(exercises.check_q_posterior_mean_variance, flat, capsys)
    assert "the variance has shape (3,)" in out


def test_the_p_sample_cases_include_the_last_step(capsys):
    """The one case with t = 1 catches noise added at the last step (the others have t > 1)."""
    out = verdict(exercises.check_p_sample, p_sample_noise_at_t1, capsys)
    assert out.startswith("Not yet: for t = [1, ")


def test_float32_answers_pass_the_embedding_tolerance(capsys):
    """An embedding computed another way in float32 (powers instead of exp) is still correct."""

    def by_powers(t, dim):
        half = dim // 2
        freqs = 10000.0 ** (-torch.arange(half, dtype=torch.float32) / half)
        angles = t.float()[:, None] * freqs[None, :]
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)

    assert verdict(exercises.check_sinusoidal_embedding, by_powers, capsys).startswith("Correct")
    assert math.isclose(exercises.TOLERANCE, 1e-6)
