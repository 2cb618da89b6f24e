"""Bad input raises ValueError naming the argument and what is allowed.

Timestep convention: the paper's t = 1..T, so t = 0 and t = T + 1 are both out of range.
"""

import pytest
import torch

from ddpm_core import (
    NoiseSchedule,
    cosine_beta_schedule,
    linear_beta_schedule,
    p_mean_variance,
    p_sample,
    p_sample_loop,
    posterior_mean_from_eps,
    predict_x0_from_eps,
    q_mean_variance,
    q_posterior_mean_variance,
    q_sample,
    q_step,
    simple_loss,
    vb_terms_bpd,
)
from ddpm_core.validation import check_timesteps

T = 10
SCHEDULE = NoiseSchedule.linear(T, 1e-3, 0.2)
X = torch.zeros(3, 1, 2, 2)


def zero_model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(x_t)


# Every public function that takes t, called with a given t.
CALLS_WITH_T = {
    "q_sample": lambda t: q_sample(SCHEDULE, X, t),
    "q_step": lambda t: q_step(SCHEDULE, X, t),
    "q_mean_variance": lambda t: q_mean_variance(SCHEDULE, X, t),
    "q_posterior_mean_variance": lambda t: q_posterior_mean_variance(SCHEDULE, X, X, t),
    "predict_x0_from_eps": lambda t: predict_x0_from_eps(SCHEDULE, X, t, X),
    "posterior_mean_from_eps": lambda t: posterior_mean_from_eps(SCHEDULE, X, t, X),
    "p_mean_variance": lambda t: p_mean_variance(SCHEDULE, zero_model, X, t),
    "p_sample": lambda t: p_sample(SCHEDULE, zero_model, X, t),
    "simple_loss": lambda t: simple_loss(SCHEDULE, zero_model, X, t),
    "vb_terms_bpd": lambda t: vb_terms_bpd(SCHEDULE, zero_model, X, X, t),
}

BAD_T = {
    "zero": 0,
    "T_plus_1": T + 1,
    "negative": -1,
    "tensor_with_zero": torch.tensor([1, 0, 2]),
    "tensor_above_T": torch.tensor([1, T + 1, 2]),
    "python_float": 3.0,
    "float_tensor": torch.tensor([1.0, 2.0, 3.0]),
    "bool": True,
    "wrong_length": torch.tensor([1, 2]),
    "wrong_dims": torch.tensor([[1], [2], [3]]),
}


@pytest.mark.parametrize("bad", list(BAD_T))
@pytest.mark.parametrize("function", list(CALLS_WITH_T))
def test_bad_timesteps_are_rejected(function, bad):
    with pytest.raises(ValueError, match=r"^t must"):
        CALLS_WITH_T[function](BAD_T[bad])


@pytest.mark.parametrize("function", list(CALLS_WITH_T))
def test_good_timesteps_are_accepted(function):
    # The same calls succeed at both ends of 1..T, with an int, a 0-d and a (B,) tensor.
    for t in (1, T, torch.tensor(T), torch.tensor([1, 5, T])):
        CALLS_WITH_T[function](t)


def test_out_of_range_message_states_the_allowed_range():
    with pytest.raises(ValueError, match=r"t must be in 1\.\.10 .* got values from 0 to 0"):
        check_timesteps(0, T, 3)
    with pytest.raises(ValueError, match=r"t must be in 1\.\.10 .* got values from 11 to 11"):
        check_timesteps(11, T, 3)
    with pytest.raises(ValueError, match=r"t must hold integer timesteps in 1\.\.10, got dtype torch.float32"):
        check_timesteps(torch.tensor([1.0, 2.0, 3.0]), T, 3)
    with pytest.raises(ValueError, match=r"batch size 3\), got shape \(2,\)"):
        check_timesteps(torch.tensor([1, 2]), T, 3)
    as_long = check_timesteps(torch.tensor([1, 2, 3], dtype=torch.int32), T, 3)
    torch.testing.assert_close(as_long, torch.tensor([1, 2, 3]), rtol=0, atol=0)  # int32 comes back as long


# --- schedules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "betas",
    [
        torch.tensor([0.1, 0.0, 0.2], dtype=torch.float64),
        torch.tensor([0.1, 1.0], dtype=torch.float64),
        torch.tensor([-0.1, 0.2], dtype=torch.float64),
        torch.tensor([0.5, 1.5], dtype=torch.float64),
        torch.tensor([0.1, float("nan")], dtype=torch.float64),
    ],
)
def test_betas_outside_0_1_are_rejected(betas):
    with pytest.raises(ValueError, match=r"^betas must all be in \(0, 1\)"):
        NoiseSchedule(betas)


@pytest.mark.parametrize("betas", [torch.tensor([], dtype=torch.float64), torch.full((2, 3), 0.1)])
def test_betas_empty_or_not_1d_are_rejected(betas):
    with pytest.raises(ValueError, match=r"^betas must be a 1-d tensor"):
        NoiseSchedule(betas)


@pytest.mark.parametrize("bad_T", [0, -5, 2.0, True, "10"])
@pytest.mark.parametrize(
    "make", [linear_beta_schedule, cosine_beta_schedule, NoiseSchedule.linear, NoiseSchedule.cosine]
)
def test_T_below_1_or_not_an_int_is_rejected(make, bad_T):
    with pytest.raises(ValueError, match=r"^T must be an integer >= 1"):
        make(bad_T)


@pytest.mark.parametrize(
    "kwargs, name",
    [({"beta_start": 0.0}, "beta_start"), ({"beta_end": 1.0}, "beta_end"), ({"beta_start": -1e-3}, "beta_start")],
)
def test_linear_schedule_rejects_betas_outside_0_1(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must be in \(0, 1\)"):
        linear_beta_schedule(10, **kwargs)


@pytest.mark.parametrize("s", [-0.1, float("nan")])
def test_cosine_schedule_rejects_bad_s(s):
    with pytest.raises(ValueError, match=r"^s must be a finite number >= 0"):
        cosine_beta_schedule(10, s=s)
    with pytest.raises(ValueError, match=r"^s must be a finite number >= 0"):
        NoiseSchedule.cosine(10, s=s)


# --- data, shapes and choices --------------------------------------------------------------


def test_integer_images_are_rejected():
    uint8_images = torch.randint(0, 256, (3, 1, 2, 2), dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"^x0 must be a floating-point tensor .* got dtype torch.uint8"):
        q_sample(SCHEDULE, uint8_images, 1)
    with pytest.raises(ValueError, match=r"^x0 must be a floating-point tensor"):
        q_mean_variance(SCHEDULE, uint8_images, 1)
    with pytest.raises(ValueError, match=r"^x0 must be a floating-point tensor"):
        simple_loss(SCHEDULE, zero_model, uint8_images, 1)
    with pytest.raises(ValueError, match=r"^x_prev must be a floating-point tensor"):
        q_step(SCHEDULE, uint8_images, 1)
    with pytest.raises(ValueError, match=r"^x_t must be a floating-point tensor"):
        p_mean_variance(SCHEDULE, zero_model, uint8_images, 1)
    with pytest.raises(ValueError, match=r"^x0 must be a torch.Tensor"):
        q_sample(SCHEDULE, [[0.0]], 1)


def test_noise_shape_mismatch_is_rejected():
    wrong = torch.zeros(3, 1, 2, 3)
    with pytest.raises(ValueError, match=r"^noise must have the same shape as x0"):
        q_sample(SCHEDULE, X, 1, noise=wrong)
    with pytest.raises(ValueError, match=r"^noise must have the same shape as x_prev"):
        q_step(SCHEDULE, X, 1, noise=wrong)
    with pytest.raises(ValueError, match=r"^noise must have the same shape as x0"):
        simple_loss(SCHEDULE, zero_model, X, 1, noise=wrong)
    with pytest.raises(ValueError, match=r"^x_t must have the same shape as x0"):
        q_posterior_mean_variance(SCHEDULE, X, wrong, 1)
    with pytest.raises(ValueError, match=r"^eps must have the same shape as x_t"):
        predict_x0_from_eps(SCHEDULE, X, 1, wrong)
    with pytest.raises(ValueError, match=r"^eps must have the same shape as x_t"):
        posterior_mean_from_eps(SCHEDULE, X, 1, wrong)


def test_unknown_variance_is_rejected():
    for bad in ("learned", "beta-tilde", None):
        with pytest.raises(ValueError, match=r"^variance must be one of \('beta', 'beta_tilde'\)"):
            p_mean_variance(SCHEDULE, zero_model, X, 1, variance=bad)
    with pytest.raises(ValueError, match=r"^variance must be one of"):
        p_sample_loop(SCHEDULE, zero_model, (2, 1), variance="fixedlarge")


def test_unknown_loss_type_is_rejected():
    with pytest.raises(ValueError, match=r"^loss_type must be one of \('l2', 'l1'\), got 'mse'"):
        simple_loss(SCHEDULE, zero_model, X, 1, loss_type="mse")


def test_model_output_with_wrong_shape_is_rejected():
    def flat_model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x_t.shape[0], 4)

    with pytest.raises(ValueError, match=r"^model output must have the shape of x_t \(3, 1, 2, 2\), got \(3, 4\)"):
        p_mean_variance(SCHEDULE, flat_model, X, 1)
    with pytest.raises(ValueError, match=r"^model output must have the shape of x_t"):
        p_sample_loop(SCHEDULE, flat_model, (3, 1, 2, 2))


def test_x_T_with_wrong_shape_is_rejected():
    with pytest.raises(ValueError, match=r"^x_T must have shape \(3, 1, 2, 2\), got \(2, 1, 2, 2\)"):
        p_sample_loop(SCHEDULE, zero_model, (3, 1, 2, 2), x_T=torch.zeros(2, 1, 2, 2))


def test_bool_tensor_timesteps_are_rejected():
    # All-True passes the range check (True == 1), so only the dtype check can refuse it.
    with pytest.raises(ValueError, match=r"^t must hold integer timesteps in 1\.\.10, got dtype torch.bool"):
        check_timesteps(torch.tensor([True, True, True]), T, 3)
    with pytest.raises(ValueError, match=r"^t must hold integer timesteps"):
        q_sample(SCHEDULE, X, torch.tensor([True, True, True]))


def test_integer_noise_is_rejected():
    int_noise = torch.zeros(3, 1, 2, 2, dtype=torch.long)
    with pytest.raises(ValueError, match=r"^noise must be a floating-point tensor .* got dtype torch.int64"):
        q_sample(SCHEDULE, X, 1, noise=int_noise)
    with pytest.raises(ValueError, match=r"^noise must be a floating-point tensor"):
        simple_loss(SCHEDULE, zero_model, X, 1, noise=int_noise)


def test_integer_noise_is_rejected_by_q_step():
    with pytest.raises(ValueError, match=r"^noise must be a floating-point tensor"):
        q_step(SCHEDULE, X, 1, noise=torch.zeros(3, 1, 2, 2, dtype=torch.long))
