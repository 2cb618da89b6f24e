"""Argument checks shared by the math functions.

Every public function of ``ddpm_core`` checks what a learner is likely to get wrong
(a timestep outside 1..T, integer images, mismatched shapes) and raises a ``ValueError``
that names the argument and says what is allowed.
"""

from __future__ import annotations

import numbers

import torch


def check_floating(name: str, x: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``x`` is a floating-point tensor."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise ValueError(
            f"{name} must be a floating-point tensor (e.g. torch.float32), got dtype {x.dtype}; "
            f"convert images with .float() and scale them to [-1, 1]"
        )


def check_same_shape(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` have the same shape."""
    if a.shape != b.shape:
        raise ValueError(
            f"{name_b} must have the same shape as {name_a}: "
            f"{name_a} has shape {tuple(a.shape)}, {name_b} has shape {tuple(b.shape)}"
        )


def check_timesteps(t: torch.Tensor | int, T: int, batch_size: int, name: str = "t") -> torch.Tensor:
    """Return ``t`` as a ``(batch_size,)`` long tensor, checking that every entry is in 1..T.

    ``t`` may be a Python int (the same step for the whole batch), a 0-d tensor, or a 1-d
    integer tensor with one timestep per example.
    """
    if isinstance(t, bool):
        raise ValueError(f"{name} must be an integer timestep in 1..{T}, got a bool")
    if isinstance(t, numbers.Integral):  # a Python or NumPy integer
        t = torch.full((batch_size,), int(t), dtype=torch.long)
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be an int or an integer torch.Tensor, got {type(t).__name__}")
    if torch.is_floating_point(t) or t.dtype == torch.bool or torch.is_complex(t):
        raise ValueError(f"{name} must hold integer timesteps in 1..{T}, got dtype {t.dtype}")
    if t.dim() == 0:
        t = t.expand(batch_size)
    if t.dim() != 1 or t.shape[0] != batch_size:
        raise ValueError(
            f"{name} must be an int or a 1-d tensor with one timestep per example "
            f"(batch size {batch_size}), got shape {tuple(t.shape)}"
        )
    if t.numel() and (int(t.min()) < 1 or int(t.max()) > T):
        raise ValueError(
            f"{name} must be in 1..{T} (the paper's convention: t = 1 is the first noising step, "
            f"t = T the last), got values from {int(t.min())} to {int(t.max())}"
        )
    return t.long()
