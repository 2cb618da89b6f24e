"""The training objectives: L_simple (eq. {eq}`eq-loss-simple`), its L1 variant, and the
terms of the variational bound (eqs. {eq}`eq-vlb`, {eq}`eq-gaussian-kl`, {eq}`eq-decoder-nll`).

Timestep convention: the paper's t = 1..T; schedule arrays are indexed by t directly.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from .forward import q_mean_variance, q_sample
from .posterior import q_posterior_mean_variance
from .reverse import EpsModel, p_mean_variance
from .schedules import NoiseSchedule
from .validation import check_floating, check_int, check_number, check_same_shape, check_timesteps

LOSS_TYPES = ("l2", "l1")


def sample_timesteps(batch_size: int, T: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """t ~ Uniform{1, ..., T}, one per example (Algorithm 1, line 3)."""
    return torch.randint(1, T + 1, (batch_size,), generator=generator, device=device)


def simple_loss(
    schedule: NoiseSchedule,
    model: EpsModel,
    x0: torch.Tensor,
    t: torch.Tensor | int,
    noise: torch.Tensor | None = None,
    loss_type: Literal["l2", "l1"] = "l2",
    generator: torch.Generator | None = None,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """L_simple = E ||eps - eps_theta(sqrt(alphabar_t) x_0 + sqrt(1 - alphabar_t) eps, t)||^2.

    Eq. {eq}`eq-loss-simple`, averaged over the batch and every dimension. ``loss_type="l1"``
    gives the mean absolute error that the source's code trains with, for comparison; it is
    not a term of the variational bound.

    Args:
        schedule: the noise schedule.
        model: callable ``model(x_t, t) -> eps_hat`` with t in 1..T.
        x0: clean data, floating tensor of shape (B, ...).
        t: timesteps in 1..T, an int or a long tensor of shape (B,).
        noise: eps ~ N(0, I) with x0's shape; drawn if not given.
        loss_type: ``"l2"`` (mean squared error) or ``"l1"`` (mean absolute error).
        generator: random generator used when ``noise`` is drawn here.
        weights: optional per-example weights, shape (B,), e.g. :func:`min_snr_weight`;
            each example's error is multiplied by its weight before the batch mean.

    Returns:
        the scalar loss.
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
    check_floating("x0", x0)
    t = check_timesteps(t, schedule.T, x0.shape[0])
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    check_same_shape("x0", x0, "noise", noise)
    x_t = q_sample(schedule, x0, t, noise)
    pred = model(x_t, t.to(x0.device))
    error = (noise - pred) ** 2 if loss_type == "l2" else torch.abs(noise - pred)
    if weights is None:
        return torch.mean(error)
    if not isinstance(weights, torch.Tensor) or weights.shape != (x0.shape[0],):
        raise ValueError(f"weights must be a tensor of shape (B,) = ({x0.shape[0]},), got {weights!r}")
    per_example = error.reshape(error.shape[0], -1).mean(dim=1)  # (B,)
    return torch.mean(weights.to(per_example) * per_example)


def min_snr_weight(schedule: NoiseSchedule, t: torch.Tensor | int, gamma: float = 5.0) -> torch.Tensor:
    """The Min-SNR-gamma weight of the epsilon loss at step t: w_t = min(SNR_t, gamma) / SNR_t.

    Eq. {eq}`eq-min-snr` (Hang et al., 2023), with SNR_t = alphabar_t / (1 - alphabar_t).
    In terms of x_0 the epsilon error is an x_0 error times SNR_t, since
    x0_hat - x_0 = -(eps_hat - eps) / sqrt(SNR_t); weighting it by w_t makes the loss an
    x_0 error weighted by min(SNR_t, gamma). Noisy steps (SNR_t <= gamma) keep weight 1, as
    in L_simple; the nearly clean steps, where predicting the noise is easy and matters
    little for what a sample looks like, weigh less, in proportion to 1 / SNR_t.

    Args:
        schedule: the noise schedule.
        t: timesteps in 1..T, an int or a long tensor of shape (B,).
        gamma: the cap on the signal-to-noise ratio, a finite number > 0.

    Returns:
        float32 tensor of shape (B,) (B = 1 for an int t), every entry in (0, 1].
    """
    check_number("gamma", gamma, low=0, low_open=True)
    batch = t.shape[0] if isinstance(t, torch.Tensor) and t.dim() == 1 else 1
    t = check_timesteps(t, schedule.T, batch)  # (B,) long, every entry in 1..T
    snr = schedule.snr()[t.cpu()]  # (B,), float64
    return (torch.clamp(snr, max=gamma) / snr).to(device=t.device, dtype=torch.float32)


def normal_kl(mean1: torch.Tensor, logvar1: torch.Tensor, mean2: torch.Tensor, logvar2: torch.Tensor) -> torch.Tensor:
    """KL(N(mean1, exp(logvar1)) || N(mean2, exp(logvar2))), elementwise, in nats.

    Eq. {eq}`eq-gaussian-kl`: log(sigma2/sigma1) + (sigma1^2 + (mu1 - mu2)^2) / (2 sigma2^2) - 1/2.
    Arguments broadcast against each other.
    """
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def standard_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    """Phi(x) = (1 + erf(x / sqrt 2)) / 2, exact (the reference code uses a tanh approximation)."""
    return 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def discretized_gaussian_log_likelihood(x: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor) -> torch.Tensor:
    """log p(x) for data on 256 levels in [-1, 1] under a Gaussian discretized into bins.

    Eq. {eq}`eq-decoder-nll`: each pixel value x owns the bin [x - 1/255, x + 1/255]; the two
    end bins extend to -inf and +inf. The result is elementwise, in nats.

    Args:
        x: data scaled to [-1, 1] on the 256-level grid, floating tensor.
        means: Gaussian means, x's shape.
        log_scales: log standard deviations, broadcastable to x's shape.

    Returns:
        elementwise log-likelihoods, x's shape.
    """
    check_floating("x", x)
    check_same_shape("x", x, "means", means)
    centered = x - means
    inv_std = torch.exp(-log_scales)
    cdf_plus = standard_normal_cdf(inv_std * (centered + 1.0 / 255.0))
    cdf_min = standard_normal_cdf(inv_std * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_probs_mid = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_probs_mid))


def _mean_over_data_dims(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1).mean(dim=1)  # (B,)


def prior_bpd(schedule: NoiseSchedule, x0: torch.Tensor) -> torch.Tensor:
    """L_T = KL(q(x_T | x_0) || N(0, I)), in bits per dimension, shape (B,).

    It has no parameters to learn; for a good schedule it is close to 0.
    """
    mean, _, log_var = q_mean_variance(schedule, x0, schedule.T)
    kl = normal_kl(mean, log_var, torch.zeros_like(mean), torch.zeros_like(mean))
    return _mean_over_data_dims(kl) / math.log(2.0)


def vb_terms_bpd(
    schedule: NoiseSchedule,
    model: EpsModel,
    x0: torch.Tensor,
    x_t: torch.Tensor,
    t: torch.Tensor | int,
    variance: Literal["beta", "beta_tilde"] = "beta",
    clip_x0: bool = True,
) -> torch.Tensor:
    """The bound's term at step t, in bits per dimension, shape (B,).

    For t >= 2: L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p_theta(x_{t-1} | x_t)), eq. {eq}`eq-lt-kl`.
    For t = 1:  L_0 = -log p_theta(x_0 | x_1) under the discretized decoder, eq. {eq}`eq-decoder-nll`.

    Args:
        schedule: the noise schedule.
        model: callable ``model(x_t, t) -> eps_hat`` with t in 1..T.
        x0: clean data on the 256-level grid in [-1, 1], shape (B, ...).
        x_t: a sample of q(x_t | x_0), same shape.
        t: timesteps in 1..T, an int or a long tensor of shape (B,).
        variance, clip_x0: as in :func:`p_mean_variance`.

    Returns:
        per-example term in bits per dimension, shape (B,).
    """
    t = check_timesteps(t, schedule.T, x0.shape[0])
    true_mean, _, true_log_var = q_posterior_mean_variance(schedule, x0, x_t, t)
    out = p_mean_variance(schedule, model, x_t, t, variance=variance, clip_x0=clip_x0)
    kl = _mean_over_data_dims(normal_kl(true_mean, true_log_var, out.mean, out.log_variance)) / math.log(2.0)
    decoder_nll = -_mean_over_data_dims(
        discretized_gaussian_log_likelihood(x0, out.mean, 0.5 * out.log_variance)
    ) / math.log(2.0)
    return torch.where(t.to(x0.device) == 1, decoder_nll, kl)


@torch.no_grad()
def bpd_bound(
    schedule: NoiseSchedule,
    model: EpsModel,
    x0: torch.Tensor,
    variance: Literal["beta", "beta_tilde"] = "beta",
    clip_x0: bool = True,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """The whole variational bound L = L_T + sum_{t>=2} L_{t-1} + L_0 in bits/dim, eq. {eq}`eq-vlb`.

    Every term is computed once per example, at one x_t ~ q(x_t | x_0) drawn for each t
    (x_1 for L_0), so the total is a one-sample, unbiased estimate of the bound; only L_T is
    exact. The cost is T model evaluations per batch.

    Returns:
        dict with ``"total"`` (B,), ``"prior"`` (B,), ``"terms"`` (B, T), where
        ``terms[:, t - 1]`` is the term at step t (L_0 at t = 1).
    """
    check_floating("x0", x0)
    B = x0.shape[0]
    terms = torch.zeros(B, schedule.T, dtype=x0.dtype, device=x0.device)
    for t in range(1, schedule.T + 1):
        t_batch = torch.full((B,), t, dtype=torch.long, device=x0.device)
        x_t = q_sample(schedule, x0, t_batch, generator=generator)
        terms[:, t - 1] = vb_terms_bpd(schedule, model, x0, x_t, t_batch, variance=variance, clip_x0=clip_x0)
    prior = prior_bpd(schedule, x0)
    return {"total": terms.sum(dim=1) + prior, "prior": prior, "terms": terms}


@torch.no_grad()
def bpd_bound_stratified(
    schedule: NoiseSchedule,
    model: EpsModel,
    x0: torch.Tensor,
    blocks: int = 50,
    variance: Literal["beta", "beta_tilde"] = "beta",
    clip_x0: bool = True,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """An unbiased estimate of the bound L of eq. {eq}`eq-vlb`, per example, in bits/dim.

    :func:`bpd_bound` costs T model evaluations. Here the sum over t = 2..T is estimated by
    stratified sampling: the timesteps 2..T are cut into ``blocks`` runs of (nearly) equal
    length; for every example one t is drawn uniformly from each run, and its term counts
    for the whole run (it is multiplied by the run's width). L_T is computed exactly, L_0
    from one draw of x_1 (as in :func:`bpd_bound`). Each example's total is then an unbiased
    estimate of its bound, at the cost of ``blocks + 1`` model evaluations; the spread over
    examples gives a standard error.

    Args:
        schedule: the noise schedule (T >= 2).
        model: callable ``model(x_t, t) -> eps_hat`` with t in 1..T.
        x0: clean data on the 256-level grid in [-1, 1], shape (B, ...).
        blocks: number of runs the timesteps 2..T are cut into, an integer in 1..T - 1
            (T - 1: every t gets its own run, one draw of each term, like :func:`bpd_bound`).
        variance, clip_x0: as in :func:`ddpm_core.reverse.p_mean_variance`.
        generator: random generator for the timesteps and every x_t.

    Returns:
        dict of per-example tensors: ``"total"`` (B,) = ``"prior"`` + ``"L0"`` + ``"middle"``,
        where ``"middle"`` (B,) estimates sum_{t=2..T} L_{t-1}; ``"t"`` and ``"terms"``
        (B, blocks) hold each example's drawn timesteps and their terms; ``"widths"``
        (blocks,) the length of each run.
    """
    check_floating("x0", x0)
    if schedule.T < 2:
        raise ValueError(f"schedule.T must be >= 2 for a sum over t = 2..T, got {schedule.T}")
    check_int("blocks", blocks, 1, schedule.T - 1)  # 1..T - 1
    B, device = x0.shape[0], x0.device
    edges = torch.linspace(2, schedule.T + 1, blocks + 1).round().long()  # run k holds t in [edges[k], edges[k+1])
    prior = prior_bpd(schedule, x0)  # L_T, (B,)
    x_1 = q_sample(schedule, x0, 1, generator=generator)
    L0 = vb_terms_bpd(schedule, model, x0, x_1, 1, variance=variance, clip_x0=clip_x0)  # (B,)
    ts, terms = [], []
    for lo, hi in zip(edges[:-1].tolist(), edges[1:].tolist()):
        t = torch.randint(lo, hi, (B,), generator=generator, device=generator.device if generator else None)
        t = t.to(device)  # (B,): one t per example, uniform in the run
        x_t = q_sample(schedule, x0, t, generator=generator)
        ts.append(t)
        terms.append(vb_terms_bpd(schedule, model, x0, x_t, t, variance=variance, clip_x0=clip_x0))
    ts, terms = torch.stack(ts, dim=1), torch.stack(terms, dim=1)  # (B, blocks) each
    widths = (edges[1:] - edges[:-1]).to(device)  # (blocks,)
    middle = (terms * widths).sum(dim=1)  # each term stands for its whole run: (B,)
    return {"total": prior + L0 + middle, "prior": prior, "L0": L0, "middle": middle,
            "t": ts, "terms": terms, "widths": widths}
