"""The x_0 an explorer starts from: a held-out digit chosen by its index, or a digit the learner
draws on a grid of squares; and the noise eps, fixed by a seed so that "same noise" means it.

The held-out digits are the 500 of ``load_mnist_5k("test")``, never used for training anywhere
in the book. A drawing is a 14 x 14 grid of on/off squares; each square becomes 2 x 2 pixels of
a 28 x 28 digit, padded to 32 x 32 as the data are (:func:`ddpm_core.data.pixels_to_model_range`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import torch

from ..data import load_mnist_5k, pixels_to_model_range
from ..validation import check_int

DRAWING_SIZE = 14  # squares per side of the drawing grid; each is 2 x 2 pixels of the 28 x 28 digit


@lru_cache(maxsize=1)
def _held_out() -> torch.Tensor:
    """The 500 held-out digits, (500, 1, 32, 32) float32, read once."""
    return load_mnist_5k("test")[0]


def held_out_count() -> int:
    """How many held-out digits there are (500)."""
    return _held_out().shape[0]


def held_out_digit(index: int) -> torch.Tensor:
    """Held-out digit ``index`` (0..499) as x_0: float64 of shape (1, 1, 32, 32) in [-1, 1]."""
    digits = _held_out()
    index = check_int("index", index, 0, digits.shape[0] - 1)
    return digits[index : index + 1].double()


def fixed_noise(x0: torch.Tensor, seed: int) -> torch.Tensor:
    """eps ~ N(0, I) shaped like ``x0`` (and of its dtype), drawn from ``seed``: the same seed, the same noise."""
    generator = torch.Generator().manual_seed(check_int("seed", seed))
    return torch.randn(x0.shape, generator=generator, dtype=x0.dtype)


def drawing_to_image(squares: Sequence[Sequence[bool]] | torch.Tensor) -> torch.Tensor:
    """A drawing as x_0: a 14 x 14 grid of on/off squares to float64 (1, 1, 32, 32) in [-1, 1].

    Args:
        squares: 14 rows of 14 truth values (True: ink), or a bool tensor (14, 14).

    Returns:
        the digit, ink at +1 and background at -1, like the data.

    Raises:
        ValueError: the grid is not 14 x 14, or it is empty (nothing drawn).
    """
    grid = torch.as_tensor(squares, dtype=torch.bool) if not isinstance(squares, torch.Tensor) else squares.bool()
    if grid.shape != (DRAWING_SIZE, DRAWING_SIZE):
        raise ValueError(f"squares must be a {DRAWING_SIZE} x {DRAWING_SIZE} grid, got shape {tuple(grid.shape)}")
    if not bool(grid.any()):
        raise ValueError("the drawing is empty: click some squares to draw a digit")
    pixels = grid.repeat_interleave(2, 0).repeat_interleave(2, 1).to(torch.uint8) * 255  # (28, 28)
    return pixels_to_model_range(pixels[None]).double()  # (1, 1, 32, 32)


__all__ = ["DRAWING_SIZE", "held_out_count", "held_out_digit", "fixed_noise", "drawing_to_image"]
