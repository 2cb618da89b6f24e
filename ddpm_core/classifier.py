"""A small MNIST digit classifier: the ruler :mod:`ddpm_core.evaluation` measures samples with.

FID compares Inception-v3 features and needs weights from the internet. For the book's
32 x 32 digits a small CNN trained on the offline train split
(:func:`ddpm_core.data.load_mnist_5k`, 4,500 digits) does the same job: its penultimate
features are what the Fréchet distance compares, its class probabilities what the class
entropy and the confident share count.

The trained weights ship as ``assets/mnist_classifier.safetensors`` with a JSON card
(config, command, held-out accuracy, date, seed), written and read by
:mod:`ddpm_core.weights`. Rebuild them with::

    python -m ddpm_core.evaluation train-classifier --out ddpm_core/assets/mnist_classifier.safetensors
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from .validation import check_floating, check_int, check_number
from .weights import ASSETS, load_tensors, save_tensors

DEFAULT_WEIGHTS = ASSETS / "mnist_classifier.safetensors"
TRAIN_COMMAND = "python -m ddpm_core.evaluation train-classifier --out ddpm_core/assets/mnist_classifier.safetensors"


@dataclass(frozen=True, kw_only=True)
class ClassifierConfig:
    """Shape of :class:`DigitClassifier`.

    Attributes:
        image_size: side of the square input images (32 for the book's padded MNIST).
        channels: output channels of the three conv blocks (each block halves the side).
        feature_dim: size of the penultimate feature vector used by the Frechet distance.
        num_classes: number of classes (10 digits).
    """

    image_size: int = 32
    channels: tuple[int, int, int] = (32, 64, 128)
    feature_dim: int = 64
    num_classes: int = 10

    def __post_init__(self) -> None:
        if check_int("image_size", self.image_size, 8) % 8:
            raise ValueError(f"image_size must be a positive multiple of 8, got {self.image_size}")
        if not (isinstance(self.channels, tuple) and len(self.channels) == 3):
            raise ValueError(f"channels must be a tuple of three integers >= 1, got {self.channels!r}")
        for c in self.channels:
            check_int("channels", c, 1)
        check_int("feature_dim", self.feature_dim, 1)
        check_int("num_classes", self.num_classes, 2)


@dataclass(frozen=True, kw_only=True)
class ClassifierTrainingConfig:
    """How :func:`train_classifier` trains.

    Attributes:
        epochs: passes over the training images.
        batch_size: images per step.
        lr: Adam learning rate (decayed to zero by a cosine schedule).
        max_shift: augmentation: each image is shifted by a random whole number of pixels
            in -max_shift..max_shift, vertically and horizontally (0 turns it off).
        seed: seeds the initial weights, the shuffling and the shifts.
        num_threads: CPU threads torch may use while training.
    """

    epochs: int = 20
    batch_size: int = 64
    lr: float = 3e-3
    max_shift: int = 2
    seed: int = 0
    num_threads: int = 2

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "num_threads"):
            check_int(name, getattr(self, name), 1)
        check_number("lr", self.lr, low=0, low_open=True)
        check_int("max_shift", self.max_shift, 0)
        check_int("seed", self.seed, 0)


class DigitClassifier(nn.Module):
    """A small CNN for (B, 1, 32, 32) digits in [-1, 1]: three conv blocks, a feature layer, logits.

    Each block is conv -> ReLU -> 2 x 2 max-pool (the first conv is 5 x 5, the others 3 x 3),
    so the side goes 32 -> 16 -> 8 -> 4. ``features(x)`` gives the penultimate vector
    (``config.feature_dim`` numbers per image) that the Frechet distance compares;
    ``forward(x)`` gives the class logits.
    """

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        c1, c2, c3 = config.channels
        self.convs = nn.Sequential(
            nn.Conv2d(1, c1, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        side = config.image_size // 8
        self.feature = nn.Linear(c3 * side * side, config.feature_dim)
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(config.feature_dim, config.num_classes)

    def _check_input(self, x: torch.Tensor) -> None:
        check_floating("x", x)
        s = self.config.image_size
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, s, s):
            raise ValueError(f"x must have shape (B, 1, {s}, {s}), got {tuple(x.shape)}")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features, shape (B, feature_dim), of images x of shape (B, 1, 32, 32)."""
        self._check_input(x)
        h = self.convs(x)  # (B, c3, 4, 4)
        h = h.flatten(1)  # (B, c3 * 4 * 4)
        return F.relu(self.feature(h))  # (B, feature_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, shape (B, num_classes), of images x of shape (B, 1, 32, 32)."""
        return self.head(self.dropout(self.features(x)))


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift each image by its own random offset in -max_shift..max_shift pixels (both axes).

    Pixels that move in from outside are background (-1); nothing wraps around.

    Args:
        x: images of shape (B, C, H, W) in [-1, 1].
        max_shift: largest shift in pixels (>= 0).
        generator: random generator for the offsets.

    Returns:
        shifted images with x's shape.
    """
    check_int("max_shift", max_shift, 0)
    check_floating("x", x)
    if x.dim() != 4:
        raise ValueError(f"x must have shape (B, C, H, W), got {tuple(x.shape)}")
    if max_shift == 0:
        return x
    B, C, H, W = x.shape
    m = max_shift
    padded = F.pad(x, (m, m, m, m), value=-1.0)  # (B, C, H + 2m, W + 2m)
    top = torch.randint(0, 2 * m + 1, (B,), generator=generator)  # crop corner: shift = m - top
    left = torch.randint(0, 2 * m + 1, (B,), generator=generator)
    rows = top[:, None] + torch.arange(H)  # (B, H)
    cols = left[:, None] + torch.arange(W)  # (B, W)
    b = torch.arange(B)[:, None, None, None]  # (B, 1, 1, 1)
    c = torch.arange(C)[None, :, None, None]  # (1, C, 1, 1)
    return padded[b, c, rows[:, None, :, None], cols[:, None, None, :]]  # (B, C, H, W)


def _check_images_labels(images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> None:
    check_floating("images", images)
    if images.dim() != 4 or images.shape[1] != 1:
        raise ValueError(f"images must have shape (N, 1, H, W), got {tuple(images.shape)}")
    if labels.shape != (images.shape[0],) or torch.is_floating_point(labels):
        raise ValueError(f"labels must be an integer tensor of shape ({images.shape[0]},), got "
                         f"{labels.dtype} of shape {tuple(labels.shape)}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"labels must be in 0..{num_classes - 1}")


def train_classifier(
    config: ClassifierConfig,
    images: torch.Tensor,
    labels: torch.Tensor,
    train_config: ClassifierTrainingConfig = ClassifierTrainingConfig(),
    log_every: int = 0,
) -> DigitClassifier:
    """Train a :class:`DigitClassifier` with cross-entropy, Adam and random +-max_shift pixel shifts.

    Seeded by ``train_config.seed``: the same call gives the same weights on the same machine.
    Sets ``torch.set_num_threads(train_config.num_threads)`` for the duration of the call.

    Args:
        config: the network's shape.
        images: training images, float tensor (N, 1, 32, 32) in [-1, 1].
        labels: their classes, long tensor (N,) in 0..num_classes-1.
        train_config: epochs, batch size, learning rate, shift, seed, threads.
        log_every: print the mean loss every this many epochs (0: silent).

    Returns:
        the trained classifier, in eval mode.
    """
    _check_images_labels(images, labels, config.num_classes)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(train_config.num_threads)
    try:
        torch.manual_seed(train_config.seed)  # initial weights and dropout masks
        gen = torch.Generator().manual_seed(train_config.seed)  # shuffling and shifts
        model = DigitClassifier(config)
        opt = torch.optim.Adam(model.parameters(), lr=train_config.lr)
        n = images.shape[0]
        steps_per_epoch = math.ceil(n / train_config.batch_size)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=train_config.epochs * steps_per_epoch)
        model.train()
        for epoch in range(train_config.epochs):
            order = torch.randperm(n, generator=gen)
            total = 0.0
            for start in range(0, n, train_config.batch_size):
                idx = order[start:start + train_config.batch_size]
                x = random_shift(images[idx], train_config.max_shift, generator=gen)
                loss = F.cross_entropy(model(x), labels[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                total += loss.item() * idx.numel()
            if log_every and (epoch + 1) % log_every == 0:
                print(f"epoch {epoch + 1}/{train_config.epochs}  loss {total / n:.4f}", flush=True)
    finally:
        torch.set_num_threads(old_threads)
    return model.eval()


@torch.no_grad()
def classifier_outputs(
    images: torch.Tensor, classifier: DigitClassifier, batch_size: int = 500
) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate features and class probabilities of ``images``, computed in eval mode.

    Args:
        images: float tensor (N, 1, 32, 32), digits in [-1, 1].
        classifier: a trained :class:`DigitClassifier`.
        batch_size: images per forward pass.

    Returns:
        (features, probs): float32 tensors (N, feature_dim) and (N, num_classes).
    """
    check_int("batch_size", batch_size, 1)
    check_floating("images", images)
    was_training = classifier.training
    classifier.eval()
    feats, probs = [], []
    try:
        for start in range(0, images.shape[0], batch_size):
            x = images[start:start + batch_size].float()
            f = classifier.features(x)  # (b, feature_dim)
            feats.append(f)
            probs.append(torch.softmax(classifier.head(f), dim=1))  # (b, num_classes)
    finally:
        classifier.train(was_training)
    return torch.cat(feats), torch.cat(probs)


def classifier_accuracy(classifier: DigitClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of ``images`` whose most probable class equals ``labels``."""
    _check_images_labels(images, labels, classifier.config.num_classes)
    _, probs = classifier_outputs(images, classifier)
    return int((probs.argmax(dim=1) == labels).sum()) / labels.shape[0]


def save_classifier(classifier: DigitClassifier, path: str | Path, card: dict) -> None:
    """Write the weights to ``path`` (safetensors) and ``card`` plus the config to ``path`` with ``.json``."""
    save_tensors(path, classifier.state_dict(), {"config": dataclasses.asdict(classifier.config), **card})


def read_classifier_card(path: str | Path = DEFAULT_WEIGHTS) -> dict:
    """The JSON card of the weights at ``path``: config, training command, accuracy, date, seed."""
    return _load(path)[1]


def load_classifier(path: str | Path = DEFAULT_WEIGHTS) -> DigitClassifier:
    """Load the classifier shipped in ``ddpm_core/assets`` (or the one at ``path``), in eval mode.

    Args:
        path: a ``.safetensors`` file with a ``.json`` card next to it.

    Returns:
        the :class:`DigitClassifier`, in eval mode.
    """
    tensors, card = _load(path)
    cfg = dict(card["config"], channels=tuple(card["config"]["channels"]))  # JSON has no tuples
    model = DigitClassifier(ClassifierConfig(**cfg))
    model.load_state_dict(tensors)
    return model.eval()


def _load(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors and card at ``path``; ``FileNotFoundError`` saying how to rebuild them if either is missing."""
    path = Path(path)
    for needed in (path, path.with_suffix(".json")):
        if not needed.exists():
            raise FileNotFoundError(f"no classifier weights at {needed}; rebuild them with: {TRAIN_COMMAND}")
    return load_tensors(path)
