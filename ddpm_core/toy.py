"""A 2-D toy data set on which DDPM's best possible denoiser is known exactly.

The data are a mixture of isotropic Gaussians,
q(x_0) = sum_k w_k N(x_0; mu_k, s_k^2 I). Because the forward process
{eq}`eq-forward-closed-form` only scales x_0 and adds Gaussian noise,

    x_t = sqrt(alphabar_t) x_0 + sqrt(1 - alphabar_t) eps,

every marginal q(x_t) is again a mixture of Gaussians, and the noise predictor that
minimises L_simple {eq}`eq-loss-simple`, the conditional mean E[eps | x_t], has a closed
form (:func:`optimal_eps`). Driving the sampler of Algorithm 2 with it separates the
sampler's own errors from the network's: whatever is wrong with the samples is the
sampler's fault (for Gaussian data :func:`gaussian_sampler_variance` computes that error
exactly).
:func:`sliced_wasserstein`, :func:`mean_distance`, :func:`cov_distance`
and :func:`component_fractions` measure how close samples are to the data.

Timestep convention: the paper's t = 1..T; schedule arrays are indexed by t directly
(entry 0 stands for x_0, alphabar_0 = 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from .schedules import NoiseSchedule
from .validation import check_floating, check_int, check_same_shape, check_timesteps


@dataclass(frozen=True, kw_only=True, eq=False)  # eq=False: tensors have no truth value
class GaussianMixture:
    """q(x) = sum_k w_k N(x; mu_k, s_k^2 I): K isotropic Gaussian components in D dimensions.

    Attributes:
        weights: mixture weights w_k, shape (K,), positive, summing to 1.
        means: component means mu_k, shape (K, D).
        stds: component standard deviations s_k, shape (K,), positive.

    Tensors are stored as float64.
    """

    weights: torch.Tensor
    means: torch.Tensor
    stds: torch.Tensor

    def __post_init__(self) -> None:
        weights = torch.as_tensor(self.weights, dtype=torch.float64)
        means = torch.as_tensor(self.means, dtype=torch.float64)
        stds = torch.as_tensor(self.stds, dtype=torch.float64)
        if means.dim() != 2 or means.shape[0] < 1 or means.shape[1] < 1:
            raise ValueError(f"means must have shape (K, D) with K, D >= 1, got {tuple(means.shape)}")
        K = means.shape[0]
        if weights.shape != (K,):
            raise ValueError(f"weights must have shape (K,) = ({K},), got {tuple(weights.shape)}")
        if stds.shape != (K,):
            raise ValueError(f"stds must have shape (K,) = ({K},), got {tuple(stds.shape)}")
        if not bool((weights > 0).all()) or abs(float(weights.sum()) - 1.0) > 1e-6:
            raise ValueError(f"weights must be positive and sum to 1, got {weights.tolist()}")
        if not bool((stds > 0).all()):
            raise ValueError(f"stds must all be positive, got {stds.tolist()}")
        # A frozen dataclass keeps its fields fixed; store the float64 copies once.
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "stds", stds)

    @property
    def dim(self) -> int:
        """D, the dimension of x."""
        return int(self.means.shape[1])

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw n points: pick a component k with probability w_k, then x = mu_k + s_k z.

        Args:
            n: number of points, n >= 1.
            generator: random generator (CPU).

        Returns:
            float64 tensor of shape (n, D).
        """
        check_int("n", n, 1)
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)  # (n,)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return self.means[k] + self.stds[k, None] * z

    def component_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """log w_k + log N(x; mu_k, s_k^2 I) for every point and component.

        Args:
            x: floating tensor of shape (N, D).

        Returns:
            float64 tensor of shape (N, K).
        """
        x = _check_points("x", x, self.dim)
        sq_dist = ((x[:, None, :] - self.means[None, :, :]) ** 2).sum(-1)  # (N, K)
        var = self.stds**2  # (K,)
        log_normal = -0.5 * (sq_dist / var + self.dim * torch.log(2 * math.pi * var))
        return torch.log(self.weights) + log_normal

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log q(x) = logsumexp_k (log w_k + log N(x; mu_k, s_k^2 I)).

        Args:
            x: floating tensor of shape (N, D).

        Returns:
            float64 tensor of shape (N,).
        """
        return torch.logsumexp(self.component_log_probs(x), dim=-1)

    def responsibilities(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior component probabilities r_k(x) = w_k N(x; mu_k, s_k^2 I) / q(x), by Bayes.

        Args:
            x: floating tensor of shape (N, D).

        Returns:
            float64 tensor of shape (N, K); each row sums to 1.
        """
        return torch.softmax(self.component_log_probs(x), dim=-1)

    def marginal(self, alphabar: float) -> "GaussianMixture":
        """The law of x_t = sqrt(alphabar) x_0 + sqrt(1 - alphabar) eps when x_0 follows this mixture.

        Eq. {eq}`eq-forward-closed-form` applied to each component: component k becomes
        N(sqrt(alphabar) mu_k, (alphabar s_k^2 + 1 - alphabar) I), with the same weight.

        Args:
            alphabar: alphabar_t in (0, 1]; 1 gives back the data distribution.

        Returns:
            the mixture q(x_t).
        """
        if not 0.0 < alphabar <= 1.0:
            raise ValueError(f"alphabar must be in (0, 1], got {alphabar}")
        stds = torch.sqrt(alphabar * self.stds**2 + (1.0 - alphabar))
        return GaussianMixture(weights=self.weights, means=math.sqrt(alphabar) * self.means, stds=stds)


def ring_mixture(k: int = 8, radius: float = 0.7, std: float = 0.08) -> GaussianMixture:
    """K equally weighted Gaussians evenly spaced on a circle: the classic 2-D toy data set.

    With the defaults, every component lies within [-1, 1]^2 up to 3 standard deviations
    (0.7 + 3 x 0.08 = 0.94), the range the book's images are scaled to.

    Args:
        k: number of components, k >= 1.
        radius: radius of the circle, > 0.
        std: standard deviation of each component, > 0.

    Returns:
        the mixture.
    """
    check_int("k", k, 1)
    if not radius > 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    if not std > 0:
        raise ValueError(f"std must be > 0, got {std}")
    angles = 2 * math.pi * torch.arange(k, dtype=torch.float64) / k
    means = radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)  # (k, 2)
    return GaussianMixture(
        weights=torch.full((k,), 1.0 / k, dtype=torch.float64),
        means=means,
        stds=torch.full((k,), float(std), dtype=torch.float64),
    )


def optimal_x0(mixture: GaussianMixture, schedule: NoiseSchedule) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The exact denoiser E[x_0 | x_t] for mixture data, as a callable ``(x_t, t) -> x0_hat``.

    See :func:`optimal_eps` for the derivation. Timestep convention: t in 1..T (the paper's).

    Args:
        mixture: the data distribution q(x_0).
        schedule: the noise schedule.

    Returns:
        a function of (x_t of shape (B, D), long t of shape (B,) in 1..T) that returns
        E[x_0 | x_t] with x_t's shape and dtype.
    """

    def denoiser(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x0_hat, _ = _posterior_x0(mixture, schedule, x_t, t)
        return x0_hat.to(x_t.dtype)

    return denoiser


def optimal_eps(mixture: GaussianMixture, schedule: NoiseSchedule) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The exact minimiser of L_simple for mixture data: a model ``(x_t, t) -> E[eps | x_t]``.

    Derivation. Write a = alphabar_t. By {eq}`eq-forward-closed-form`,
    x_t = sqrt(a) x_0 + sqrt(1 - a) eps with eps ~ N(0, I) independent of x_0.

    1. Given component k (x_0 ~ N(mu_k, s_k^2 I)), x_t is Gaussian:
       x_t | k ~ N(sqrt(a) mu_k, v_k I) with v_k = a s_k^2 + 1 - a.
    2. So q(x_t) = sum_k w_k N(x_t; sqrt(a) mu_k, v_k I), and by Bayes the responsibilities
       are r_k(x_t) = w_k N(x_t; sqrt(a) mu_k, v_k I) / q(x_t), computed with logsumexp.
    3. Given k, (x_0, x_t) are jointly Gaussian with Cov(x_0, x_t) = sqrt(a) s_k^2 I, so
       E[x_0 | x_t, k] = mu_k + sqrt(a) s_k^2 / v_k (x_t - sqrt(a) mu_k).
    4. E[x_0 | x_t] = sum_k r_k(x_t) E[x_0 | x_t, k].
    5. eps = (x_t - sqrt(a) x_0) / sqrt(1 - a) is a linear function of x_0 once x_t is fixed,
       so E[eps | x_t] = (x_t - sqrt(a) E[x_0 | x_t]) / sqrt(1 - a), the inverse of
       {eq}`eq-x0-from-eps`.

    The mean squared error E||eps - f(x_t)||^2 is smallest for f(x_t) = E[eps | x_t], so no
    network trained on L_simple {eq}`eq-loss-simple` can do better than this function. It
    also equals -sqrt(1 - a) grad log q(x_t) (Tweedie's formula); the tests check that
    through autograd.

    Args:
        mixture: the data distribution q(x_0).
        schedule: the noise schedule.

    Returns:
        a model for :func:`ddpm_core.reverse.p_sample_loop`: a function of
        (x_t of shape (B, D), long t of shape (B,) in 1..T, the paper's convention) that returns
        E[eps | x_t] with x_t's shape and dtype. It computes in float64.
    """

    def model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x0_hat, a = _posterior_x0(mixture, schedule, x_t, t)
        x = x_t.to(torch.float64)
        eps = (x - torch.sqrt(a) * x0_hat) / torch.sqrt(1.0 - a)  # (B, D)
        return eps.to(x_t.dtype)

    return model


def _posterior_x0(
    mixture: GaussianMixture, schedule: NoiseSchedule, x_t: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """E[x_0 | x_t] (float64, (B, D)) and alphabar_t ((B, 1)); steps 1-4 of :func:`optimal_eps`."""
    x = _check_points("x_t", x_t, mixture.dim).cpu()  # (B, D)
    t = check_timesteps(t, schedule.T, x.shape[0]).cpu()
    a = schedule.alphas_cumprod[t][:, None]  # (B, 1)
    var = a * mixture.stds[None, :] ** 2 + (1.0 - a)  # v_k, (B, K)
    centred = x[:, None, :] - torch.sqrt(a)[:, :, None] * mixture.means[None, :, :]  # (B, K, D)
    sq_dist = (centred**2).sum(-1)  # (B, K)
    log_joint = torch.log(mixture.weights) - 0.5 * (sq_dist / var + mixture.dim * torch.log(2 * math.pi * var))
    resp = torch.softmax(log_joint, dim=-1)  # r_k(x_t), (B, K)
    gain = torch.sqrt(a) * mixture.stds[None, :] ** 2 / var  # (B, K)
    x0_given_k = mixture.means[None, :, :] + gain[:, :, None] * centred  # (B, K, D)
    x0_hat = (resp[:, :, None] * x0_given_k).sum(1)  # (B, D)
    return x0_hat.to(x_t.device), a.to(x_t.device)


def gaussian_sampler_variance(schedule: NoiseSchedule, data_var: float, variance: str = "beta") -> float:
    """Variance of Algorithm 2's output when the data are Gaussian and the model is exact.

    For data N(mu, s^2 I) (one component) the exact model is linear in x_t, so each
    sampling step {eq}`eq-sampling-step` is x_{t-1} = A_t x_t + c_t + sigma_t z with
    A_t = coef1_t sqrt(alphabar_t) s^2 / v_t + coef2_t, v_t = alphabar_t s^2 + 1 - alphabar_t,
    and coef1_t, coef2_t the posterior-mean coefficients of {eq}`eq-posterior-mean`.
    Starting from Var(x_T) = 1, the variance per coordinate obeys
    Var(x_{t-1}) = A_t^2 Var(x_t) + sigma_t^2, with sigma_1 = 0 at the last step.

    Even with the exact model the output is not exactly N(mu, s^2 I): sigma_t^2 = beta-tilde_t
    is the right reverse variance only for a single data point, sigma_t^2 = beta_t only for
    data N(0, I) (eq. {eq}`eq-reverse-variance`). The first under-disperses, the second
    over-disperses data in between; this function says by how much.

    Args:
        schedule: the noise schedule (t = 1..T, the paper's convention).
        data_var: s^2 >= 0, the data variance per coordinate.
        variance: ``"beta"`` or ``"beta_tilde"``, the sampler's sigma_t^2.

    Returns:
        Var(x_0) per coordinate of the samples, a Python float (compare with ``data_var``).
    """
    if variance not in ("beta", "beta_tilde"):
        raise ValueError(f"variance must be 'beta' or 'beta_tilde', got {variance!r}")
    if not data_var >= 0.0:
        raise ValueError(f"data_var must be >= 0, got {data_var}")
    sigma2 = schedule.betas if variance == "beta" else schedule.posterior_variance
    var_x = 1.0  # Var(x_T): the sampler starts from N(0, I)
    for t in range(schedule.T, 0, -1):
        a = float(schedule.alphas_cumprod[t])
        gain = math.sqrt(a) * data_var / (a * data_var + 1.0 - a)  # d E[x_0 | x_t] / d x_t
        A = float(schedule.posterior_mean_coef1[t]) * gain + float(schedule.posterior_mean_coef2[t])
        var_x = A * A * var_x + (float(sigma2[t]) if t > 1 else 0.0)
    return var_x


def sliced_wasserstein(
    a: torch.Tensor, b: torch.Tensor, n_projections: int = 256, generator: torch.Generator | None = None
) -> float:
    """Sliced 2-Wasserstein distance between two equally sized point clouds.

    Both clouds are projected onto ``n_projections`` random unit directions; in one
    dimension the optimal transport matches sorted values, so W_2^2 along a direction is
    the mean squared difference of the sorted projections. The result is the square root
    of the average over directions. It is 0 for identical clouds and grows when the
    distributions differ in location, spread or shape. Two independent samples of the same
    distribution give a small positive value (the sampling floor), so compare against that.

    Args:
        a: points, floating tensor of shape (N, D).
        b: points, floating tensor of shape (N, D) (same N).
        n_projections: number of random directions, >= 1.
        generator: random generator for the directions.

    Returns:
        the distance, a Python float.
    """
    check_floating("a", a)
    check_floating("b", b)
    if a.dim() != 2 or a.shape[0] < 1:
        raise ValueError(f"a must have shape (N, D) with N >= 1, got {tuple(a.shape)}")
    check_same_shape("a", a, "b", b)
    check_int("n_projections", n_projections, 1)
    directions = torch.randn(a.shape[1], n_projections, generator=generator, dtype=torch.float64)
    directions = directions / directions.norm(dim=0, keepdim=True)  # (D, P), unit columns
    proj_a = torch.sort(a.to(torch.float64).cpu() @ directions, dim=0).values  # (N, P)
    proj_b = torch.sort(b.to(torch.float64).cpu() @ directions, dim=0).values  # (N, P)
    return float(((proj_a - proj_b) ** 2).mean().sqrt())


def mean_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Euclidean distance between the sample means of two point clouds.

    Args:
        a: points of shape (N, D).
        b: points of shape (M, D).

    Returns:
        ||mean(a) - mean(b)||, a Python float.
    """
    a, b = _check_clouds(a, b)
    return float((a.mean(0) - b.mean(0)).norm())


def cov_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Frobenius norm of the difference between the sample covariances of two point clouds.

    Args:
        a: points of shape (N, D), N >= 2.
        b: points of shape (M, D), M >= 2.

    Returns:
        ||Cov(a) - Cov(b)||_F, a Python float.
    """
    a, b = _check_clouds(a, b)
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError(f"a and b need at least 2 points each, got {a.shape[0]} and {b.shape[0]}")
    return float((torch.cov(a.T) - torch.cov(b.T)).norm())


def component_fractions(mixture: GaussianMixture, x: torch.Tensor) -> torch.Tensor:
    """Fraction of the points nearest to each component mean (a hard assignment).

    For well separated components this estimates the weights w_k; compare it with
    ``mixture.weights`` within binomial standard errors sqrt(w (1 - w) / N).

    Args:
        mixture: the mixture whose means define the cells.
        x: points, floating tensor of shape (N, D).

    Returns:
        float64 tensor of shape (K,) summing to 1.
    """
    x = _check_points("x", x, mixture.dim)
    nearest = torch.cdist(x, mixture.means).argmin(dim=1)  # (N,)
    counts = torch.bincount(nearest, minlength=mixture.means.shape[0])
    return counts.to(torch.float64) / x.shape[0]


def _check_points(name: str, x: torch.Tensor, dim: int) -> torch.Tensor:
    check_floating(name, x)
    if x.dim() != 2 or x.shape[1] != dim:
        raise ValueError(f"{name} must have shape (N, {dim}), got {tuple(x.shape)}")
    return x.to(torch.float64)


def _check_clouds(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    check_floating("a", a)
    check_floating("b", b)
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1] or a.shape[0] < 1 or b.shape[0] < 1:
        raise ValueError(
            f"a and b must have shapes (N, D) and (M, D) with N, M >= 1, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    return a.to(torch.float64).cpu(), b.to(torch.float64).cpu()


__all__ = [
    "GaussianMixture",
    "ring_mixture",
    "optimal_eps",
    "optimal_x0",
    "gaussian_sampler_variance",
    "sliced_wasserstein",
    "mean_distance",
    "cov_distance",
    "component_fractions",
]
