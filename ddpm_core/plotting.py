"""Pictures and scrubbers, so that every chapter looks alike.

A :class:`Scrubber` is a slider over precomputed frames (PNG images) with a play button.
It is plain HTML and a few lines of JavaScript with no dependencies, so the same output
moves live in Jupyter and Colab and in the static HTML book, where no kernel runs.
"""

from __future__ import annotations

import base64
import html
import inspect
import io
from typing import Callable, Sequence

import numpy as np
import torch


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Map images in [-1, 1] to uint8 pixels in 0..255 (values outside are clipped)."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round()
    return x.to(torch.uint8).numpy()


def image_grid(images: torch.Tensor, nrow: int = 8, padding: int = 2) -> np.ndarray:
    """Tile a batch (B, C, H, W) in [-1, 1] into one uint8 array (rows * (H + p), nrow * (W + p)[, C]).

    Gaps between images are mid-grey so that black backgrounds stay distinguishable.
    """
    if images.dim() != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}")
    if nrow < 1:
        raise ValueError(f"nrow must be >= 1, got {nrow}")
    pixels = to_uint8(images)  # (B, C, H, W)
    B, C, H, W = pixels.shape
    ncol = min(nrow, B)
    nrows = -(-B // ncol)
    grid = np.full((C, nrows * (H + padding) + padding, ncol * (W + padding) + padding), 128, dtype=np.uint8)
    for i in range(B):
        r, c = divmod(i, ncol)
        top, left = padding + r * (H + padding), padding + c * (W + padding)
        grid[:, top : top + H, left : left + W] = pixels[i]
    return grid[0] if C == 1 else grid.transpose(1, 2, 0)  # (H, W) or (H, W, C)


def png_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array (H, W) or (H, W, 3) as PNG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def figure_png(fig, dpi: int = 80) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def show_images(images: torch.Tensor, nrow: int = 8, title: str | None = None, scale: float = 0.25, ax=None):
    """Show a batch (B, C, H, W) in [-1, 1] as one grid with matplotlib; returns the axes."""
    import matplotlib.pyplot as plt

    grid = image_grid(images, nrow=nrow)
    if ax is None:
        _, ax = plt.subplots(figsize=(max(2.0, grid.shape[1] * scale / 10), max(1.0, grid.shape[0] * scale / 10)))
    ax.imshow(grid, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


_SCRUBBER_JS = """
(function () {
  var root = document.currentScript.parentElement;
  var frames = JSON.parse(root.querySelector('.ddpm-scrubber-data').textContent);
  var img = root.querySelector('img'), slider = root.querySelector('input[type=range]');
  var label = root.querySelector('.ddpm-scrubber-label'), play = root.querySelector('button');
  var timer = null;
  function show(i) {
    slider.value = i;
    img.src = 'data:image/png;base64,' + frames.images[i];
    label.textContent = frames.labels[i];
    root.setAttribute('data-frame', i);
  }
  slider.addEventListener('input', function () { show(+slider.value); });
  play.addEventListener('click', function () {
    if (timer) { clearInterval(timer); timer = null; play.textContent = '\\u25B6 play'; return; }
    play.textContent = '\\u23F8 pause';
    timer = setInterval(function () {
      var next = (+slider.value + 1) % frames.images.length;
      show(next);
      if (next === frames.images.length - 1) { clearInterval(timer); timer = null; play.textContent = '\\u25B6 play'; }
    }, 1000 / FPS);
  });
  show(+slider.value);
})();
"""


class Scrubber:
    """A slider with a play button over precomputed frames; works with or without a kernel.

    Args:
        frames: PNG bytes, one per position of the slider.
        labels: text shown beside the slider for each frame (e.g. ``"t = 250"``).
        title: a caption above the picture.
        width: displayed width of the picture in CSS pixels (pixel art is scaled without blur).
        fps: frames per second of the play button.
        start: index of the frame shown first.
    """

    def __init__(
        self,
        frames: Sequence[bytes],
        labels: Sequence[str],
        title: str = "",
        width: int | None = None,
        fps: int = 8,
        start: int = 0,
    ):
        if len(frames) == 0:
            raise ValueError("frames must hold at least one PNG image")
        if len(labels) != len(frames):
            raise ValueError(f"labels must have one entry per frame ({len(frames)}), got {len(labels)}")
        if not 0 <= start < len(frames):
            raise ValueError(f"start must be in 0..{len(frames) - 1}, got {start}")
        self.frames = list(frames)
        self.labels = [str(label) for label in labels]
        self.title, self.width, self.fps, self.start = title, width, fps, start

    def _repr_html_(self) -> str:
        import json

        data = json.dumps({"images": [base64.b64encode(f).decode("ascii") for f in self.frames], "labels": self.labels})
        width = f"width:{self.width}px;" if self.width else "max-width:100%;"
        first = base64.b64encode(self.frames[self.start]).decode("ascii")
        return (
            f'<div class="ddpm-scrubber" data-frame="{self.start}" style="font-family:sans-serif;margin:0.5em 0">'
            + (f'<div style="font-weight:bold;margin-bottom:0.3em">{html.escape(self.title)}</div>' if self.title else "")
            + f'<img alt="{html.escape(self.title or "scrubber frame")}" src="data:image/png;base64,{first}" '
            f'style="{width}image-rendering:pixelated;display:block"/>'
            '<div style="display:flex;align-items:center;gap:0.6em;margin-top:0.3em">'
            '<button type="button" style="min-width:6em">&#9654; play</button>'
            f'<input type="range" min="0" max="{len(self.frames) - 1}" step="1" value="{self.start}" '
            f'aria-label="{html.escape(self.title or "frame")}" style="flex:1;max-width:30em"/>'
            f'<span class="ddpm-scrubber-label" style="font-family:monospace;min-width:7em">{html.escape(self.labels[self.start])}</span>'
            "</div>"
            f'<script type="application/json" class="ddpm-scrubber-data">{data}</script>'
            f"<script>{_SCRUBBER_JS.replace('FPS', str(int(self.fps)))}</script>"
            "</div>"
        )

    def __repr__(self) -> str:
        return f"Scrubber({self.title!r}: {len(self.frames)} frames, {self.labels[0]} ... {self.labels[-1]})"


def figure_scrubber(draw: Callable[[object], object], values: Sequence, labels: Sequence[str], title: str = "", dpi: int = 72, **kwargs) -> Scrubber:
    """Build a :class:`Scrubber` by calling ``draw(value)`` (which returns a matplotlib figure) for each value."""
    return Scrubber([figure_png(draw(v), dpi=dpi) for v in values], labels, title=title, **kwargs)


def image_scrubber(batches: Sequence[torch.Tensor], labels: Sequence[str], title: str = "", nrow: int = 8, zoom: int = 3, **kwargs) -> Scrubber:
    """Build a :class:`Scrubber` whose frames are image grids, one per batch (B, C, H, W) in [-1, 1]."""
    grids = [image_grid(b, nrow=nrow) for b in batches]
    kwargs.setdefault("width", grids[0].shape[1] * zoom)
    return Scrubber([png_bytes(g) for g in grids], labels, title=title, **kwargs)


def forward_diffusion_scrubber(schedule, x0: torch.Tensor, timesteps: Sequence[int], seed: int = 0, title: str = "", **kwargs) -> Scrubber:
    """Scrub x_t = q_sample(x_0, t) over ``timesteps`` (0 shows x_0), one noise draw for every t.

    Keeping eps fixed across frames shows the closed form {eq}`eq-forward-closed-form` as a
    smooth path from the data to noise.
    """
    from .forward import q_sample

    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    batches = [x0 if t == 0 else q_sample(schedule, x0, int(t), noise) for t in timesteps]
    return image_scrubber(batches, [f"t = {int(t)}" for t in timesteps], title=title, **kwargs)


def show_source(obj) -> "object":
    """Display the source code of a ``ddpm_core`` function or class, highlighted.

    The chapters show library code this way instead of copying it, so what the reader sees
    is what runs.
    """
    from IPython.display import Code

    return Code(inspect.getsource(obj), language="python")
