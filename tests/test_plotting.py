"""Plotting and the scrubbers: pixel mapping, grid layout, the forward-process frames and the
static-HTML scrubber's markup. References: the data scaling p / 127.5 - 1 inverted, row-major
placement by hand, and the closed form q_sample with one noise draw.
"""

import base64
import io
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from ddpm_core import NoiseSchedule
from ddpm_core.plotting import Scrubber, forward_diffusion_scrubber, image_grid, png_bytes, to_uint8


def decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def test_to_uint8_inverts_the_data_scaling_and_clips():
    k = torch.arange(256)
    x = (k.float() / 127.5 - 1.0).reshape(1, 1, 16, 16)  # data.py's p / 127.5 - 1, every level
    assert to_uint8(x).flatten().tolist() == list(range(256))
    assert to_uint8(torch.tensor([-3.0, -1.0, 0.0, 1.0, 7.0])).tolist() == [0, 0, 128, 255, 255]


def test_image_grid_places_images_row_major_with_grey_gaps():
    B, H, W, p = 5, 2, 3, 2
    levels = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0])
    images = levels[:, None, None, None].expand(B, 1, H, W)
    grid = image_grid(images, nrow=3, padding=p)
    assert grid.shape == (2 * (H + p) + p, 3 * (W + p) + p) and grid.dtype == np.uint8
    expected = to_uint8(levels).tolist()
    for i in range(B):
        r, c = i // 3, i % 3  # row-major: image i in row i // nrow, column i % nrow
        top, left = p + r * (H + p), p + c * (W + p)
        assert (grid[top:top + H, left:left + W] == expected[i]).all(), i
    assert (grid[p + (H + p):p + (H + p) + H, p + 2 * (W + p):] == 128).all()  # empty 6th slot: grey
    assert (grid[:p] == 128).all() and (grid[:, :p] == 128).all()


def test_forward_diffusion_scrubber_frames_follow_the_closed_form_with_one_noise():
    s = NoiseSchedule.linear(100, 1e-3, 0.2)
    x0 = torch.linspace(-1, 1, 2 * 16).reshape(2, 1, 4, 4)
    steps = [0, 1, 30, 100]
    sc = forward_diffusion_scrubber(s, x0, steps, seed=3, nrow=2)
    assert sc.labels == [f"t = {t}" for t in steps] and len(sc.frames) == 4
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(3))  # one eps for every frame
    for t, frame in zip(steps, sc.frames):
        ab = float(s.alphas_cumprod[t])  # alphabar_0 = 1: frame 0 is x_0
        x_t = ab ** 0.5 * x0 + (1 - ab) ** 0.5 * eps
        assert np.array_equal(decode(frame), image_grid(x_t, nrow=2)), t


def test_scrubber_shows_its_start_frame_and_checks_arguments():
    frames = [png_bytes(np.full((2, 2), v, dtype=np.uint8)) for v in (0, 100, 200)]
    sc = Scrubber(frames, ["a", "b", "c"], start=2)
    page = sc._repr_html_()
    assert 'data-frame="2"' in page and 'value="2"' in page and 'max="2"' in page
    shown = re.search(r'<img [^>]*src="data:image/png;base64,([^"]+)"', page).group(1)
    assert decode(base64.b64decode(shown))[0, 0] == 200
    assert re.search(r'class="ddpm-scrubber-label"[^>]*>c<', page)
    data = json.loads(re.search(r'class="ddpm-scrubber-data">(.*?)</script>', page).group(1))
    assert data["labels"] == ["a", "b", "c"]
    assert [decode(base64.b64decode(f))[0, 0] for f in data["images"]] == [0, 100, 200]
    with pytest.raises(ValueError, match="start must be in 0..2"):
        Scrubber(frames, ["a", "b", "c"], start=3)
    with pytest.raises(ValueError, match="labels must have one entry per frame"):
        Scrubber(frames, ["a", "b"])
    with pytest.raises(ValueError, match="frames must hold at least one"):
        Scrubber([], [])
