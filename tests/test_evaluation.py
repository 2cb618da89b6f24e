"""Tests for ddpm_core.evaluation: the Frechet distance against closed forms and an
independent scipy route, the class-histogram metrics on crafted probabilities, and the
shipped classifier on the 500 held-out digits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from ddpm_core.data import load_mnist_5k
from ddpm_core.classifier import (
    ClassifierConfig,
    ClassifierTrainingConfig,
    DigitClassifier,
    classifier_accuracy,
    classifier_outputs,
    load_classifier,
    random_shift,
    read_classifier_card,
    train_classifier,
)
from ddpm_core.evaluation import class_entropy, confident_share, frechet_distance, quality_report, quality_with_controls


def exact_moments(rng: np.random.Generator, n: int, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """n samples whose sample mean is exactly ``mean`` and sample covariance exactly ``cov``."""
    z = rng.standard_normal((n, len(mean)))
    z -= z.mean(axis=0)
    d = len(mean)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False).reshape(d, d))).T  # sample cov = I
    return mean + z @ np.linalg.cholesky(cov).T


def frechet_scipy(a: np.ndarray, b: np.ndarray) -> float:
    """Independent reference: the textbook formula with scipy.linalg.sqrtm of S_a S_b."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(s_a @ s_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * root))


# load_mnist_5k takes seconds, so each split is loaded once per module.


@pytest.fixture(scope="module")
def shipped():
    return load_classifier()


@pytest.fixture(scope="module")
def test_digits():
    return load_mnist_5k("test")


@pytest.fixture(scope="module")
def train_digits():
    return load_mnist_5k("train")


# ---------------------------------------------------------------- frechet_distance


def test_fd_closed_form_diagonal():
    # Sample moments are set exactly, so fd must equal ||dmu||^2 + sum (s_a - s_b)^2.
    rng = np.random.default_rng(0)
    mu_a, mu_b = np.array([0.0, 1.0, -2.0, 0.5]), np.array([1.0, 1.0, 0.0, -0.5])
    s_a, s_b = np.array([1.0, 2.0, 0.5, 3.0]), np.array([2.0, 0.5, 0.5, 1.0])  # standard deviations
    a = exact_moments(rng, 300, mu_a, np.diag(s_a**2))
    b = exact_moments(rng, 200, mu_b, np.diag(s_b**2))
    expected = ((mu_a - mu_b) ** 2).sum() + ((s_a - s_b) ** 2).sum()  # = 6 + 7.25
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-10)
    assert expected == pytest.approx(13.25)


def test_fd_one_dimension():
    rng = np.random.default_rng(1)
    a = exact_moments(rng, 50, np.array([2.0]), np.array([[9.0]]))
    b = exact_moments(rng, 80, np.array([-1.0]), np.array([[1.0]]))
    assert frechet_distance(a, b) == pytest.approx(3.0**2 + (3.0 - 1.0) ** 2, rel=1e-10)


def test_fd_matches_scipy_for_full_covariances():
    rng = np.random.default_rng(2)
    d = 6
    m_a, m_b = rng.standard_normal((d, d)), rng.standard_normal((d, d))
    a = exact_moments(rng, 400, rng.standard_normal(d), m_a @ m_a.T + 0.1 * np.eye(d))
    b = exact_moments(rng, 400, rng.standard_normal(d), m_b @ m_b.T + 0.1 * np.eye(d))
    assert frechet_distance(a, b) == pytest.approx(frechet_scipy(a, b), rel=1e-8)


def test_fd_identical_sets_and_same_gaussian():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((500, 8)) @ rng.standard_normal((8, 8))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    # Two independent samples of N(0, I_4), N = 20000: the expected value is about
    # 2D/N (means) + D(D+1)/(4N) (covariances) ~ 6e-4; a wrong formula gives O(1).
    x, y = rng.standard_normal((20000, 4)), rng.standard_normal((20000, 4))
    assert frechet_distance(x, y) < 5e-3


def test_fd_symmetric_nonnegative_and_accepts_tensors():
    rng = np.random.default_rng(4)
    for _ in range(5):
        a = rng.standard_normal((60, 5)) * rng.uniform(0.1, 3.0, 5) + rng.standard_normal(5)
        b = rng.standard_normal((40, 5)) @ rng.standard_normal((5, 5))
        d_ab, d_ba = frechet_distance(a, b), frechet_distance(b, a)
        assert d_ab == pytest.approx(d_ba, rel=1e-9)
        assert d_ab > 0
        assert frechet_distance(torch.from_numpy(a).float(), torch.from_numpy(b).float()) == pytest.approx(d_ab, rel=1e-4)
    # Rank-deficient covariances (N < D) still give a finite value (the function returns at least 0,
    # so only finiteness and a positive distance between two different sets say anything).
    d = frechet_distance(rng.standard_normal((3, 10)), rng.standard_normal((4, 10)))
    assert math.isfinite(d) and d > 0


def test_fd_bad_input():
    a = np.zeros((10, 4))
    with pytest.raises(ValueError, match="feature dimension"):
        frechet_distance(a, np.zeros((10, 5)))
    with pytest.raises(ValueError, match="at least 2 samples"):
        frechet_distance(np.zeros((1, 4)), a)
    with pytest.raises(ValueError, match="at least 2 samples"):
        frechet_distance(a, np.zeros((1, 4)))
    with pytest.raises(ValueError, match="2-d"):
        frechet_distance(np.zeros(10), a)
    with pytest.raises(ValueError, match="finite"):
        frechet_distance(np.full((10, 4), np.nan), a)


# ---------------------------------------------------------------- class_entropy, confident_share


def test_class_entropy_uniform_one_class_and_two_classes():
    assert class_entropy(torch.eye(10)) == pytest.approx(math.log2(10))
    one_class = torch.zeros(7, 10)
    one_class[:, 3] = 1.0
    assert class_entropy(one_class) == 0.0
    assert math.copysign(1.0, class_entropy(one_class)) == 1.0  # +0.0, not -0.0
    # Soft rows count by their argmax: 4 samples of class 1 and 4 of class 8 give 1 bit.
    p = torch.full((8, 10), 0.05)
    p[:4, 1] = 0.55
    p[4:, 8] = 0.55
    assert class_entropy(p) == pytest.approx(1.0)
    # A 3:1 split: H = -(3/4 log2 3/4 + 1/4 log2 1/4).
    q = torch.zeros(4, 10)
    q[:3, 0] = 1.0
    q[3, 5] = 1.0
    assert class_entropy(q) == pytest.approx(-(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)))


def test_confident_share_crafted():
    p = np.array([
        [0.95, 0.05, 0.0],  # confident
        [0.90, 0.10, 0.0],  # exactly at the threshold: counts
        [0.50, 0.30, 0.2],  # not confident
        [0.0, 0.02, 0.98],  # confident
    ])
    assert confident_share(p) == pytest.approx(3 / 4)
    assert confident_share(p, threshold=0.96) == pytest.approx(1 / 4)
    assert confident_share(p, threshold=0.4) == pytest.approx(1.0)


@pytest.mark.parametrize("threshold", [0.0, 1.0, -0.1, 1.5])
def test_confident_share_bad_threshold(threshold):
    with pytest.raises(ValueError, match="threshold"):
        confident_share(torch.eye(10), threshold=threshold)


def test_probs_bad_input():
    with pytest.raises(ValueError, match="summing to 1"):
        class_entropy(torch.ones(5, 10))
    with pytest.raises(ValueError, match="non-negative"):
        confident_share(torch.tensor([[1.5, -0.5]]))
    with pytest.raises(ValueError, match="shape"):
        class_entropy(torch.ones(10) / 10)


# ---------------------------------------------------------------- classifier and training


def test_classifier_shapes_and_bad_input():
    torch.manual_seed(0)
    model = DigitClassifier(ClassifierConfig(feature_dim=32)).eval()
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    assert model.features(x).shape == (3, 32)
    assert model(x).shape == (3, 10)
    with pytest.raises(ValueError, match="shape"):
        model(torch.zeros(3, 1, 28, 28))
    with pytest.raises(ValueError, match="floating"):
        model(torch.zeros(3, 1, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="feature_dim"):
        ClassifierConfig(feature_dim=0)
    with pytest.raises(ValueError, match="max_shift"):
        ClassifierTrainingConfig(max_shift=-1)
    with pytest.raises(ValueError, match="epochs"):
        ClassifierTrainingConfig(epochs=0)


def test_random_shift_moves_pixels_without_wrapping():
    x = torch.full((200, 1, 8, 8), -1.0)
    x[:, 0, 3, 4] = 1.0  # one bright pixel
    y = random_shift(x, 2, generator=torch.Generator().manual_seed(0))
    rows, cols = torch.nonzero(y[:, 0] == 1.0, as_tuple=True)[1:]
    assert len(rows) == 200  # the pixel survives every shift
    assert set(rows.tolist()) == {1, 2, 3, 4, 5} and set(cols.tolist()) == {2, 3, 4, 5, 6}
    assert int((y == -1.0).sum()) == 200 * 63  # the rest stays background
    assert torch.equal(random_shift(x, 0), x)
    with pytest.raises(ValueError, match="max_shift"):
        random_shift(x, -1)


def test_train_classifier_is_seeded_and_learns(train_digits):
    images, labels = train_digits
    images, labels = images[:256], labels[:256]
    config = ClassifierConfig(channels=(4, 8, 8), feature_dim=16)
    train_config = ClassifierTrainingConfig(epochs=3, seed=7, num_threads=1)
    m1 = train_classifier(config, images, labels, train_config)
    m2 = train_classifier(config, images, labels, train_config)
    for (k, v1), v2 in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(v1, v2), k
    assert not m1.training
    assert classifier_accuracy(m1, images, labels) > 0.3  # chance is 0.1
    with pytest.raises(ValueError, match="labels"):
        train_classifier(config, images, labels.float(), train_config)


# ---------------------------------------------------------------- the shipped classifier


def test_shipped_classifier_heldout_accuracy(shipped, test_digits):
    images, labels = test_digits
    assert images.shape[0] == 500
    acc = classifier_accuracy(shipped, images, labels)
    assert acc >= 0.97
    card = read_classifier_card()
    assert card["seed"] == card["training"]["seed"]
    assert abs(card["heldout_accuracy"] - acc) <= 1 / 500  # the card reports what the weights do
    feats, probs = classifier_outputs(images, shipped)
    assert feats.shape == (500, card["config"]["feature_dim"])
    assert torch.allclose(probs.sum(1), torch.ones(500), atol=1e-5)


def test_real_floor_far_below_noise(shipped, test_digits, train_digits):
    test_images, _ = test_digits
    train_images, _ = train_digits
    real_b = train_images[torch.randperm(4500, generator=torch.Generator().manual_seed(0))[:500]]
    report = quality_with_controls(real_b, test_images, real_b, shipped, generator=torch.Generator().manual_seed(0))
    # generated = real_b here, so the report's fd is the floor itself.
    assert report["fd"] == pytest.approx(report["fd_real_floor"])
    assert report["fd_noise"] > 20 * report["fd_real_floor"]
    assert report["class_entropy"] > 3.2  # real digits cover all ten classes
    assert report["confident_share"] > 0.9
    assert sum(report["class_counts"]) == 500
    assert report["n_generated"] == 500 and report["n_reference"] == 500


def test_quality_report_one_digit_sampler(shipped, test_digits, train_digits):
    # A "sampler" that only draws ones: the class entropy drops to ~0 and fd rises far above
    # that of as many real digits of every class (same N, so the same small-sample bias).
    test_images, _ = test_digits
    train_images, train_labels = train_digits
    ones = train_images[train_labels == 1]  # (450, 1, 32, 32)
    mixed = train_images[torch.randperm(4500, generator=torch.Generator().manual_seed(1))[: len(ones)]]
    report_ones = quality_report(ones, test_images, shipped)
    report_mixed = quality_report(mixed, test_images, shipped)
    assert report_ones["class_entropy"] < 0.3
    assert report_ones["class_counts"][1] >= 0.95 * len(ones)
    assert report_mixed["class_entropy"] > 3.2
    assert report_ones["fd"] > 20 * report_mixed["fd"]


def test_fd_grows_with_degradation(shipped, test_digits, train_digits):
    # Real digits, then the same digits with Gaussian pixel noise, then pure noise: fd increases.
    test_images, _ = test_digits
    train_images, _ = train_digits
    real = train_images[torch.randperm(4500, generator=torch.Generator().manual_seed(2))[:500]]
    gen = torch.Generator().manual_seed(3)
    noisy = (real + 0.3 * torch.randn(real.shape, generator=gen)).clamp(-1, 1)
    pure = torch.randn(real.shape, generator=gen).clamp(-1, 1)
    ref = classifier_outputs(test_images, shipped)[0]
    fds = [frechet_distance(classifier_outputs(x, shipped)[0], ref) for x in (real, noisy, pure)]
    assert fds[0] < fds[1] < fds[2]


def test_quality_controls_use_the_right_image_sets():
    """fd_real_floor compares real_b (not generated) with real_a; fd_noise compares N(0, 1) noise clipped
    to [-1, 1] with real_a (the docstring's definitions). generated != real_b here, unlike
    test_real_floor_far_below_noise, so a swap of the two sets shows."""
    torch.manual_seed(0)
    clf = DigitClassifier(ClassifierConfig(channels=(4, 8, 8), feature_dim=8)).eval()
    g = torch.Generator().manual_seed(0)
    real_a = torch.rand(60, 1, 32, 32, generator=g) * 2 - 1
    real_b = torch.rand(40, 1, 32, 32, generator=g) * 2 - 1
    generated = torch.rand(40, 1, 32, 32, generator=g) * 0.4 - 1  # dark images: far from real_a
    report = quality_with_controls(generated, real_a, real_b, clf, generator=torch.Generator().manual_seed(5))
    feats = lambda x: classifier_outputs(x, clf)[0]  # noqa: E731
    noise = torch.randn(generated.shape, generator=torch.Generator().manual_seed(5)).clamp(-1, 1)
    assert report["fd_real_floor"] == pytest.approx(frechet_distance(feats(real_b), feats(real_a)), rel=1e-9)
    assert report["fd_noise"] == pytest.approx(frechet_distance(feats(noise), feats(real_a)), rel=1e-9)
    assert report["fd"] == pytest.approx(frechet_distance(feats(generated), feats(real_a)), rel=1e-9)
    assert report["fd"] > 2 * report["fd_real_floor"]  # the sets really differ, so a swap is visible


@pytest.mark.parametrize("field, value", [("epochs", 2.5), ("epochs", True), ("batch_size", 0), ("lr", 0.0),
                                          ("max_shift", -1), ("num_threads", "2")])
def test_classifier_training_config_refuses_what_is_not_allowed(field, value):
    with pytest.raises(ValueError, match=f"^{field} must be"):
        ClassifierTrainingConfig(**{field: value})


def test_classifier_card_and_weights_round_trip(tmp_path):
    from ddpm_core.classifier import save_classifier

    torch.manual_seed(0)
    model = DigitClassifier(ClassifierConfig(channels=(4, 4, 4), feature_dim=8)).eval()
    save_classifier(model, tmp_path / "c.safetensors", {"note": "test"})
    loaded = load_classifier(tmp_path / "c.safetensors")
    assert read_classifier_card(tmp_path / "c.safetensors")["note"] == "test"
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    assert torch.equal(loaded(x), model(x))
    (tmp_path / "c.json").unlink()
    with pytest.raises(FileNotFoundError, match="rebuild them with: python -m ddpm_core.evaluation train-classifier"):
        load_classifier(tmp_path / "c.safetensors")
