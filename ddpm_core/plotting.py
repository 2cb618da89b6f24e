"""Pictures and scrubbers, so that every chapter looks alike.

A :class:`Scrubber` is a slider over precomputed frames (PNG images) with a play button.
It is plain HTML and a few lines of JavaScript with no dependencies, so the same output
moves live in Jupyter and Colab and in the static HTML book, where no kernel runs.

Where its script does not run (JupyterLab and Notebook 7 drop the scripts of a notebook they
have not trusted, e.g. one cloned and opened without running it), the scrubber still shows
its first frame with the slider and play button greyed out, a note saying how to make it
move, and every frame at half size under a ``<details>``; the script enables the controls and
removes the note and the strip, so where it runs the scrubber looks as it always did.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Callable, Sequence

import numpy as np
import torch

from .validation import check_int


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
    check_int("nrow", nrow, 1)
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
  var still = root.querySelector('.ddpm-scrubber-still');
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
  slider.disabled = false;
  play.disabled = false;
  show(+slider.value);
  if (still) still.parentNode.removeChild(still);
})();
"""

# Shown only where the script did not run (the script removes it), above all in JupyterLab 4 and
# Notebook 7, which run no scripts in the stored outputs of a notebook they have not trusted.
# Their sanitizer keeps this markup: class, inline styles (but image-rendering), disabled,
# <details>, <figure> and data: images; it drops the scripts, data-*, id, hidden and aria-*.
_STILL_NOTE = (
    "The slider is still because Jupyter runs no scripts in a notebook it has not trusted. "
    "Trust the notebook (JupyterLab: View \u203a Activate Command Palette \u203a Trust Notebook; "
    "Notebook 7: File \u203a Trust Notebook) or run its cells, and it moves."
)


def _thumbnail_png(frame: bytes, scale: float) -> bytes:
    """A smaller copy of a PNG frame for the script-free strip.

    Pixel grids (grey or RGB, from :func:`png_bytes`) keep the nearest pixels (every other one
    at half size), so noise keeps its contrast; figures (matplotlib's RGBA) are smoothed onto
    white and stored with 64 colours.
    """
    from PIL import Image

    image = Image.open(io.BytesIO(frame))
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if image.mode in ("L", "RGB"):
        small = image.resize(size, Image.NEAREST)
    else:
        rgba = image.convert("RGBA")
        flat = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
        small = flat.resize(size, Image.LANCZOS).quantize(64)
    buffer = io.BytesIO()
    small.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


class Scrubber:
    """A slider with a play button over precomputed frames; works with or without a kernel.

    Args:
        frames: PNG bytes, one per position of the slider.
        labels: text shown beside the slider for each frame (e.g. ``"t = 250"``).
        title: a caption above the picture.
        width: displayed width of the picture in CSS pixels (pixel art is scaled without blur).
        fps: frames per second of the play button.
        start: index of the frame shown first.
        strip_scale: size of the frames in a strip of every frame shown where the script does
            not run, relative to the frames (0.5: half width and height). None, the default,
            leaves the strip out and keeps the note: a half-size strip adds about a quarter to
            the scrubber's bytes in the HTML book, where it is never shown.
    """

    def __init__(
        self,
        frames: Sequence[bytes],
        labels: Sequence[str],
        title: str = "",
        width: int | None = None,
        fps: int = 8,
        start: int = 0,
        strip_scale: float | None = None,
    ):
        if len(frames) == 0:
            raise ValueError("frames must hold at least one PNG image")
        if len(labels) != len(frames):
            raise ValueError(f"labels must have one entry per frame ({len(frames)}), got {len(labels)}")
        if not 0 <= start < len(frames):
            raise ValueError(f"start must be in 0..{len(frames) - 1}, got {start}")
        if strip_scale is not None and not 0 < strip_scale <= 1:
            raise ValueError(f"strip_scale must be in (0, 1] or None, got {strip_scale}")
        self.frames = list(frames)
        self.labels = [str(label) for label in labels]
        self.title, self.width, self.fps, self.start = title, width, fps, start
        self.strip_scale = strip_scale

    def _still_html(self) -> str:
        """The note and the strip of every frame, for where the script does not run."""
        note = f'<div class="ddpm-scrubber-note" style="font-size:0.85em;margin-top:0.3em">{html.escape(_STILL_NOTE)}</div>'
        if self.strip_scale is None:
            return f'<div class="ddpm-scrubber-still">{note}</div>'
        # As wide as the picture times strip_scale: pixel art shown zoomed (width) is zoomed here too.
        width = f"width:{round(self.width * self.strip_scale)}px;image-rendering:pixelated;" if self.width else ""
        figures = "".join(
            '<figure style="margin:0">'
            f'<img alt="{html.escape(label)}" src="data:image/png;base64,'
            f'{base64.b64encode(_thumbnail_png(frame, self.strip_scale)).decode("ascii")}" style="{width}display:block"/>'
            f'<figcaption style="font-family:monospace;font-size:0.8em">{html.escape(label)}</figcaption>'
            "</figure>"
            for frame, label in zip(self.frames, self.labels)
        )
        size = "half" if self.strip_scale == 0.5 else f"{self.strip_scale:g} times the"
        return (
            f'<div class="ddpm-scrubber-still">{note}'
            '<details class="ddpm-scrubber-strip" style="font-size:0.85em;margin-top:0.3em">'
            f"<summary>All {len(self.frames)} frames, {size} size</summary>"
            f'<div style="display:flex;flex-wrap:wrap;gap:0.5em;margin-top:0.3em">{figures}</div>'
            "</details></div>"
        )

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
            '<button type="button" disabled style="min-width:6em">&#9654; play</button>'
            f'<input type="range" min="0" max="{len(self.frames) - 1}" step="1" value="{self.start}" disabled '
            f'aria-label="{html.escape(self.title or "frame")}" style="flex:1;max-width:30em"/>'
            f'<span class="ddpm-scrubber-label" style="font-family:monospace;min-width:7em">{html.escape(self.labels[self.start])}</span>'
            "</div>"
            + self._still_html()
            + f'<script type="application/json" class="ddpm-scrubber-data">{data}</script>'
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

