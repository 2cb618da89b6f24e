"""Noise schedules: the betas and every quantity derived from them.

Timestep convention (the same in the whole book): the paper's t = 1..T. Every array of a
:class:`NoiseSchedule` has length T + 1 and is indexed by t directly. Entry 0 stands for
x_0 itself: beta_0 = 0, alpha_0 = 1, alphabar_0 = 1. Quantities that do not exist at
t = 0 (the posterior q(x_{-1} | x_0, x_0) makes no sense) hold NaN there, so that reading
them by mistake shows up instead of passing silently.

Everything is computed in float64 and cast to the data's dtype only where it is used.
"""

from __future__ import annotations

import copy
import math

import torch

from .validation import check_int, check_number, check_timesteps


def linear_beta_schedule(T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Ho et al.'s linear schedule: beta_1..beta_T evenly spaced from ``beta_start`` to ``beta_end``.

    Args:
        T: number of diffusion steps (at least 1).
        beta_start: beta_1, in (0, 1).
        beta_end: beta_T, in (0, 1).

    Returns:
        float64 tensor of shape (T,) holding beta_1..beta_T (not indexed by t: pass it to
        :class:`NoiseSchedule`, which adds the entry for t = 0).
    """
    _check_T(T)
    for name, value in (("beta_start", beta_start), ("beta_end", beta_end)):
        if not 0.0 < value < 1.0:
            raise ValueError(f"{name} must be in (0, 1), got {value}")
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)


def cosine_beta_schedule(T: int, s: float = 0.008) -> torch.Tensor:
    """Nichol & Dhariwal's cosine schedule, defined through alphabar_t = f(t) / f(0).

    f(t) = cos^2(((t / T + s) / (1 + s)) * pi / 2) and beta_t = 1 - alphabar_t / alphabar_{t-1},
    clipped to at most 0.999 to avoid a singularity at t = T.

    Args:
        T: number of diffusion steps (at least 1).
        s: small offset that keeps beta_1 from being too small, s >= 0.

    Returns:
        float64 tensor of shape (T,) holding beta_1..beta_T.
    """
    _check_T(T)
    check_number("s", s, low=0)
    steps = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos(((steps / T + s) / (1 + s)) * math.pi / 2) ** 2
    alphas_cumprod = f / f[0]
    betas = 1.0 - alphas_cumprod[1:] / alphas_cumprod[:-1]
    return betas.clamp(max=0.999)


SCHEDULE_NAMES = ("linear", "cosine")


class NoiseSchedule:
    """Every schedule quantity of DDPM, as float64 tensors of length T + 1 indexed by t.

    Built from beta_1..beta_T. Attribute names follow the reference implementations
    (Ho et al.'s ``diffusion_utils_2.py``, OpenAI's ``gaussian_diffusion.py``).

    Attributes:
        T: number of diffusion steps.
        betas: beta_t, the variance of step t, eq. {eq}`eq-forward-step`.
        alphas: alpha_t = 1 - beta_t.
        alphas_cumprod: alphabar_t = alpha_1 ... alpha_t, eq. {eq}`eq-alphabar`.
        alphas_cumprod_prev: alphabar_{t-1} (NaN at t = 0).
        sqrt_alphas_cumprod, sqrt_one_minus_alphas_cumprod: the two coefficients of the
            closed form {eq}`eq-forward-closed-form`.
        log_one_minus_alphas_cumprod: log(1 - alphabar_t) (-inf at t = 0).
        sqrt_recip_alphas_cumprod, sqrt_recipm1_alphas_cumprod: 1/sqrt(alphabar_t) and
            sqrt(1/alphabar_t - 1), used to recover x_0 from epsilon, eq. {eq}`eq-x0-from-eps`.
        posterior_variance: beta-tilde_t, eq. {eq}`eq-posterior-variance` (NaN at t = 0, 0 at t = 1).
        posterior_log_variance_clipped: log beta-tilde_t with the t = 1 entry (log 0) replaced
            by the t = 2 value, as in the reference code.
        posterior_mean_coef1, posterior_mean_coef2: the coefficients of x_0 and x_t in the
            posterior mean mu-tilde_t, eq. {eq}`eq-posterior-mean`.
    """

    def __init__(self, betas: torch.Tensor):
        betas = torch.as_tensor(betas, dtype=torch.float64)
        if betas.dim() != 1 or betas.numel() < 1:
            raise ValueError(f"betas must be a 1-d tensor of beta_1..beta_T with T >= 1, got shape {tuple(betas.shape)}")
        if not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError(
                f"betas must all be in (0, 1), got values from {float(betas.min())} to {float(betas.max())}"
            )
        self.T = int(betas.numel())
        nan = torch.tensor([math.nan], dtype=torch.float64)

        # Index 0 is x_0 itself: beta_0 = 0, so alpha_0 = alphabar_0 = 1.
        self.betas = torch.cat([torch.zeros(1, dtype=torch.float64), betas])
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self.alphas_cumprod_prev = torch.cat([nan, self.alphas_cumprod[:-1]])

        self.sqrt_alphas_cumprod = torch.sqrt(self.alphas_cumprod)
        self.sqrt_one_minus_alphas_cumprod = torch.sqrt(1.0 - self.alphas_cumprod)
        self.log_one_minus_alphas_cumprod = torch.log(1.0 - self.alphas_cumprod)
        self.sqrt_recip_alphas_cumprod = torch.sqrt(1.0 / self.alphas_cumprod)
        self.sqrt_recipm1_alphas_cumprod = torch.sqrt(1.0 / self.alphas_cumprod - 1.0)

        # q(x_{t-1} | x_t, x_0): beta-tilde_t and the two mean coefficients (NaN at t = 0).
        one_minus_abar = 1.0 - self.alphas_cumprod
        self.posterior_variance = self.betas * (1.0 - self.alphas_cumprod_prev) / one_minus_abar
        self.posterior_mean_coef1 = self.betas * torch.sqrt(self.alphas_cumprod_prev) / one_minus_abar
        self.posterior_mean_coef2 = torch.sqrt(self.alphas) * (1.0 - self.alphas_cumprod_prev) / one_minus_abar
        # beta-tilde_1 = 0, so its log is -inf; the reference code uses beta-tilde_2 there.
        # (With T = 1 there is no t = 2, and beta_1 stands in.)
        log_var = self.posterior_variance.clone()
        log_var[1] = self.posterior_variance[2] if self.T >= 2 else self.betas[1]
        self.posterior_log_variance_clipped = torch.log(log_var)

    @classmethod
    def linear(cls, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> "NoiseSchedule":
        """The schedule of Ho et al. (2020): :func:`linear_beta_schedule`."""
        return cls(linear_beta_schedule(T, beta_start, beta_end))

    @classmethod
    def cosine(cls, T: int = 1000, s: float = 0.008) -> "NoiseSchedule":
        """The schedule of Nichol & Dhariwal (2021): :func:`cosine_beta_schedule`."""
        return cls(cosine_beta_schedule(T, s))

    @classmethod
    def named(cls, name: str, T: int = 1000) -> "NoiseSchedule":
        """The schedule called ``name``: ``"linear"`` (:meth:`linear`) or ``"cosine"`` (:meth:`cosine`)."""
        if name not in SCHEDULE_NAMES:
            raise ValueError(f"schedule must be one of {SCHEDULE_NAMES}, got {name!r}")
        return cls.linear(T) if name == "linear" else cls.cosine(T)

    def to(self, device: torch.device | str) -> "NoiseSchedule":
        """This schedule with every array on ``device`` (still float64); ``self`` if they are there already.

        A sampler moves the schedule once, before its loop, so that :func:`extract` finds the
        arrays on the batch's device and copies nothing at each step.
        """
        moved = copy.copy(self)
        for name, value in vars(self).items():
            if isinstance(value, torch.Tensor):
                setattr(moved, name, value.to(device))
        # Tensor.to returns the tensor itself when it is already on the device.
        return self if moved.betas is self.betas else moved

    def snr(self) -> torch.Tensor:
        """Signal-to-noise ratio alphabar_t / (1 - alphabar_t), length T + 1 (inf at t = 0)."""
        return self.alphas_cumprod / (1.0 - self.alphas_cumprod)

    def __repr__(self) -> str:
        return (
            f"NoiseSchedule(T={self.T}, beta_1={float(self.betas[1]):.3g}, "
            f"beta_T={float(self.betas[-1]):.3g}, alphabar_T={float(self.alphas_cumprod[-1]):.3g})"
        )


def extract(values: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Read ``values[t]`` for each example and shape it to broadcast against ``x``.

    Args:
        values: a schedule array of length T + 1, indexed by t.
        t: long tensor of shape (B,), already checked to be in range.
        x: the batch the result will multiply, shape (B, ...).

    Returns:
        tensor of shape (B, 1, ..., 1) with x's dtype and device.
    """
    if values.device != x.device:  # a schedule not moved with NoiseSchedule.to: copied at each call
        values = values.to(x.device)
    out = values[t.to(x.device)].to(x.dtype)
    return out.reshape(x.shape[0], *([1] * (x.dim() - 1)))  # (B, 1, 1, 1) for images


def _check_T(T: int) -> None:
    check_int("T", T, 1)


__all__ = [
    "linear_beta_schedule",
    "cosine_beta_schedule",
    "NoiseSchedule",
    "extract",
    "check_timesteps",
]
