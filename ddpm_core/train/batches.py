"""Where each step's images come from: batches drawn by a generator of the run's own.

Every step draws ``batch_size`` indices uniformly with replacement (and, with
``random_flip``, one coin per image for a horizontal flip) from a ``torch.Generator`` that
the checkpoints save. So a resumed run draws exactly the batches an uninterrupted one would,
and every process of a distributed run draws the same global batch and keeps its own slice
of it (:func:`rank_slice`): a run on two processes sees the same images as one on one.

A class-conditional network also gets each image's label, replaced by "no label" with
probability ``label_dropout`` (one more draw per image), so that the network learns the
unconditional prediction that classifier-free guidance needs.

Two sources, one stream:

* images in memory (the digits of ``data="offline"`` or ``"mnist"``), a float tensor in
  [-1, 1]: a batch is an index into it;
* a dataset read from disk (``"folder:PATH"``, ``"cifar10"``, ``"fashion-mnist"``,
  :mod:`ddpm_core.datasets`), uint8 images decoded by ``num_workers`` worker processes of a
  ``DataLoader``, which read ahead of the training. The indices are still drawn here, in the
  main process; the stream remembers the generator's state before each draw not yet
  trained on, and that is the state a checkpoint saves.
"""

from __future__ import annotations

from collections import deque

import torch
from torch.utils.data import DataLoader, Dataset


def rank_slice(batch_size: int, rank: int, world_size: int) -> slice:
    """The part of a global batch that process ``rank`` of ``world_size`` trains on."""
    per_rank = batch_size // world_size
    return slice(rank * per_rank, (rank + 1) * per_rank)


def draw_batch(n: int, batch_size: int, random_flip: bool, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices in 0..n-1, drawn with replacement, and which images to flip (all False without ``random_flip``)."""
    indices = torch.randint(0, n, (batch_size,), generator=generator)  # (B,)
    flips = torch.randint(0, 2, (batch_size,), generator=generator).bool() if random_flip \
        else torch.zeros(batch_size, dtype=torch.bool)
    return indices, flips


def to_model_range(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels in 0..255 to floats in [-1, 1], the range the model works in (x = p / 127.5 - 1)."""
    return pixels.to(torch.float32) / 127.5 - 1.0


class _Draws:
    """The batch sampler of a DataLoader: this process's slice of each global draw, as (index, flip) pairs."""

    def __init__(self, n: int, batch_size: int, random_flip: bool, generator: torch.Generator, part: slice):
        self.n, self.batch_size, self.random_flip, self.generator, self.part = n, batch_size, random_flip, generator, part
        self.states: deque[torch.Tensor] = deque()  # generator state before each draw not yet trained on

    def __iter__(self):
        while True:
            self.states.append(self.generator.get_state())
            indices, flips = draw_batch(self.n, self.batch_size, self.random_flip, self.generator)
            yield list(zip(indices[self.part].tolist(), flips[self.part].tolist()))


class _Flippable(Dataset):
    """A dataset of uint8 images indexed by (index, flip) pairs."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, bool]) -> torch.Tensor:
        index, flip = item
        image = self.dataset[index]  # (C, H, W) uint8
        return image.flip(-1) if flip else image


class BatchStream:
    """The training images of each step for one process, and the state that resumes them.

    Args:
        source: a float tensor (N, C, H, W) in [-1, 1], or a dataset of uint8 images (C, H, W).
        batch_size: the global batch (every process's slices together).
        random_flip: flip each image horizontally with probability 1/2.
        generator: the run's data generator (CPU); its state is what :meth:`generator_state` saves.
        num_workers: worker processes decoding a dataset (0: decode in this process).
        rank, world_size: this process and how many there are.
        pin_memory: page-locked batches, for a faster copy to a GPU.
        labels: the class of each in-memory image (N,), for a class-conditional network.
        label_dropout: the probability that an image's label is replaced by ``no_label``.
    """

    def __init__(self, source: torch.Tensor | Dataset, batch_size: int, random_flip: bool, generator: torch.Generator,
                 num_workers: int = 0, rank: int = 0, world_size: int = 1, pin_memory: bool = False,
                 labels: torch.Tensor | None = None, label_dropout: float = 0.0, no_label: int = -1):
        self.source, self.batch_size, self.random_flip, self.generator = source, batch_size, random_flip, generator
        self.labels, self.label_dropout, self.no_label = labels, label_dropout, no_label
        self.part = rank_slice(batch_size, rank, world_size)
        self.in_memory = isinstance(source, torch.Tensor)
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self._draws = self._batches = None

    def next(self) -> torch.Tensor:
        """This process's images of the next step, (B / world_size, C, H, W) floats in [-1, 1], on the CPU."""
        return self.next_with_labels()[0]

    def next_with_labels(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """This process's images of the next step and their labels (None without ``labels``)."""
        if self.in_memory:
            indices, flips = draw_batch(self.source.shape[0], self.batch_size, self.random_flip, self.generator)
            images = self.source[indices[self.part]]
            if self.random_flip:
                images = torch.where(flips[self.part, None, None, None], images.flip(-1), images)
            return images, self._labels_of(indices)
        if self._batches is None:
            self._start_loader()
        pixels = next(self._batches)
        self._draws.states.popleft()  # the state before this batch's draw: training has passed it
        return to_model_range(pixels), None

    def _labels_of(self, indices: torch.Tensor) -> torch.Tensor | None:
        """The labels of a global draw, some dropped to ``no_label``; this process's slice of them."""
        if self.labels is None:
            return None
        dropped = torch.rand(indices.shape[0], generator=self.generator) < self.label_dropout  # (B,)
        labels = torch.where(dropped, torch.full_like(self.labels[indices], self.no_label), self.labels[indices])
        return labels[self.part]

    def generator_state(self) -> torch.Tensor:
        """The data generator's state before the next batch to train on (what a checkpoint saves)."""
        if self._draws is not None and self._draws.states:
            return self._draws.states[0]  # the loader has drawn ahead; this is where training stands
        return self.generator.get_state()

    def _start_loader(self) -> None:
        self._draws = _Draws(len(self.source), self.batch_size, self.random_flip, self.generator, self.part)
        # The loader seeds its workers from a generator: give it one of its own, or it would take a
        # number from the global one and shift the t and eps that training draws from it.
        loader = DataLoader(_Flippable(self.source), batch_sampler=self._draws, num_workers=self.num_workers,
                            pin_memory=self.pin_memory, persistent_workers=self.num_workers > 0,
                            generator=torch.Generator().manual_seed(0))
        self._batches = iter(loader)
