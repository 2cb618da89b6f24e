"""Datasets read from disk: any folder of images, CIFAR-10 and Fashion-MNIST, as uint8 squares.

The digits of :mod:`ddpm_core.data` fit in memory as one float tensor. Other training sets are
read image by image, by the worker processes of a ``DataLoader``, so every item here is what a
worker returns: a uint8 tensor of shape (channels, image_size, image_size), pixels in 0..255.
The training loop maps it to [-1, 1] (x = p / 127.5 - 1) and flips it at random itself, from
its own generator, so that a run is reproducible.

Every image, whatever its source, becomes a square the same way (:func:`square_image`):

1. converted to grey (``channels=1``, PIL mode ``"L"``) or colour (``channels=3``, ``"RGB"``);
   transparent pixels are laid on white, and 16-bit grey keeps its top 8 bits;
2. the central square of side min(width, height) is cut out and resized to image_size x
   image_size with PIL's bicubic filter, which is antialiased: when shrinking, each output
   pixel averages all the input pixels under the widened filter, so no pixel is skipped
   (upsampling, as Fashion-MNIST's 28 x 28 to 32 x 32, interpolates).

Sources (:func:`open_dataset`): ``"folder:PATH"`` (:class:`ImageFolder`), ``"cifar10"`` and
``"fashion-mnist"`` (their training splits, through torchvision). The digits ``"offline"`` and
``"mnist"`` come from :func:`ddpm_core.data.load_digits`.
"""

from __future__ import annotations

import numbers
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .validation import check_choice, check_int

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")  # any case
DATASET_NAMES = ("cifar10", "fashion-mnist")  # besides "folder:PATH"
MODES = {1: "L", 3: "RGB"}  # channels -> PIL mode
SHOWN_BAD_FILES = 5  # how many unreadable files a warning or an error names


def check_image_args(image_size: object, channels: object) -> tuple[int, int]:
    """Return (image_size, channels), raising ``ValueError`` unless image_size >= 8 and channels is 1 or 3."""
    image_size = check_int("image_size", image_size, minimum=8)
    if isinstance(channels, bool) or not isinstance(channels, numbers.Integral) or channels not in MODES:
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels!r}")
    return image_size, int(channels)


def to_mode(image: Image.Image, mode: str) -> Image.Image:
    """``image`` in PIL mode ``mode`` ("L" or "RGB"), transparent pixels laid on white.

    Two conversions PIL's ``convert`` alone gets wrong: a transparent pixel keeps whatever
    colour was stored under it, and 16-bit grey ("I;16") is clipped at 255, not scaled.
    """
    if image.mode.startswith("I;16"):
        image = Image.fromarray((np.asarray(image, dtype=np.uint16) >> 8).astype(np.uint8))  # top 8 bits
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return image.convert(mode)


def square_image(image: Image.Image, image_size: int, channels: int) -> torch.Tensor:
    """Convert, centre-crop and resize a PIL image to uint8 pixels of shape (channels, image_size, image_size).

    The central square of side min(width, height) is resized with antialiased bicubic
    filtering: the same as resizing the short side to ``image_size`` and cutting the centre.

    Args:
        image: any PIL image (first frame of an animation).
        image_size: side of the square, in pixels.
        channels: 1 (grey) or 3 (RGB).

    Returns:
        uint8 tensor (channels, image_size, image_size).
    """
    image = to_mode(image, MODES[channels])
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2  # whole pixels: no resampling at image_size == side
    image = image.resize((image_size, image_size), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side))
    pixels = torch.from_numpy(np.array(image, dtype=np.uint8))  # (H, W) or (H, W, 3)
    if channels == 1:
        return pixels.unsqueeze(0)  # (1, H, W)
    return pixels.permute(2, 0, 1).contiguous()  # (3, H, W)


def read_image(path: str | Path, image_size: int, channels: int) -> torch.Tensor:
    """Decode the image file ``path`` into uint8 (channels, image_size, image_size) (see :func:`square_image`).

    A JPEG at least twice ``image_size`` on both sides is decoded at 1/2, 1/4 or 1/8 of its
    size (``Image.draft``, libjpeg's own scaling, which averages 8 x 8 blocks of the
    compressed image), never below ``image_size``: a large photo decodes many times faster.
    The file is closed before returning, so a dataset keeps no file open.
    """
    with Image.open(path) as image:
        image.draft(MODES[channels], (image_size, image_size))  # a no-op for formats other than JPEG
        return square_image(image, image_size, channels)


def find_image_files(root: Path) -> tuple[list[Path], int]:
    """Every file under ``root`` (recursively) with an image suffix, sorted, and how many other files there are."""
    files = [p for p in root.rglob("*") if p.is_file()]
    images = sorted(p for p in files if p.suffix.lower() in IMAGE_SUFFIXES)
    return images, len(files) - len(images)


def list_bad_files(bad: list[tuple[Path, str]], root: Path) -> str:
    """The first few unreadable files, relative to ``root``, with their errors: "a.png (reason), ...". """
    shown = ", ".join(f"{p.relative_to(root)} ({reason})" for p, reason in bad[:SHOWN_BAD_FILES])
    more = len(bad) - SHOWN_BAD_FILES
    return shown + (f" and {more} more" if more > 0 else "")


class ImageFolder(torch.utils.data.Dataset):
    """Every image file under a folder, recursively, as uint8 squares (channels, image_size, image_size).

    Image files are those ending in .png .jpg .jpeg .bmp .gif .webp .tif .tiff (any case);
    other files are ignored. Item i is the i-th path in sorted order (pathlib's order,
    folder name by folder name). Each file is decoded once when the dataset is built, with
    :func:`read_image`, exactly as an item will be: ``Image.verify`` would be cheaper but
    decodes nothing (a truncated JPEG passes it), while decoding finds every file that
    cannot become an item. Such files are left out with one warning; a file that fails
    later (changed on disk) is replaced by the next image, with a warning, so that a
    training run never stops on one bad file.

    The dataset holds only paths and numbers: it pickles, so ``DataLoader`` worker
    processes can read it.

    Args:
        root: the folder.
        image_size: side of the square images, an integer >= 8.
        channels: 1 (grey) or 3 (RGB).
    """

    def __init__(self, root: str | Path, image_size: int, channels: int):
        self.image_size, self.channels = check_image_args(image_size, channels)
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            what = "is not a folder" if self.root.exists() else "does not exist"
            raise ValueError(f"root must be a folder of images: {str(self.root)!r} {what}")
        candidates, others = find_image_files(self.root)
        if not candidates:
            raise ValueError(
                f"root {str(self.root)!r} holds no image files ({' '.join(IMAGE_SUFFIXES)}, any case, "
                f"in any sub-folder); it holds {others} other file(s)"
            )
        self.files, bad = self.split_readable(candidates)
        if not self.files:
            raise ValueError(f"none of the {len(bad)} image files under root {str(self.root)!r} "
                             f"could be read: {list_bad_files(bad, self.root)}")
        if bad:
            warnings.warn(f"skipped {len(bad)} of {len(candidates)} image files under {str(self.root)!r} that "
                          f"could not be read: {list_bad_files(bad, self.root)}", stacklevel=2)

    def split_readable(self, paths: list[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
        """Decode each file: (the paths that decode, [(path, error message)] for those that do not)."""
        good, bad = [], []
        for path in paths:
            try:
                read_image(path, self.image_size, self.channels)
            except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, EOFError, zlib.error...
                bad.append((path, str(err) or type(err).__name__))
            else:
                good.append(path)
        return good, bad

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        """Image i as uint8 (channels, image_size, image_size); if its file fails, the next one that reads."""
        path = self.files[i]  # IndexError for an index out of range, as a sequence does
        n = len(self.files)
        for step in range(n):
            j = (i + step) % n
            try:
                return read_image(self.files[j], self.image_size, self.channels)
            except Exception as err:  # the file changed since the dataset was built
                warnings.warn(f"could not read image {j} ({self.files[j]}): {err}; "
                              f"using image {(j + 1) % n} in its place", stacklevel=2)
        raise OSError(f"none of the {n} image files under {str(self.root)!r} can be read any more "
                      f"(the first asked for: {path})")


class TorchvisionImages(torch.utils.data.Dataset):
    """The images of a torchvision dataset of (PIL image, label) pairs, labels dropped, as :func:`square_image` makes them."""

    def __init__(self, dataset: torch.utils.data.Dataset, image_size: int, channels: int):
        self.image_size, self.channels = check_image_args(image_size, channels)
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> torch.Tensor:
        image, _label = self.dataset[i]
        return square_image(image, self.image_size, self.channels)  # (channels, image_size, image_size)


def manual_download_hint(data: str, root: Path) -> str:
    """How to put the files of ``data`` into ``root`` by hand, in the layout torchvision reads."""
    from torchvision.datasets import CIFAR10, FashionMNIST

    if data == "cifar10":
        return (f"download {CIFAR10.url} and unpack it in {str(root)!r}, so that "
                f"{str(root / CIFAR10.base_folder)!r} holds data_batch_1 ... data_batch_5, test_batch and batches.meta")
    raw = root / "FashionMNIST" / "raw"
    names = ", ".join(name for name, _md5 in FashionMNIST.resources)
    return f"download {names} from {FashionMNIST.mirrors[0]} into {str(raw)!r}"


def open_torchvision(data: str, root: Path) -> torch.utils.data.Dataset:
    """The training split of ``data`` ("cifar10" or "fashion-mnist") through torchvision, downloaded into ``root`` if missing.

    Raises ``ValueError``, saying how to put the files in place by hand, where the download fails.
    """
    from torchvision.datasets import CIFAR10, FashionMNIST

    dataset_class = {"cifar10": CIFAR10, "fashion-mnist": FashionMNIST}[data]
    try:
        return dataset_class(root=str(root), train=True, download=True)
    except (OSError, RuntimeError) as err:  # no network (URLError is an OSError), a bad mirror, a corrupt file
        raise ValueError(
            f"data={data!r}: could not download {dataset_class.__name__} into {str(root)!r} "
            f"(no network here?): {type(err).__name__}: {' '.join(str(err).split())}. To use it offline, "
            f"{manual_download_hint(data, root)}, then run again (the files are checked, not downloaded again); "
            f"or train on a folder of images with data='folder:PATH'"
        ) from err


def open_dataset(data: str, image_size: int, channels: int, root: str | Path = "data") -> torch.utils.data.Dataset:
    """The training images of ``data``, every item uint8 (channels, image_size, image_size).

    Args:
        data: ``"folder:PATH"`` (:class:`ImageFolder` of PATH), ``"cifar10"`` (50,000 colour
            images, 32 x 32) or ``"fashion-mnist"`` (60,000 grey images, 28 x 28): the
            training splits, through torchvision, downloaded into ``root`` if missing.
        image_size: side of the square images, an integer >= 8.
        channels: 1 (grey) or 3 (RGB); any source may be read either way.
        root: where torchvision keeps the downloaded files (not used for ``folder:``).

    Returns:
        a ``torch.utils.data.Dataset`` of uint8 tensors (channels, image_size, image_size).
    """
    image_size, channels = check_image_args(image_size, channels)
    if isinstance(data, str) and data.startswith("folder:"):
        path = data[len("folder:"):]
        if not path:
            raise ValueError(f"data={data!r} names no folder: write data='folder:PATH'")
        try:
            return ImageFolder(path, image_size, channels)
        except ValueError as err:
            raise ValueError(f"data={data!r}: {err}") from None
    check_choice("data", data, ("folder:PATH", *DATASET_NAMES))
    images = open_torchvision(data, Path(root).expanduser())
    return TorchvisionImages(images, image_size, channels)
