"""Sample quality without downloads: the Fréchet distance of a small classifier's features, and two counts.

For MNIST digits, the small CNN of :mod:`ddpm_core.classifier` stands in for FID's Inception-v3:

* **Fréchet distance** {eq}`eq-frechet-distance` between Gaussians fitted to the
  classifier's penultimate features of generated and real digits (lower is better);
* **class entropy** of the predicted-class histogram, in bits (log2 10 = 3.32 when all
  ten digits appear equally often, 0 when the sampler only draws one digit);
* **confident share**: the fraction of samples the classifier is sure about (max
  probability >= 0.9), a rough "looks like some digit" rate.

A number alone means little, so :func:`quality_with_controls` also reports two controls
measured the same way: the floor (two disjoint sets of real digits) and pure noise.
These numbers compare samplers within the book; they are not on the scale of published
FID values, which use Inception features of 50,000 images.

Command line::

    python -m ddpm_core.evaluation train-classifier --out ddpm_core/assets/mnist_classifier.safetensors
    python -m ddpm_core.evaluation score --samples samples.pt
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
from pathlib import Path

import numpy as np
import torch

from .classifier import (
    DEFAULT_WEIGHTS,
    TRAIN_COMMAND,
    ClassifierConfig,
    ClassifierTrainingConfig,
    DigitClassifier,
    classifier_accuracy,
    classifier_outputs,
    load_classifier,
    save_classifier,
    train_classifier,
)
from .validation import check_number


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
    check_number("threshold", threshold, low=0, high=1, low_open=True, high_open=True)
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


# ----------------------------------------------------------------------------- command line


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
