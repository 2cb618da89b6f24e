"""What every explorer's view shares: ipywidgets loaded when a view is built, figures as PNG
bytes, an image that shows them, and the line that says what is wrong with an input.

Only the views import ipywidgets, and only when they are built: ``import ddpm_core`` and every
compute function of :mod:`ddpm_core.explorers` work without it. The views use only what
ipywidgets 7.6.4 and 8 both have (``Image``, ``HTML``, ``IntSlider``, ``Dropdown``, ``Button``,
``ToggleButton``, ``GridBox``, ``observe(..., names="value")``), so they work on Colab
(ipywidgets 7) and in JupyterLab 4 and Notebook 7 (ipywidgets 8).

Pictures go to an ``Image`` widget as PNG bytes, not through an ``Output`` widget: the kernel
holds what is shown (a test can read it back), and a redraw replaces one value.
"""

from __future__ import annotations

import html
import io
from typing import Callable

from ..plotting import BOOK_DPI, BOOK_RC, FIG_WIDTH

COLUMN_PX = round(FIG_WIDTH * BOOK_DPI)  # a figure FIG_WIDTH inches wide is shown this many CSS pixels wide
RETINA_DPI = 2 * BOOK_DPI  # figures are drawn at twice the size they are shown at, sharp on high-DPI screens
ERROR_STYLE = "color:#b00020;font-family:sans-serif"


def require_ipywidgets(explorer: str):
    """The ``ipywidgets`` module, or an ``ImportError`` that says what to install and what to use instead."""
    try:
        import ipywidgets
    except ImportError:
        raise ImportError(
            f"{explorer} needs ipywidgets: pip install 'ipywidgets>=7.6.4' (Colab has it). Without a kernel, "
            f"the chapter's scrubber shows the same pictures, drawn by the same functions."
        ) from None
    return ipywidgets


def new_figure(width: float, height: float):
    """A matplotlib ``Figure`` ``width`` x ``height`` inches, not registered with pyplot (nothing to close).

    Draw on it inside :func:`book_style`, so that its text takes the book's sizes.
    """
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=BOOK_DPI)


def book_style():
    """A context in which new artists take the book's font sizes (matplotlib reads them as it makes each)."""
    import matplotlib

    return matplotlib.rc_context(BOOK_RC)


def figure_bytes(fig, dpi: int = RETINA_DPI) -> bytes:
    """A figure as PNG bytes at ``dpi``, fast: light compression, no trimming (each redraw pays it)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor="white", pil_kwargs={"compress_level": 1},
                metadata={"Software": None})
    return buffer.getvalue()


def grid_png(images, nrow: int = 8, zoom: int = 2) -> bytes:
    """A batch (B, C, H, W) in [-1, 1] as a PNG grid, each pixel ``zoom`` x ``zoom``.

    The pixels are enlarged here, not by the browser, which would blur them.
    """
    import numpy as np

    from ..plotting import image_grid, png_bytes

    grid = image_grid(images, nrow=nrow)
    return png_bytes(np.repeat(np.repeat(grid, zoom, axis=0), zoom, axis=1))


def shown_width(fig) -> int:
    """The width in CSS pixels at which a figure is shown: ``BOOK_DPI`` pixels per inch, as in the book."""
    return round(fig.get_figwidth() * BOOK_DPI)


def picture(widgets, width: int):
    """An empty ``Image`` widget ``width`` CSS pixels wide that shrinks to a narrower column (a phone)."""
    return widgets.Image(format="png", layout=widgets.Layout(width=f"{width}px", max_width="100%", height="auto"))


def error_line(widgets):
    """The line under the controls that says what is wrong with an input (empty when nothing is)."""
    return widgets.HTML(value="")


def show_error(line, message: str | None) -> None:
    """Write ``message`` on the error line in red, or clear it (``None``)."""
    line.value = "" if message is None else f'<span style="{ERROR_STYLE}">{html.escape(message)}</span>'


def guarded(line, update: Callable[[], None]) -> bool:
    """Run ``update()``; a ``ValueError`` (bad input) goes to the error line instead of a traceback.

    Returns:
        True if ``update`` ran to the end (the error line is then cleared).
    """
    try:
        update()
    except ValueError as err:
        show_error(line, str(err))
        return False
    show_error(line, None)
    return True


def on_change(controls, callback: Callable[[], None]) -> None:
    """Call ``callback()`` whenever the value of any of ``controls`` changes."""
    for control in controls:
        control.observe(lambda change: callback(), names="value")


def labelled(widgets, text: str):
    """A short bold heading above a group of controls."""
    return widgets.HTML(value=f"<b>{html.escape(text)}</b>")


def narrow(widgets, width: str = "260px"):
    """A ``Layout`` for a control of a fixed width, with the description given room."""
    return widgets.Layout(width=width)
