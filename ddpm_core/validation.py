"""Argument checks shared by the math functions.

Every public function of ``ddpm_core`` checks what a learner is likely to get wrong
(a timestep outside 1..T, integer images, mismatched shapes) and raises a ``ValueError``
that names the argument and says what is allowed.
"""

from __future__ import annotations

import math
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
    integer tensor with one timestep per example. Checking the range reads a tensor's values
    back, which makes the CPU wait for the GPU: call it once per public call, never per step.
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


def check_int(name: str, value: object, minimum: int = 0, maximum: int | None = None) -> int:
    """Return ``value`` as an int, raising ``ValueError`` unless it is an integer in [minimum, maximum].

    Python and NumPy integers pass; bools, floats (even 2.0) and strings do not.
    """
    allowed = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
    integer = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not integer or value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be an integer {allowed}, got {value!r}")
    return int(value)


def check_number(name: str, value: object, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> float:
    """Return ``value`` as a float, raising ``ValueError`` unless it is a finite real number in the range.

    ``low`` and ``high`` bound it (None: no bound); ``low_open``/``high_open`` exclude the bound
    itself. Bools and strings do not pass.
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        bounds = []
        if low is not None:
            bounds.append(f"{'>' if low_open else '>='} {low}")
        if high is not None:
            bounds.append(f"{'<' if high_open else '<='} {high}")
        allowed = f"a finite number {' and '.join(bounds)}".rstrip()
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return float(value)


def check_choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    """Return ``value``, raising ``ValueError`` unless it is one of ``allowed``."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")
    return value
