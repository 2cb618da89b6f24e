"""Sample quality without downloads: a small MNIST classifier and the Frechet distance of its features.

The usual score for generated images, FID, compares Inception-v3 features and needs
weights from the internet. For MNIST digits a small CNN trained here on the offline
train split (:func:`ddpm_core.data.load_mnist_5k`, 4,500 digits) does the same job:

* **Frechet distance** {eq}`eq-frechet-distance` between Gaussians fitted to the
  classifier's penultimate features of generated and real digits (lower is better);
* **class entropy** of the predicted-class histogram, in bits (log2 10 = 3.32 when all
  ten digits appear equally often, 0 when the sampler only draws one digit);
* **confident share**: the fraction of samples the classifier is sure about (max
  probability >= 0.9), a rough "looks like some digit" rate.

A number alone means little, so :func:`quality_with_controls` also reports two controls
measured the same way: the floor (two disjoint sets of real digits) and pure noise.
These numbers compare samplers within the book; they are not on the scale of published
FID values, which use Inception features of 50,000 images.

The trained weights ship as ``assets/mnist_classifier.safetensors`` (no pickle) with a
JSON sidecar (config, command, held-out accuracy, date, seed). Rebuild them with::

    python -m ddpm_core.evaluation train-classifier --out ddpm_core/assets/mnist_classifier.safetensors
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .validation import check_floating

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
DEFAULT_WEIGHTS = ASSETS_DIR / "mnist_classifier.safetensors"
TRAIN_COMMAND = "python -m ddpm_core.evaluation train-classifier --out ddpm_core/assets/mnist_classifier.safetensors"


# ----------------------------------------------------------------------------------------
# The classifier


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
        if self.image_size < 8 or self.image_size % 8:
            raise ValueError(f"image_size must be a positive multiple of 8, got {self.image_size}")
        if len(self.channels) != 3 or min(self.channels) < 1:
            raise ValueError(f"channels must be three positive ints, got {self.channels}")
        if self.feature_dim < 1:
            raise ValueError(f"feature_dim must be >= 1, got {self.feature_dim}")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")


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
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.max_shift < 0:
            raise ValueError(f"max_shift must be >= 0, got {self.max_shift}")


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


# ----------------------------------------------------------------------------------------
# Training


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
    if max_shift < 0:
        raise ValueError(f"max_shift must be >= 0, got {max_shift}")
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
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
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


# ----------------------------------------------------------------------------------------
# Saving and loading the shipped weights (safetensors + JSON sidecar, no pickle)


def save_classifier(classifier: DigitClassifier, path: str | Path, card: dict) -> None:
    """Write the weights to ``path`` (safetensors) and ``card`` plus the config to ``path`` with ``.json``."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"path must end in .safetensors, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in classifier.state_dict().items()}
    save_file(state, str(path))
    card = {"config": dataclasses.asdict(classifier.config), **card}
    path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")


def read_classifier_card(path: str | Path = DEFAULT_WEIGHTS) -> dict:
    """The JSON sidecar of the weights at ``path``: config, training command, accuracy, date, seed."""
    sidecar = Path(path).with_suffix(".json")
    if not sidecar.exists():
        raise FileNotFoundError(f"no classifier card at {sidecar}; rebuild it with: {TRAIN_COMMAND}")
    return json.loads(sidecar.read_text())


def load_classifier(path: str | Path = DEFAULT_WEIGHTS) -> DigitClassifier:
    """Load the classifier shipped in ``ddpm_core/assets`` (or the one at ``path``), in eval mode.

    Args:
        path: a ``.safetensors`` file with a ``.json`` sidecar next to it.

    Returns:
        the :class:`DigitClassifier`, in eval mode.
    """
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no classifier weights at {path}; rebuild them with: {TRAIN_COMMAND}")
    cfg = read_classifier_card(path)["config"]
    cfg["channels"] = tuple(cfg["channels"])  # JSON has no tuples
    model = DigitClassifier(ClassifierConfig(**cfg))
    model.load_state_dict(load_file(str(path)))
    return model.eval()


# ----------------------------------------------------------------------------------------
# Metrics


def _as_float64_matrix(name: str, x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-d array of shape (N, D), got shape {x.shape}")
    if x.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 samples (rows) to estimate a covariance, got {x.shape[0]}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return x


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix via eigh."""
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T  # V diag(sqrt w) V^T


def frechet_distance(feats_a: torch.Tensor | np.ndarray, feats_b: torch.Tensor | np.ndarray) -> float:
    """Frechet (2-Wasserstein) distance between Gaussians fitted to two feature sets.

    Eq. {eq}`eq-frechet-distance`:
    d^2 = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2}),
    with mu the sample mean and S the sample covariance (divisor N - 1) of each set.
    Computed in float64. S_a S_b is not symmetric, so the trace of its square root is taken
    as Tr((S_a^{1/2} S_b S_a^{1/2})^{1/2}) -- the same eigenvalues, but of a symmetric
    positive semi-definite matrix, so ``eigh`` is stable. Rounding can leave a result of
    about -1e-12; it is clipped to 0.

    Args:
        feats_a: features (N_a, D), N_a >= 2.
        feats_b: features (N_b, D), N_b >= 2, same D.

    Returns:
        the squared distance d^2 >= 0 (the number FID reports).
    """
    a = _as_float64_matrix("feats_a", feats_a)
    b = _as_float64_matrix("feats_b", feats_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feats_a and feats_b must have the same feature dimension D, got {a.shape[1]} and {b.shape[1]}")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)  # (D,)
    s_a = np.cov(a, rowvar=False).reshape(a.shape[1], a.shape[1])  # (D, D); reshape for D = 1
    s_b = np.cov(b, rowvar=False).reshape(b.shape[1], b.shape[1])
    root_a = _psd_sqrt(s_a)
    middle = root_a @ s_b @ root_a  # S_a^{1/2} S_b S_a^{1/2}, symmetric PSD
    middle = (middle + middle.T) / 2  # remove rounding asymmetry
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh(middle), 0.0, None)).sum()  # Tr((S_a S_b)^{1/2})
    d2 = float(np.sum((mu_a - mu_b) ** 2) + np.trace(s_a) + np.trace(s_b) - 2.0 * tr_sqrt)
    return max(d2, 0.0)


def _check_probs(probs: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(probs, torch.Tensor):
        probs = probs.detach().cpu().numpy()
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 1 or p.shape[1] < 2:
        raise ValueError(f"probs must have shape (N, K) with N >= 1 and K >= 2 classes, got shape {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("probs must hold probabilities: finite, non-negative, each row summing to 1")
    return p


def class_entropy(probs: torch.Tensor | np.ndarray) -> float:
    """Entropy, in bits, of the histogram of predicted classes.

    H = -sum_k h_k log2 h_k, where h_k is the fraction of samples whose most probable
    class is k (0 log 0 = 0). H = log2 K (3.32 bits for 10 digits) when every class is
    predicted equally often and 0 when all samples fall in one class: a low value flags a
    sampler that draws only a few digits.

    Args:
        probs: class probabilities, shape (N, K), rows summing to 1.

    Returns:
        H in bits, between 0 and log2 K.
    """
    p = _check_probs(probs)
    counts = np.bincount(p.argmax(axis=1), minlength=p.shape[1])  # (K,)
    h = counts[counts > 0] / p.shape[0]
    return float((h * np.log2(1.0 / h)).sum())  # each term >= 0, so no -0.0


def confident_share(probs: torch.Tensor | np.ndarray, threshold: float = 0.9) -> float:
    """Fraction of samples the classifier is confident about: mean over n of [max_k p_nk >= threshold].

    Args:
        probs: class probabilities, shape (N, K), rows summing to 1.
        threshold: confidence level, strictly between 0 and 1.

    Returns:
        the share in [0, 1].
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be strictly between 0 and 1, got {threshold}")
    p = _check_probs(probs)
    return float((p.max(axis=1) >= threshold).mean())


def quality_report(
    generated: torch.Tensor, reference: torch.Tensor, classifier: DigitClassifier, threshold: float = 0.9
) -> dict:
    """Score generated digits against real ones with the classifier.

    Args:
        generated: generated images (N, 1, 32, 32) in [-1, 1], N >= 2.
        reference: real images (M, 1, 32, 32) in [-1, 1], M >= 2.
        classifier: a trained :class:`DigitClassifier` (e.g. :func:`load_classifier`).
        threshold: confidence level for :func:`confident_share`.

    Returns:
        dict with ``fd`` (:func:`frechet_distance` of the features, generated vs reference),
        ``class_entropy`` and ``confident_share`` of the generated images, ``class_counts``
        (how many generated images fall in each predicted class) and ``n_generated``,
        ``n_reference``.
    """
    feats_g, probs_g = classifier_outputs(generated, classifier)
    feats_r, _ = classifier_outputs(reference, classifier)
    counts = torch.bincount(probs_g.argmax(dim=1), minlength=probs_g.shape[1])
    return {
        "fd": frechet_distance(feats_g, feats_r),
        "class_entropy": class_entropy(probs_g),
        "confident_share": confident_share(probs_g, threshold),
        "class_counts": counts.tolist(),
        "n_generated": int(generated.shape[0]),
        "n_reference": int(reference.shape[0]),
    }


def quality_with_controls(
    generated: torch.Tensor,
    real_a: torch.Tensor,
    real_b: torch.Tensor,
    classifier: DigitClassifier,
    generator: torch.Generator | None = None,
    threshold: float = 0.9,
) -> dict:
    """:func:`quality_report` of ``generated`` vs ``real_a``, with a floor and a noise control.

    The Frechet distance of a finite sample is biased upwards, more so for small N, so a
    raw number needs its floor. ``fd_real_floor`` is the distance between two disjoint real
    sets (``real_b`` vs ``real_a``): what a perfect sampler would score. Give ``real_b`` as
    many images as ``generated`` so both carry the same small-sample bias. ``fd_noise`` is
    the distance of pure noise, N(0, 1) images clipped to [-1, 1] (as many as
    ``generated``), vs ``real_a``: what a sampler that learned nothing would score.

    Args:
        generated: generated images (N, 1, 32, 32) in [-1, 1].
        real_a: real reference images (M, 1, 32, 32).
        real_b: other real images, disjoint from ``real_a``, ideally N of them.
        classifier: a trained :class:`DigitClassifier`.
        generator: random generator for the noise control.
        threshold: confidence level for :func:`confident_share`.

    Returns:
        the :func:`quality_report` dict plus ``fd_real_floor``, ``fd_noise`` and
        ``noise_confident_share``.
    """
    report = quality_report(generated, real_a, classifier, threshold)
    feats_a, _ = classifier_outputs(real_a, classifier)
    feats_b, _ = classifier_outputs(real_b, classifier)
    noise = torch.randn(generated.shape, generator=generator).clamp(-1.0, 1.0)
    feats_n, probs_n = classifier_outputs(noise, classifier)
    report["fd_real_floor"] = frechet_distance(feats_b, feats_a)
    report["fd_noise"] = frechet_distance(feats_n, feats_a)
    report["noise_confident_share"] = confident_share(probs_n, threshold)
    return report


# ----------------------------------------------------------------------------------------
# Command line


def _train_cli(args: argparse.Namespace) -> None:
    from .data import load_mnist_5k

    config = ClassifierConfig()
    train_config = ClassifierTrainingConfig(epochs=args.epochs, seed=args.seed, num_threads=args.threads)
    x_train, y_train = load_mnist_5k("train")
    model = train_classifier(config, x_train, y_train, train_config, log_every=1)
    x_test, y_test = load_mnist_5k("test")
    acc = classifier_accuracy(model, x_test, y_test)
    print(f"held-out accuracy on load_mnist_5k('test') ({len(y_test)} digits): {acc:.4f}")
    command = TRAIN_COMMAND.replace("ddpm_core/assets/mnist_classifier.safetensors", str(args.out))
    defaults = ClassifierTrainingConfig()
    if args.epochs != defaults.epochs:
        command += f" --epochs {args.epochs}"
    if args.seed != defaults.seed:
        command += f" --seed {args.seed}"
    card = {
        "training": dataclasses.asdict(train_config),
        "train_data": f"load_mnist_5k('train'): {len(y_train)} digits",
        "command": command,
        "heldout_accuracy": acc,
        "heldout_data": f"load_mnist_5k('test'): {len(y_test)} digits, 50 per class, never trained on",
        "date": datetime.date.today().isoformat(),
        "seed": train_config.seed,
        "torch_version": torch.__version__,
    }
    save_classifier(model, args.out, card)
    print(f"wrote {args.out} and {Path(args.out).with_suffix('.json')}")


def _score_cli(args: argparse.Namespace) -> None:
    from .data import load_mnist_5k

    samples = torch.load(args.samples, weights_only=True)
    if not isinstance(samples, torch.Tensor):
        raise ValueError(f"{args.samples} must hold one tensor of images (N, 1, 32, 32)")
    x_test, _ = load_mnist_5k("test")
    x_train, _ = load_mnist_5k("train")
    perm = torch.randperm(x_train.shape[0], generator=torch.Generator().manual_seed(0))
    real_b = x_train[perm[: samples.shape[0]]]  # same count as the samples
    report = quality_with_controls(samples.float(), x_test, real_b, load_classifier(args.weights),
                                   generator=torch.Generator().manual_seed(0))
    print(json.dumps(report, indent=2))


def main(argv: list[str] | None = None) -> None:
    """``train-classifier`` rebuilds the shipped weights; ``score`` scores a ``.pt`` file of samples."""
    parser = argparse.ArgumentParser(prog="python -m ddpm_core.evaluation", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train-classifier", help="train the MNIST classifier on load_mnist_5k('train')")
    tr.add_argument("--out", default=str(DEFAULT_WEIGHTS), help="output .safetensors path")
    tr.add_argument("--epochs", type=int, default=ClassifierTrainingConfig().epochs)
    tr.add_argument("--seed", type=int, default=ClassifierTrainingConfig().seed)
    tr.add_argument("--threads", type=int, default=2)
    sc = sub.add_parser("score", help="score generated digits saved with torch.save (N, 1, 32, 32)")
    sc.add_argument("--samples", required=True)
    sc.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    args = parser.parse_args(argv)
    if args.command == "train-classifier":
        _train_cli(args)
    else:
        _score_cli(args)


if __name__ == "__main__":
    main()
