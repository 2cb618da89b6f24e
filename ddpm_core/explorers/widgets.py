"""What every explorer's view shares: ipywidgets loaded when a view is built, figures as PNG
bytes, an image that shows them, the line that says what is wrong with an input, and the pad
on which a learner draws a digit (:func:`drawing_pad`, for :mod:`.digits`).

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
from .digits import DRAWING_SIZE

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


DRAWING_NOTE = "Click squares to draw a digit (each square is 2 x 2 pixels of the 28 x 28 digit)."


def drawing_pad(widgets, note: str = DRAWING_NOTE):
    """The drawing grid: (its box, hidden at first, the 14 x 14 ``ToggleButton`` squares, the clear button).

    The squares' values, 14 rows of 14, are what :func:`ddpm_core.explorers.digits.drawing_to_image` takes.
    """
    square = widgets.Layout(width="18px", height="18px", padding="0", margin="0")
    squares = [[widgets.ToggleButton(value=False, layout=square) for _ in range(DRAWING_SIZE)]
               for _ in range(DRAWING_SIZE)]
    grid = widgets.GridBox([s for line in squares for s in line], layout=widgets.Layout(
        grid_template_columns=f"repeat({DRAWING_SIZE}, 18px)", grid_gap="1px", width="max-content"))
    clear = widgets.Button(description="clear")
    box = widgets.VBox([widgets.HTML(value=html.escape(note)), grid, clear], layout=widgets.Layout(display="none"))
    return box, squares, clear


def drawn(squares) -> list[list[bool]]:
    """The values of a drawing pad's squares, 14 rows of 14 (True: ink)."""
    return [[square.value for square in line] for line in squares]


def clear_drawing(squares) -> None:
    """Switch every square of a drawing pad off."""
    for line in squares:
        for square in line:
            square.value = False
