"""Pictures and scrubbers, so that every chapter looks alike.

A :class:`Scrubber` is a slider over precomputed frames (PNG images) with a play button.
It is plain HTML and a few lines of JavaScript with no dependencies, so the same output
moves live in Jupyter and Colab and in the static HTML book, where no kernel runs.

Where its script does not run (JupyterLab and Notebook 7 drop the scripts of a notebook they
have not trusted, e.g. one cloned and opened without running it), the scrubber still shows
its first frame with the slider and play button greyed out, a note saying how to make it
move, and every frame at half size under a ``<details>``; the script enables the controls and
removes the note and the strip, so where it runs the scrubber looks as it always did.

One house style for every figure (:func:`use_book_style`, called by each chapter's import cell):
a figure ``w`` inches wide is shown ``w * BOOK_DPI`` CSS pixels wide, drawn at twice that
resolution for high-DPI screens, with text sizes chosen for the size it is shown at.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Callable, Sequence

import numpy as np
import torch

from .validation import check_int

BOOK_DPI = 96  # CSS pixels per inch: a figure w inches wide is shown w * 96 px wide
FIG_WIDTH = 6.4  # inches: 614 px, inside the text column of the HTML book (about 690 px)
BOOK_RC = {
    "figure.figsize": (FIG_WIDTH, 3.2),
    "figure.dpi": BOOK_DPI,
    "savefig.dpi": 2 * BOOK_DPI,  # saved figures are sharp on high-DPI screens too
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "font.size": 11,  # points; 1 pt = 96 / 72 px as shown: 11 pt is 14.7 px
    "axes.titlesize": 12,  # 16 px
    "axes.labelsize": 11,  # 14.7 px
    "xtick.labelsize": 10,  # 13.3 px
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "figure.titlesize": 12,
}


def use_book_style() -> None:
    """Apply the book's figure style.

    Sets :data:`BOOK_RC` (figure width and resolution, font sizes) in ``matplotlib.rcParams``, and,
    in IPython (Jupyter, Colab), shows figures as PNGs of twice the resolution at their size in CSS
    pixels (:func:`retina_png`). Each chapter calls it in its first code cell.
    """
    import matplotlib

    matplotlib.rcParams.update(BOOK_RC)
    try:
        from IPython import get_ipython
    except ImportError:  # plain Python: the settings alone
        return
    shell = get_ipython()
    if shell is not None:
        import matplotlib.pyplot as plt
        from matplotlib.figure import Figure

        plt.close(plt.figure())  # loads the backend, whose own PNG formatter then comes before ours, not after
        shell.display_formatter.formatters["image/png"].for_type(Figure, retina_png)


def retina_png(fig) -> tuple[str, dict] | None:
    """A figure as a base64 PNG at twice its resolution, with the width (only) to show it at.

    The IPython formatter of :func:`use_book_style`. IPython's own "retina" format also states the
    height, which the HTML book would write into the image's style and so stretch the picture
    wherever the column is narrower than the figure (a phone); the width alone scales it evenly.
    """
    if not fig.axes and not fig.lines:
        return None  # an empty figure shows nothing, as IPython's formatter does
    png = figure_png(fig, dpi=2 * fig.dpi, close=False)
    return base64.b64encode(png).decode("ascii"), {"width": png_size(png)[0] // 2}


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


def figure_png(fig, dpi: int = 2 * BOOK_DPI, close: bool = True, colors: int | None = None) -> bytes:
    """Render a matplotlib figure to PNG bytes (on white, trimmed to what it draws); close it unless told not to.

    ``colors``: store the picture with a palette of at most that many colours (256: no visible
    change to a plot, and a third of the bytes), as a scrubber's many frames are.
    """
    import matplotlib.pyplot as plt
    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", facecolor="white", metadata={"Software": None})
    if close:
        plt.close(fig)
    if colors is None:
        return buffer.getvalue()
    small = io.BytesIO()
    Image.open(buffer).convert("RGB").quantize(colors).save(small, format="PNG", optimize=True)
    return small.getvalue()


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) in pixels of PNG bytes."""
    from PIL import Image

    return Image.open(io.BytesIO(png)).size


def show_images(images: torch.Tensor, nrow: int = 8, title: str | None = None, scale: float = 0.25, ax=None):
    """Show a batch (B, C, H, W) in [-1, 1] as one grid with matplotlib; returns the axes.

    A new figure is ``scale / 10`` inches per pixel of the grid, at most :data:`FIG_WIDTH` wide.
    """
    import matplotlib.pyplot as plt

    grid = image_grid(images, nrow=nrow)
    if ax is None:
        width = min(FIG_WIDTH, max(2.0, grid.shape[1] * scale / 10))
        _, ax = plt.subplots(figsize=(width, max(1.0, width * grid.shape[0] / grid.shape[1])))
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
        width: displayed width of the picture in CSS pixels (it shrinks to fit a narrower column).
        fps: frames per second of the play button.
        start: index of the frame shown first.
        strip_scale: size of the frames in a strip of every frame shown where the script does
            not run, relative to the frames (0.5: half width and height). None, the default,
            leaves the strip out and keeps the note: a half-size strip adds about a quarter to
            the scrubber's bytes in the HTML book, where it is never shown.
        pixelated: scale the frames without blur, for pixel art (image grids); False for figures
            drawn at a higher resolution than they are shown.
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
        pixelated: bool = True,
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
        self.pixelated = pixelated

    def _still_html(self) -> str:
        """The note and the strip of every frame, for where the script does not run."""
        note = f'<div class="ddpm-scrubber-note" style="font-size:0.85em;margin-top:0.3em">{html.escape(_STILL_NOTE)}</div>'
        if self.strip_scale is None:
            return f'<div class="ddpm-scrubber-still">{note}</div>'
        # As wide as the picture times strip_scale: pixel art shown zoomed (width) is zoomed here too.
        width = f"width:{round(self.width * self.strip_scale)}px;" if self.width else ""
        width += "image-rendering:pixelated;" if self.pixelated else ""
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
        width = f"width:{self.width}px;max-width:100%;height:auto;" if self.width else "max-width:100%;"
        width += "image-rendering:pixelated;" if self.pixelated else ""
        first = base64.b64encode(self.frames[self.start]).decode("ascii")
        return (
            f'<div class="ddpm-scrubber" data-frame="{self.start}" style="font-family:sans-serif;margin:0.5em 0">'
            + (f'<div style="font-weight:bold;margin-bottom:0.3em">{html.escape(self.title)}</div>' if self.title else "")
            + f'<img alt="{html.escape(self.title or "scrubber frame")}" src="data:image/png;base64,{first}" '
            f'style="{width}display:block"/>'
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


def figure_scrubber(draw: Callable[[object], object], values: Sequence, labels: Sequence[str], title: str = "",
                    dpi: int = 2 * BOOK_DPI, **kwargs) -> Scrubber:
    """Build a :class:`Scrubber` by calling ``draw(value)`` (which returns a matplotlib figure) for each value.

    The frames are drawn at ``dpi`` (twice :data:`BOOK_DPI` by default, for high-DPI screens) and
    shown, unless ``width`` says otherwise, at the size of the first figure: ``w * BOOK_DPI`` CSS
    pixels for a figure ``w`` inches wide, like every other figure of the book.
    """
    frames = [figure_png(draw(v), dpi=dpi, colors=256) for v in values]
    kwargs.setdefault("width", round(png_size(frames[0])[0] * BOOK_DPI / dpi))
    kwargs.setdefault("pixelated", False)
    return Scrubber(frames, labels, title=title, **kwargs)


def image_scrubber(batches: Sequence[torch.Tensor], labels: Sequence[str], title: str = "", nrow: int = 8,
                   zoom: int | None = None, **kwargs) -> Scrubber:
    """Build a :class:`Scrubber` whose frames are image grids, one per batch (B, C, H, W) in [-1, 1].

    Each grid pixel is shown as ``zoom`` x ``zoom`` CSS pixels; by default the largest whole zoom
    that keeps the grid within :data:`FIG_WIDTH` (whole, so that every pixel keeps its size).
    """
    grids = [image_grid(b, nrow=nrow) for b in batches]
    if zoom is None:
        zoom = max(1, int(FIG_WIDTH * BOOK_DPI) // grids[0].shape[1])
    check_int("zoom", zoom, 1)
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

