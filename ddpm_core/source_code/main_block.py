"""What the source's ``if __name__ == "__main__":`` block binds: its schedule and settings.

SOURCE ISSUE 1: the source's functions read module globals (T, betas, sqrt_alphas_cumprod,
..., device, model) that it defines only under ``if __name__ == "__main__":``, so importing
the file leaves them undefined. Here :func:`make_source_globals` runs those lines and
:func:`use_source_globals` binds what they define in the two modules whose functions read
them (:mod:`~ddpm_core.source_code.process` and :mod:`~ddpm_core.source_code.training`;
in the source they share the one script's globals). Until then the names are unbound,
exactly as in the imported source.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import process, training
from .process import linear_beta_schedule

GLOBAL_NAMES = (
    "T",
    "betas",
    "alphas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "sqrt_recip_alphas",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "posterior_variance",
    "IMG_SIZE",
    "BATCH_SIZE",
    "device",
    "model",
)

# In the source one script's globals; here the two modules whose functions read them.
MODULES_READING_GLOBALS = (process, training)


@dataclass(frozen=True, kw_only=True, eq=False)  # eq=False: tensors have no truth value
class SourceGlobals:
    """The values the source's ``__main__`` block binds to module globals.

    Index i of every array is the source's timestep i in 0..T-1, which is the paper's
    t = i + 1 (the source's own comment: "The t's are offset from the t's in the paper").
    Unlike :class:`ddpm_core.NoiseSchedule` these arrays have length T, are float32, and
    have no entry for x_0.
    """

    T: int
    betas: torch.Tensor
    alphas: torch.Tensor
    alphas_cumprod: torch.Tensor
    alphas_cumprod_prev: torch.Tensor
    sqrt_recip_alphas: torch.Tensor
    sqrt_alphas_cumprod: torch.Tensor
    sqrt_one_minus_alphas_cumprod: torch.Tensor
    posterior_variance: torch.Tensor
    IMG_SIZE: int
    BATCH_SIZE: int
    device: str
    model: nn.Module | None


def make_source_globals(
    T: int = 300, *, img_size: int = 32, batch_size: int = 16, device: str = "cpu", model: nn.Module | None = None
) -> SourceGlobals:
    """Run the schedule lines of the source's ``__main__`` block and return what they bind.

    Args:
        T: number of diffusion steps (the source's value: 300).
        img_size: the source's ``IMG_SIZE`` (32).
        batch_size: the source's ``BATCH_SIZE`` (16).
        device: the source's ``device`` ("cuda" if available there, else "cpu").
        model: the network the source binds to the global ``model`` (a :class:`SimpleUnet`
            there); :func:`sample_timestep` calls it.

    Returns:
        the values, to pass to :func:`use_source_globals`.
    """
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be an integer >= 1, got {T!r}")
    for name, value in (("img_size", img_size), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    # The source's lines, unchanged (float32, length T, index i = paper's t = i + 1):
    betas = linear_beta_schedule(timesteps=T)
    alphas = 1.0 - betas
    alphas_cumprod = torch.cumprod(alphas, axis=0)
    alphas_cumprod_prev = F.pad(alphas_cumprod[:-1], (1, 0), value=1.0)
    sqrt_recip_alphas = torch.sqrt(1.0 / alphas)
    sqrt_alphas_cumprod = torch.sqrt(alphas_cumprod)
    sqrt_one_minus_alphas_cumprod = torch.sqrt(1.0 - alphas_cumprod)
    posterior_variance = betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)
    return SourceGlobals(
        T=T,
        betas=betas,
        alphas=alphas,
        alphas_cumprod=alphas_cumprod,
        alphas_cumprod_prev=alphas_cumprod_prev,
        sqrt_recip_alphas=sqrt_recip_alphas,
        sqrt_alphas_cumprod=sqrt_alphas_cumprod,
        sqrt_one_minus_alphas_cumprod=sqrt_one_minus_alphas_cumprod,
        posterior_variance=posterior_variance,
        IMG_SIZE=img_size,
        BATCH_SIZE=batch_size,
        device=device,
        model=model,
    )


def use_source_globals(g: SourceGlobals) -> None:
    """Bind the globals the source's functions read, as its ``__main__`` block does.

    They are bound in :mod:`~ddpm_core.source_code.process` and
    :mod:`~ddpm_core.source_code.training`, the modules whose functions read them.

    Args:
        g: the values, from :func:`make_source_globals`.
    """
    if not isinstance(g, SourceGlobals):
        raise ValueError(f"g must be a SourceGlobals from make_source_globals(), got {type(g).__name__}")
    for module in MODULES_READING_GLOBALS:
        for name in GLOBAL_NAMES:
            setattr(module, name, getattr(g, name))


def clear_source_globals() -> None:
    """Unbind the globals again: the state of the source file when it is imported."""
    for module in MODULES_READING_GLOBALS:
        for name in GLOBAL_NAMES:
            vars(module).pop(name, None)


__all__ = ["GLOBAL_NAMES", "SourceGlobals", "make_source_globals", "use_source_globals", "clear_source_globals"]
