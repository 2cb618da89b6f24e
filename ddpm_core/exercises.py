"""Checks for the book's implementation exercises: your function against ``ddpm_core``'s.

Each chapter from 2 on asks the learner to write one piece of DDPM (``my_q_sample``,
``my_p_sample``, ...) and then runs one check from here. A check calls the learner's function
and the library's on the same seeded random inputs (float64, except where the library works
in float32), compares them within a stated tolerance, and prints one short verdict:

- "Correct: ..." when every case agrees;
- "Not yet: ..." with the first case that does not (what differs, by how much) and a hint;
- "Not attempted yet: ..." when the function still raises ``NotImplementedError``.

A check never raises on a wrong or unfinished answer, so that "Run all" goes through a
notebook whose exercises are not done. It raises ``ValueError`` only when it is given
something that is not a function. Its "Correct" verdict prints no number computed by the
learner's function, so that it reads the same on every CPU.

Timestep convention: the paper's t = 1..T; schedule arrays are indexed by t directly.
"""

from __future__ import annotations

from typing import Callable

import torch

from .ddim import ddim_mean_variance
from .forward import q_sample
from .losses import simple_loss
from .parameterizations import v_from_eps
from .posterior import q_posterior_mean_variance
from .reverse import p_sample
from .schedules import NoiseSchedule
from .unet import sinusoidal_embedding

CASES = 5  # random cases per check
TOLERANCE = 1e-6  # largest absolute difference allowed in float64
SHAPE = (3, 1, 4, 4)  # (B, C, H, W): a small batch of images

# A case: a seed -> (the arguments, "for t = [17, 3, 950]" or the like to name the case in a
# verdict, and the library's answer for those arguments).
MakeCase = Callable[[int], tuple[tuple, str, object]]


# --------------------------------------------------------------------------------------
# The checks, in the order of the chapters
# --------------------------------------------------------------------------------------


def check_q_sample(fn: Callable) -> None:
    """Check ``fn(schedule, x0, t, noise) -> x_t``, the closed form {eq}`eq-forward-closed-form`.

    Against :func:`ddpm_core.forward.q_sample` on 5 random batches (float64, tolerance 1e-6).

    Args:
        fn: the learner's function; ``t`` is a long tensor of shape (B,) in 1..T.
    """
    _require_function(fn)
    schedule = NoiseSchedule.linear(1000)

    def case(seed: int) -> tuple[tuple, str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        x0, t, noise = _images(g), _timesteps(g, schedule.T), _images(g)
        return (schedule, x0, t, noise), _where_t(t), q_sample(schedule, x0, t, noise)

    _check(fn, "q_sample", "ddpm_core.forward.q_sample", case, "x_t = sqrt(alphabar_t) x_0 + sqrt(1 - alphabar_t) eps, with "
           "alphabar_t = schedule.alphas_cumprod[t] reshaped to (B, 1, 1, 1); mind both square roots.", parts=("x_t",))


def check_q_posterior_mean_variance(fn: Callable) -> None:
    """Check ``fn(schedule, x0, x_t, t) -> (mean, variance)`` of q(x_{t-1} | x_t, x_0).

    Eqs. {eq}`eq-posterior-mean` and {eq}`eq-posterior-variance`, against the mean and variance
    of :func:`ddpm_core.posterior.q_posterior_mean_variance` on 5 random batches (float64,
    tolerance 1e-6); the variance may have shape (B, 1, 1, 1) or that of ``x0``.

    Args:
        fn: the learner's function; ``t`` is a long tensor of shape (B,) in 1..T.
    """
    _require_function(fn)
    schedule = NoiseSchedule.linear(1000)

    def case(seed: int) -> tuple[tuple, str, tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed(seed)
        x0, x_t, t = _images(g), _images(g), _timesteps(g, schedule.T, first=1 if seed == 0 else None)
        mean, variance, _ = q_posterior_mean_variance(schedule, x0, x_t, t)
        return (schedule, x0, x_t, t), _where_t(t), (mean, variance.expand_as(x0))

    def learner(schedule, x0, x_t, t):
        out = fn(schedule, x0, x_t, t)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise _Wrong("your function should return two tensors, (mean, variance)")
        mean, variance = out
        if not isinstance(variance, torch.Tensor):
            raise _Wrong(f"the variance should be a tensor, got {type(variance).__name__}")
        try:
            variance = variance.expand_as(x0)
        except RuntimeError:
            raise _Wrong(f"the variance has shape {tuple(variance.shape)}; give it shape (B, 1, 1, 1) "
                         f"= {(x0.shape[0], 1, 1, 1)} or that of x0") from None
        return mean, variance

    _check(learner, "q_posterior_mean_variance", "ddpm_core.posterior.q_posterior_mean_variance", case,
           "beta-tilde_t = (1 - alphabar_{t-1}) / (1 - alphabar_t) beta_t; the mean weighs x_0 by "
           "sqrt(alphabar_{t-1}) beta_t / (1 - alphabar_t) and x_t by sqrt(alpha_t) (1 - alphabar_{t-1}) / "
           "(1 - alphabar_t); alphabar_{t-1} is schedule.alphas_cumprod[t - 1].",
           parts=("mean", "variance"))


def check_p_sample(fn: Callable) -> None:
    """Check ``fn(schedule, model, x_t, t, z)``, which returns x_{t-1}: one step of Algorithm 2.

    Eq. {eq}`eq-sampling-step` with sigma_t^2 = beta_t, against
    :func:`ddpm_core.reverse.p_sample` (``variance="beta"``, ``clip_x0=False``, its z drawn
    from the same seed) on 5 random batches, one of them with t = 1 (float64, tolerance 1e-6).

    Args:
        fn: the learner's function; ``model(x_t, t)`` predicts the noise, ``t`` is a long
            tensor of shape (B,) in 1..T and ``z`` is the N(0, I) draw of the step.
    """
    _require_function(fn)
    schedule = NoiseSchedule.linear(1000)

    def case(seed: int) -> tuple[tuple, str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        x_t, t = _images(g), _timesteps(g, schedule.T, first=1 if seed == 0 else None)
        z = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(1000 + seed), dtype=x_t.dtype)
        # p_sample draws its z from the same seed: the same z as the learner's.
        expected = p_sample(schedule, _toy_eps_model, x_t, t, variance="beta", clip_x0=False,
                            generator=torch.Generator().manual_seed(1000 + seed))
        return (schedule, _toy_eps_model, x_t, t, z), _where_t(t), expected

    _check(fn, "p_sample", "ddpm_core.reverse.p_sample", case,
           "x_{t-1} = (x_t - beta_t / sqrt(1 - alphabar_t) eps_theta(x_t, t)) / sqrt(alpha_t) + sigma_t z, "
           "with sigma_t = sqrt(beta_t), and no noise (z = 0) where t = 1.", parts=("x_{t-1}",))


def check_simple_loss(fn: Callable) -> None:
    """Check ``fn(schedule, model, x0, t, noise) -> loss``, L_simple {eq}`eq-loss-simple` for a batch.

    Against :func:`ddpm_core.losses.simple_loss` (the mean over the batch and every dimension)
    on 5 random batches (float64, tolerance 1e-6).

    Args:
        fn: the learner's function; ``model(x_t, t)`` predicts the noise and ``t`` is a long
            tensor of shape (B,) in 1..T. It returns a scalar tensor.
    """
    _require_function(fn)
    schedule = NoiseSchedule.linear(1000)

    def case(seed: int) -> tuple[tuple, str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        x0, t, noise = _images(g), _timesteps(g, schedule.T), _images(g)
        expected = simple_loss(schedule, _toy_eps_model, x0, t, noise)
        return (schedule, _toy_eps_model, x0, t, noise), _where_t(t), expected

    def learner(*args):
        loss = fn(*args)
        if isinstance(loss, torch.Tensor) and loss.numel() != 1:
            raise _Wrong(f"the loss should be one number (a mean over the batch), got shape {tuple(loss.shape)}")
        return loss.reshape(()) if isinstance(loss, torch.Tensor) else loss

    _check(learner, "simple_loss", "ddpm_core.losses.simple_loss", case,
           "noise x_0 with the closed form (x_t = sqrt(alphabar_t) x_0 + sqrt(1 - alphabar_t) noise), ask the "
           "model for eps_theta(x_t, t), and average (noise - eps_theta)^2 over every number of the batch.", parts=("loss",))


def check_sinusoidal_embedding(fn: Callable) -> None:
    """Check ``fn(t, dim) -> emb``, the timestep embedding {eq}`eq-time-embedding`, shape (B, dim).

    Against :func:`ddpm_core.unet.sinusoidal_embedding`, which computes in float32, for 5
    random batches of timesteps in 1..1000 and dim 8, 16 or 32 (tolerance 1e-3: at t = 1000 an
    angle carries float32 rounding of about 1e-4).

    Args:
        fn: the learner's function; ``t`` is a long tensor of shape (B,).
    """
    _require_function(fn)

    def case(seed: int) -> tuple[tuple, str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        dim = (8, 16, 32)[seed % 3]
        t = torch.randint(1, 1001, (4,), generator=g)
        return (t, dim), f"for dim = {dim} and t = {t.tolist()}", sinusoidal_embedding(t, dim)

    _check(fn, "sinusoidal_embedding", "ddpm_core.unet.sinusoidal_embedding", case,
           "with h = dim / 2 and w_i = 10000^(-i / h) for i = 0..h-1, the row of t is "
           "[sin(t w_0), ..., sin(t w_{h-1}), cos(t w_0), ..., cos(t w_{h-1})]: all sines first.",
           tolerance=1e-3, parts=("embedding",))


def check_ddim_step(fn: Callable) -> None:
    """Check ``fn(schedule, model, x_t, t, s) -> x_s``, a deterministic DDIM step {eq}`eq-ddim-step`.

    With eta = 0 and x0_hat not clipped, against the mean of
    :func:`ddpm_core.ddim.ddim_mean_variance` (``eta=0``, ``clip_x0=False``) on 5 random batches,
    one of them with s = 0 (float64, tolerance 1e-6).

    Args:
        fn: the learner's function; ``t`` (in 1..T) and ``s`` (in 0..t-1, 0 standing for x_0,
            alphabar_0 = 1) are long tensors of shape (B,).
    """
    _require_function(fn)
    schedule = NoiseSchedule.linear(1000)

    def case(seed: int) -> tuple[tuple, str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        x_t, t = _images(g), _timesteps(g, schedule.T)
        s = (torch.rand(t.shape, generator=g, dtype=torch.float64) * t).long()  # in 0..t-1
        if seed == 0:
            s[0] = 0
        expected = ddim_mean_variance(schedule, _toy_eps_model, x_t, t, s, eta=0.0, clip_x0=False).mean
        return (schedule, _toy_eps_model, x_t, t, s), f"for t = {t.tolist()} and s = {s.tolist()}", expected

    _check(fn, "DDIM step", "ddpm_core.ddim.ddim_mean_variance (eta = 0)", case,
           "first x0_hat = (x_t - sqrt(1 - alphabar_t) eps_theta(x_t, t)) / sqrt(alphabar_t), then "
           "x_s = sqrt(alphabar_s) x0_hat + sqrt(1 - alphabar_s) eps_theta(x_t, t); alphabar_0 = 1.", parts=("x_s",))


def check_data_parallel_gradient(fn: Callable) -> None:
    """Check ``fn(loss_fn, w, batch, world_size) -> gradient``: what N processes compute together.

    Each of the ``world_size`` processes takes its slice of the batch
    (:func:`ddpm_core.train.batches.rank_slice`) and differentiates ``loss_fn(w, slice)`` (a
    mean over the slice); the gradients are then averaged, as DistributedDataParallel's
    all-reduce does. The result must equal the gradient of the whole batch in one process, which
    this compares it with on 5 random least-squares problems (float64, tolerance 1e-6).

    Args:
        fn: the learner's function; ``w`` is a parameter tensor of shape (3,), ``batch`` has
            shape (B, 4) (three inputs and a target per row) and B is divisible by world_size.
    """
    _require_function(fn)

    def case(seed: int) -> tuple[tuple, str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        world_size = (1, 2, 4, 2, 4)[seed]
        w = torch.randn(3, generator=g, dtype=torch.float64)
        batch = torch.randn(8, 4, generator=g, dtype=torch.float64)
        whole = w.clone().requires_grad_(True)
        (expected,) = torch.autograd.grad(_least_squares(whole, batch), whole)
        return (_least_squares, w, batch, world_size), f"for world_size = {world_size}", expected

    _check(fn, "data-parallel gradient", "the gradient of the whole batch in one process", case,
           "each process differentiates the mean loss of its own slice of batch_size / world_size rows; "
           "the all-reduce then averages the world_size gradients (it sums them and divides by world_size).",
           parts=("gradient",), verb="equals")


def check_v_from_eps(fn: Callable) -> None:
    """Check ``fn(schedule, x_t, t, eps) -> v``, the velocity {eq}`eq-v-definition` implied by a noise prediction.

    Against :func:`ddpm_core.parameterizations.v_from_eps` on 5 random batches, one of them with
    t = 1 (float64, tolerance 1e-6).

    Args:
        fn: the learner's function; ``t`` is a long tensor of shape (B,) in 1..T.
    """
    _require_function(fn)
    schedule = NoiseSchedule.linear(1000)

    def case(seed: int) -> tuple[tuple, str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        x_t, t, eps = _images(g), _timesteps(g, schedule.T, first=1 if seed == 0 else None), _images(g)
        return (schedule, x_t, t, eps), _where_t(t), v_from_eps(schedule, x_t, t, eps)

    _check(fn, "v_from_eps", "ddpm_core.parameterizations.v_from_eps", case,
           "first x0_hat = (x_t - sqrt(1 - alphabar_t) eps) / sqrt(alphabar_t), then "
           "v = sqrt(alphabar_t) eps - sqrt(1 - alphabar_t) x0_hat; mind the minus sign.", parts=("v",))


# --------------------------------------------------------------------------------------
# What the checks share
# --------------------------------------------------------------------------------------


def _require_function(fn: object) -> None:
    if not callable(fn):
        raise ValueError(f"fn must be the function you wrote (a callable), got {type(fn).__name__}: {fn!r}")


class _Wrong(Exception):
    """The learner's function returned something of the wrong kind (said in the message)."""


def _check(
    learner: Callable,
    what: str,
    reference_name: str,
    make_case: MakeCase,
    hint: str,
    parts: tuple[str, ...],
    tolerance: float = TOLERANCE,
    verb: str = "matches",
) -> None:
    """Run ``learner`` on CASES seeded cases, compare with the library's answers, print the verdict."""
    for seed in range(CASES):
        _, _, expected = make_case(seed)
        args, where, _ = make_case(seed)  # fresh inputs: the learner's function may change them in place
        try:
            got = learner(*args)
        except NotImplementedError:
            print(f"Not attempted yet: your {what} raises NotImplementedError. "
                  f"Write its body, then run this check again.")
            return
        except _Wrong as wrong:
            print(f"Not yet: {where}, {wrong}.")
            return
        except Exception as error:  # a bug in the learner's code: say which, never raise
            print(f"Not yet: {where}, your {what} raised {type(error).__name__}: {error}")
            return
        expected, got = (expected, got) if len(parts) > 1 else ((expected,), (got,))
        for part, e, g in zip(parts, expected, got):
            problem = _difference(part, g, e, tolerance)
            if problem:
                print(f"Not yet: {where}, {problem}. Hint: {hint}")
                return
    print(f"Correct: your {what} {verb} {reference_name} on {CASES} random cases.")


def _difference(part: str, got: object, expected: torch.Tensor, tolerance: float) -> str | None:
    """What is wrong with ``got`` against ``expected`` (None if they agree within ``tolerance``)."""
    if not isinstance(got, torch.Tensor):
        return f"your {part} is a {type(got).__name__}, not a torch.Tensor"
    if got.shape != expected.shape:
        return f"your {part} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
    if not torch.is_floating_point(got):
        return f"your {part} has dtype {got.dtype}; it should be a floating-point tensor"
    gap = (got.detach().double() - expected.detach().double()).abs()
    if not bool(torch.isfinite(gap).all()):
        return f"your {part} holds NaN or infinity"
    largest = float(gap.max())
    if largest > tolerance:
        return f"your {part} differs by up to {largest:.3g} (allowed {tolerance:g})"
    return None


def _images(g: torch.Generator) -> torch.Tensor:
    return torch.randn(SHAPE, generator=g, dtype=torch.float64)  # (B, C, H, W)


def _timesteps(g: torch.Generator, T: int, first: int | None = None) -> torch.Tensor:
    """Random timesteps in 1..T, shape (B,); ``first`` sets the first one (e.g. t = 1)."""
    t = torch.randint(1, T + 1, (SHAPE[0],), generator=g)
    if first is not None:
        t[0] = first
    return t


def _where_t(t: torch.Tensor) -> str:
    return f"for t = {t.tolist()}"


def _toy_eps_model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A fixed stand-in for eps_theta(x_t, t): smooth in x_t, different at every t."""
    scale = (t.to(x_t.dtype) / 1000).reshape(-1, *([1] * (x_t.dim() - 1)))  # (B, 1, ..., 1)
    return torch.tanh(x_t) * (0.5 + scale) + 0.1 * scale


def _least_squares(w: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
    """The mean squared error of the linear prediction batch[:, :3] @ w of the target batch[:, 3]."""
    return torch.mean((batch[:, :3] @ w - batch[:, 3]) ** 2)
