"""Datasets read from disk: a folder of images, and CIFAR-10 / Fashion-MNIST through torchvision.

Every image here is made by the test with PIL, in ``tmp_path``; nothing is downloaded. The
torchvision path is checked two ways: with the network refused (the error must say how to put
the files in place by hand), and with Fashion-MNIST's raw files written in place (so torchvision
reads them and downloads nothing).
"""

import re
import struct
import urllib.error
import urllib.request
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from ddpm_core.datasets import (
    DATASET_NAMES,
    ImageFolder,
    TorchvisionImages,
    open_dataset,
    read_image,
    square_image,
)

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def smooth_image(width: int, height: int, mode: str, seed: int) -> Image.Image:
    """A random, smooth picture (a 4 x 4 grid of random colours, enlarged): JPEG keeps it well."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    return small.resize((width, height), Image.Resampling.BICUBIC).convert(mode)


# What the folder holds: relative path -> (width, height, PIL mode), or None for a file that is not an image.
FOLDER = {
    "a.png": (40, 30, "L"),
    "B.JPG": (50, 70, "RGB"),  # upper-case suffix
    "sub/c.jpeg": (64, 48, "RGB"),
    "sub/deeper/d.png": (20, 36, "RGBA"),
    "sub/e.gif": (33, 33, "P"),
    "sub/f.webp": (90, 45, "RGB"),
    "notes.txt": None,
}
CORRUPT = "sub/broken.png"
# pathlib's order: folder name by folder name, so sub/deeper/d.png comes before sub/e.gif.
IMAGES_IN_ORDER = ["B.JPG", "a.png", "sub/c.jpeg", "sub/deeper/d.png", "sub/e.gif", "sub/f.webp"]


def write_folder(root, files=FOLDER, corrupt=(CORRUPT,)):
    for seed, (name, spec) in enumerate(files.items()):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if spec is None:
            path.write_text("not an image\n")
        else:
            width, height, mode = spec
            smooth_image(width, height, mode, seed).save(path)
    for name in corrupt:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"\x89PNG\r\n\x1a\n" + b"this is no image" * 8)
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_folder(tmp_path_factory.mktemp("images"))


# ----------------------------------------------------------------------------- the folder


def test_every_image_file_is_found_in_sorted_order_and_the_corrupt_one_is_skipped_with_a_warning(folder):
    with pytest.warns(UserWarning, match=r"skipped 1 of 7 image files .*: sub/broken\.png \("):
        ds = ImageFolder(folder, image_size=16, channels=3)
    assert len(ds) == len(IMAGES_IN_ORDER)
    assert [p.relative_to(folder).as_posix() for p in ds.files] == IMAGES_IN_ORDER


@pytest.mark.parametrize("image_size", [8, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_every_item_is_a_uint8_square_with_the_channels_asked_for(folder, channels, image_size):
    with pytest.warns(UserWarning, match="skipped 1"):
        ds = ImageFolder(folder, image_size, channels)
    for i in range(len(ds)):
        x = ds[i]
        assert x.dtype == torch.uint8 and x.shape == (channels, image_size, image_size)
    assert ds[-1].shape == ds[len(ds) - 1].shape  # negative indices, as a sequence
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_grey_item_is_the_luma_of_the_colour_item(folder):
    # PIL's "L" is L = (299 R + 587 G + 114 B) / 1000, computed here from the colour item.
    with pytest.warns(UserWarning):
        grey, colour = ImageFolder(folder, 32, 1)[0], ImageFolder(folder, 32, 3)[0]
    r, g, b = colour.double()
    luma = (299 * r + 587 * g + 114 * b) / 1000
    assert (luma - grey[0].double()).abs().max() <= 3  # bicubic rounding in each mode


@pytest.mark.parametrize("width, height", [(96, 32), (32, 96), (95, 32)])
def test_the_central_square_is_kept(width, height):
    # Three bands along the long side: red, green, blue. The centre square is the green band.
    wide = width > height
    side = min(width, height)
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    lo, hi = (max(width, height) - side) // 2, (max(width, height) - side) // 2 + side
    bands = [(slice(0, lo), RED), (slice(lo, hi), GREEN), (slice(hi, None), BLUE)]
    for where, colour in bands:
        pixels[(slice(None), where) if wide else (where, slice(None))] = colour
    image = Image.fromarray(pixels)
    same = square_image(image, side, channels=3)  # no resizing: exactly the green square
    assert same.shape == (3, side, side) and (same == torch.tensor(GREEN, dtype=torch.uint8)[:, None, None]).all()
    small = square_image(image, 8, channels=3).int()  # shrunk 4x: the filter reaches past the square's edges
    assert (small - torch.tensor(GREEN)[:, None, None]).abs().max() <= 40  # a trace of red or blue at the edges
    inner = small[:, 1:-1, 1:-1]
    assert (inner == torch.tensor(GREEN)[:, None, None]).all()


@pytest.mark.parametrize("width, height", [(128, 64), (64, 128), (100, 50)])
def test_crop_and_resize_equal_resize_short_side_then_cut_the_centre(width, height):
    # An independent route: resize so the short side is 32, then crop the central 32 x 32.
    image = smooth_image(width, height, "RGB", seed=7)
    scale = 32 / min(width, height)
    resized = image.resize((round(width * scale), round(height * scale)), Image.Resampling.BICUBIC)
    left, top = (resized.width - 32) // 2, (resized.height - 32) // 2
    expected = torch.from_numpy(np.array(resized.crop((left, top, left + 32, top + 32)))).permute(2, 0, 1)
    got = square_image(image, 32, channels=3)
    assert (got.int() - expected.int()).abs().max() <= 1


def test_transparent_pixels_become_white_and_16_bit_grey_keeps_its_top_8_bits():
    rgba = Image.new("RGBA", (16, 16), (0, 0, 0, 0))  # black, but fully transparent
    assert (square_image(rgba, 16, channels=3) == 255).all()
    grey16 = Image.fromarray(np.full((16, 16), 0x8000, dtype=np.uint16))  # mode "I;16", half of full scale
    assert grey16.mode.startswith("I;16") and (square_image(grey16, 16, channels=1) == 128).all()


def test_a_large_jpeg_is_decoded_at_reduced_scale_close_to_a_full_decode(tmp_path):
    image = smooth_image(256, 256, "RGB", seed=3)
    image.save(tmp_path / "big.jpg", quality=95)
    with Image.open(tmp_path / "big.jpg") as full:  # decoded at full size, then resized
        reference = square_image(full.convert("RGB"), 32, 3)
    drafted = read_image(tmp_path / "big.jpg", 32, 3)  # decoded at 1/8 (32 x 32), no resizing left
    assert (drafted.float() - reference.float()).abs().mean() < 3


def test_a_file_that_breaks_after_the_dataset_was_built_is_replaced_by_the_next_image(tmp_path):
    files = {"0.png": (20, 20, "RGB"), "1.png": (20, 20, "RGB"), "2.png": (20, 20, "RGB")}
    root = write_folder(tmp_path, files, corrupt=())
    ds = ImageFolder(root, 16, 3)
    first, second = ds[0], ds[1]
    (root / "1.png").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match=r"could not read image 1 .*1\.png.*using image 2"):
        assert torch.equal(ds[1], ds[2])
    (root / "2.png").unlink()
    with pytest.warns(UserWarning, match="using image 0"):  # the last wraps round to the first
        assert torch.equal(ds[2], first)
    assert torch.equal(ds[0], first) and not torch.equal(first, second)


def test_the_dataset_pickles_and_two_worker_processes_read_it(folder):
    with pytest.warns(UserWarning):
        ds = ImageFolder(folder, 16, 3)
    expected = torch.stack([ds[i] for i in range(len(ds))])  # (N, 3, 16, 16)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2)
    got = torch.cat(list(loader))
    assert got.dtype == torch.uint8 and torch.equal(got, expected)


# ----------------------------------------------------------------------------- bad input


def test_missing_empty_and_imageless_folders_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"root must be a folder of images: '.*nowhere' does not exist"):
        ImageFolder(tmp_path / "nowhere", 32, 3)
    (tmp_path / "a.txt").write_text("text")
    with pytest.raises(ValueError, match=r"'.*a\.txt' is not a folder"):
        ImageFolder(tmp_path / "a.txt", 32, 3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"root '.*empty' holds no image files \(\.png .*\); it holds 0 other"):
        ImageFolder(tmp_path / "empty", 32, 3)
    with pytest.raises(ValueError, match=r"holds no image files .* it holds 1 other file"):
        ImageFolder(tmp_path, 32, 3)  # only a.txt, and the empty folder


def test_a_folder_of_corrupt_files_only_is_refused_naming_them(tmp_path):
    root = write_folder(tmp_path, {}, corrupt=[f"bad{i}.png" for i in range(7)])
    with pytest.raises(ValueError, match=r"none of the 7 image files .* could be read: bad0\.png \(.*"
                                         r"bad4\.png \(.*\) and 2 more$"):
        ImageFolder(root, 32, 3)


@pytest.mark.parametrize("channels", [0, 2, 4, 3.0, True, "3", None])
def test_bad_channels_are_refused(folder, channels):
    with pytest.raises(ValueError, match=r"^channels must be 1 \(grey\) or 3 \(RGB\), got"):
        ImageFolder(folder, 32, channels)
    with pytest.raises(ValueError, match=r"^channels must be 1"):
        open_dataset("cifar10", 32, channels)  # checked before anything is downloaded


@pytest.mark.parametrize("image_size", [7, 0, -32, 32.0, "32", True])
def test_bad_image_size_is_refused(folder, image_size):
    with pytest.raises(ValueError, match=r"^image_size must be an integer >= 8, got"):
        ImageFolder(folder, image_size, 3)
    with pytest.raises(ValueError, match=r"^image_size must be an integer >= 8"):
        open_dataset(f"folder:{folder}", image_size, 3)


# ----------------------------------------------------------------------------- open_dataset


def test_open_dataset_reads_a_folder(folder):
    with pytest.warns(UserWarning, match="skipped 1"):
        ds = open_dataset(f"folder:{folder}", 16, 1)
    assert isinstance(ds, ImageFolder) and len(ds) == len(IMAGES_IN_ORDER) and ds[0].shape == (1, 16, 16)


def test_open_dataset_names_data_and_the_folder_in_its_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=rf"^data='folder:{tmp_path}/empty': root '{tmp_path}/empty' holds no image"):
        open_dataset(f"folder:{tmp_path}/empty", 32, 3)
    with pytest.raises(ValueError, match=rf"^data='folder:{tmp_path}/nowhere': .*does not exist"):
        open_dataset(f"folder:{tmp_path}/nowhere", 32, 3)
    with pytest.raises(ValueError, match=r"^data='folder:' names no folder"):
        open_dataset("folder:", 32, 3)


@pytest.mark.parametrize("data", ["imagenet", "CIFAR10", "offline", "", None])
def test_unknown_data_names_are_refused(data):
    with pytest.raises(ValueError, match=r"^data must be one of \('folder:PATH', 'cifar10', 'fashion-mnist'\), got"):
        open_dataset(data, 32, 3)


@pytest.fixture
def no_network(monkeypatch):
    """Every download fails as it does on a machine without a network."""
    def refuse(*args, **kwargs):
        raise urllib.error.URLError("no network in the tests")
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.mark.parametrize("data, how", [
    ("cifar10", r"download https://\S+/cifar-10-python\.tar\.gz and unpack it in '.*', so that '.*cifar-10-batches-py'"),
    ("fashion-mnist", r"download train-images-idx3-ubyte\.gz, .* from http\S+ into '.*FashionMNIST/raw'"),
])
def test_a_failed_download_says_how_to_put_the_files_in_place_by_hand(tmp_path, no_network, data, how):
    assert data in DATASET_NAMES
    with pytest.raises(ValueError) as info:
        open_dataset(data, 32, 3, root=tmp_path)
    message = str(info.value)
    assert message.startswith(f"data='{data}': could not download ")
    assert "no network" in message and str(tmp_path) in message and "data='folder:PATH'" in message
    assert re.search(how, message), message


def write_idx(path, array: np.ndarray) -> None:
    """MNIST's raw format: magic (0, 0, 8 = unsigned byte, number of dimensions), the sizes, the bytes."""
    with open(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 8, array.ndim))
        f.write(struct.pack(f">{array.ndim}I", *array.shape))
        f.write(array.astype(np.uint8).tobytes())


def test_fashion_mnist_files_put_in_place_by_hand_are_read_without_a_download(tmp_path, no_network):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    for prefix in ("train", "t10k"):  # torchvision checks that all four files are there
        write_idx(raw / f"{prefix}-images-idx3-ubyte", pixels)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(5))
    grey = open_dataset("fashion-mnist", 28, 1, root=tmp_path)
    assert len(grey) == 5 and torch.equal(grey[2], torch.from_numpy(pixels[2])[None])  # same size: unchanged
    colour = open_dataset("fashion-mnist", 32, 3, root=tmp_path)[2]  # resized 28 -> 32, grey in all 3 channels
    assert colour.shape == (3, 32, 32) and torch.equal(colour[0], colour[1]) and torch.equal(colour[1], colour[2])


def test_torchvision_images_drop_the_labels_and_square_the_images():
    pairs = [(smooth_image(32, 32, "RGB", seed), seed) for seed in range(3)]  # as CIFAR-10 gives them
    ds = TorchvisionImages(pairs, 16, 3)
    assert len(ds) == 3 and torch.equal(ds[1], square_image(pairs[1][0], 16, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same 32 x 32 image at 32: exactly its pixels, no warning
        assert torch.equal(TorchvisionImages(pairs, 32, 3)[0],
                           torch.from_numpy(np.array(pairs[0][0])).permute(2, 0, 1))
