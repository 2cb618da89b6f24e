"""The forward and posterior explorer (chapters 2 and 3): one digit, noised, and what the posterior
q(x_{t-1} | x_t, x_0) says about one of its pixels.

x_0 is a held-out digit chosen by its index, or one the learner draws on a 14 x 14 grid of
squares (:mod:`.digits`). x_t = q_sample(x_0, t, eps), eq. {eq}`eq-forward-closed-form`, with the
same eps until the learner asks for new noise. The posterior of x_{t-1} given x_t and x_0 is
N(mu-tilde_t, beta-tilde_t I), eqs. {eq}`eq-posterior-mean` and {eq}`eq-posterior-variance`: for the
chosen pixel it is drawn as a Gaussian density beside that pixel's x_t and x_0.

* compute: :func:`forward_posterior`, :func:`pixel_posterior`;
* draw: :func:`draw_forward_posterior`;
* static: :func:`forward_posterior_scrubber`, the same figure over t;
* live: :func:`forward_posterior_explorer`.

Timestep convention: the paper's t = 1..T. At t = 1, beta-tilde_1 = 0: the posterior is a point
mass at x_0 (drawn as a line).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch

from ..forward import q_sample
from ..plotting import Scrubber, figure_scrubber, image_grid
from ..posterior import q_posterior_mean_variance
from ..schedules import NoiseSchedule
from ..validation import check_int
from . import widgets as w
from .digits import drawing_to_image, fixed_noise, held_out_count, held_out_digit


class ForwardPosterior(NamedTuple):
    """What :func:`forward_posterior` returns (tensors shaped like x_0 unless said)."""

    x_t: torch.Tensor  # q_sample(x_0, t, eps)
    mean: torch.Tensor  # mu-tilde_t(x_t, x_0)
    variance: torch.Tensor  # beta-tilde_t, shape (B, 1, 1, 1)


def forward_posterior(schedule: NoiseSchedule, x0: torch.Tensor, t: int, noise: torch.Tensor) -> ForwardPosterior:
    """x_t from x_0 and eps, and the mean and variance of q(x_{t-1} | x_t, x_0).

    Args:
        schedule: the noise schedule.
        x0: the clean digit, floating tensor (B, C, H, W) in [-1, 1].
        t: the timestep, in 1..T.
        noise: eps, shaped like ``x0``.
    """
    x_t = q_sample(schedule, x0, t, noise)
    mean, variance, _ = q_posterior_mean_variance(schedule, x0, x_t, t)
    return ForwardPosterior(x_t, mean, variance)


class PixelPosterior(NamedTuple):
    """One pixel of :func:`pixel_posterior`, as Python floats."""

    x0: float  # the pixel of x_0
    x_t: float  # the pixel of x_t
    mean: float  # the posterior mean mu-tilde_t at the pixel
    variance: float  # beta-tilde_t (the same for every pixel)


def pixel_posterior(schedule: NoiseSchedule, x0: torch.Tensor, t: int, noise: torch.Tensor,
                    row: int, col: int) -> PixelPosterior:
    """q(x_{t-1} | x_t, x_0) at pixel (``row``, ``col``) of the first image of ``x0`` (B, C, H, W), channel 0."""
    row = check_int("row", row, 0, x0.shape[-2] - 1)
    col = check_int("col", col, 0, x0.shape[-1] - 1)
    out = forward_posterior(schedule, x0, t, noise)
    return PixelPosterior(float(x0[0, 0, row, col]), float(out.x_t[0, 0, row, col]),
                          float(out.mean[0, 0, row, col]), float(out.variance[0].squeeze()))


def draw_forward_posterior(schedule: NoiseSchedule, x0: torch.Tensor, t: int, noise: torch.Tensor,
                           row: int, col: int):
    """x_0, x_t and mu-tilde_t with the pixel marked, and that pixel's posterior density: a new figure."""
    out = forward_posterior(schedule, x0, t, noise)
    pixel = pixel_posterior(schedule, x0, t, noise, row, col)
    with w.book_style():
        fig = w.new_figure(6.4, 2.5)
        grid = fig.add_gridspec(1, 4, width_ratios=(1, 1, 1, 1.9), left=0.01, right=0.97, bottom=0.2, top=0.78,
                                wspace=0.12)
        for i, (image, name) in enumerate(((x0, "$x_0$"), (out.x_t, f"$x_t$, $t$ = {t}"), (out.mean, r"$\tilde\mu_t$"))):
            ax = fig.add_subplot(grid[0, i])
            ax.imshow(image_grid(image[:1].float(), nrow=1), cmap="gray", vmin=0, vmax=255)
            ax.add_patch(_pixel_box(row, col))
            ax.set_title(name, fontsize=10)
            ax.set_axis_off()
        _draw_density(fig.add_subplot(grid[0, 3]), pixel)
    return fig


def _pixel_box(row: int, col: int):
    """A red square around pixel (row, col) of an image drawn by image_grid (2 pixels of padding)."""
    from matplotlib.patches import Rectangle

    return Rectangle((col + 1.5, row + 1.5), 1, 1, fill=False, edgecolor="red", linewidth=1.2)


def _draw_density(ax, pixel: PixelPosterior) -> None:
    """The posterior N(mean, variance) of one pixel, with its x_0 and x_t as vertical lines."""
    sd = math.sqrt(pixel.variance)
    if sd > 0:
        grid = torch.linspace(-2.5, 2.5, 801, dtype=torch.float64)
        density = torch.exp(-0.5 * ((grid - pixel.mean) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
        ax.plot(grid.numpy(), density.numpy(), color="C0", label=r"$q(x_{t-1} | x_t, x_0)$")
    else:  # t = 1: beta-tilde_1 = 0, a point mass at x_0
        ax.axvline(pixel.mean, color="C0", label="point mass at $x_0$")
    ax.axvline(pixel.x0, color="green", linestyle="--", label="$x_0$ pixel")
    ax.axvline(pixel.x_t, color="grey", linestyle=":", label="$x_t$ pixel")
    ax.set_xlim(-2.5, 2.5)
    ax.set_yticks([])
    ax.set_xlabel("pixel value")
    ax.legend(loc="upper left", fontsize=8, handlelength=1.5)
    numbers = rf"$\tilde\mu_t$ = {pixel.mean:+.3f}, $\sqrt{{\tilde\beta_t}}$ = {sd:.4f}"
    ax.set_title("the red pixel\n" + numbers, fontsize=10)


DEFAULT_TIMESTEPS = (1, 2, 5, 10, 20, 50, 100, 150, 200, 300, 400, 500, 600, 700, 800, 900, 1000)


def forward_posterior_scrubber(schedule: NoiseSchedule | None = None, x0: torch.Tensor | None = None,
                               noise: torch.Tensor | None = None, row: int = 16, col: int = 14,
                               timesteps: Sequence[int] = DEFAULT_TIMESTEPS, **kwargs) -> Scrubber:
    """The static stand-in of :func:`forward_posterior_explorer`: its figure at each t of ``timesteps``.

    Defaults as in the explorer: the linear schedule with T = 1000, held-out digit 0, noise seed 0.
    """
    schedule = NoiseSchedule.linear(1000) if schedule is None else schedule
    x0 = held_out_digit(0) if x0 is None else x0
    noise = fixed_noise(x0, 0) if noise is None else noise
    kwargs.setdefault("title", "x_0, x_t, the posterior mean, and one pixel's q(x_{t-1} | x_t, x_0)")
    return figure_scrubber(lambda t: draw_forward_posterior(schedule, x0, t, noise, row, col), timesteps,
                           [f"t = {t}" for t in timesteps], **kwargs)


class ForwardPosteriorExplorer:
    """The live view: x_0 (a held-out digit or a drawing), t, the noise, the pixel, and the figure.

    Attributes (the controls): ``source`` (``"held-out digit"`` or ``"my drawing"``), ``digit``,
    ``squares`` (14 rows of 14 ``ToggleButton``), ``clear``, ``t``, ``noise_seed``, ``new_noise``
    (a button: the next seed), ``row``, ``col``; ``image``, ``error``, ``widget``.
    """

    SOURCES = ("held-out digit", "my drawing")

    def __init__(self, schedule: NoiseSchedule | None = None):
        widgets = w.require_ipywidgets("forward_posterior_explorer")
        self.schedule = NoiseSchedule.linear(1000) if schedule is None else schedule
        self.source = widgets.ToggleButtons(options=list(self.SOURCES), value=self.SOURCES[0], description="x₀")
        self.digit = widgets.IntSlider(value=0, min=0, max=held_out_count() - 1, description="test digit",
                                       continuous_update=False)
        self.t = widgets.IntSlider(value=100, min=1, max=self.schedule.T, description="t", continuous_update=False)
        self.noise_seed = widgets.IntText(value=0, description="noise seed", layout=w.narrow(widgets, "180px"))
        self.new_noise = widgets.Button(description="new noise")
        self.row = widgets.IntSlider(value=16, min=0, max=31, description="pixel row")
        self.col = widgets.IntSlider(value=14, min=0, max=31, description="pixel col")
        self.drawing, self.squares, self.clear = w.drawing_pad(widgets)
        self.image, self.error = w.picture(widgets, w.COLUMN_PX), w.error_line(widgets)
        self.widget = widgets.VBox([self.source, widgets.HBox([self.digit, self.t]), self.drawing,
                                    widgets.HBox([self.row, self.col]), widgets.HBox([self.noise_seed, self.new_noise]),
                                    self.error, self.image])
        self._quiet = False  # True while the clear button empties the grid: one redraw, not 196
        self.new_noise.on_click(lambda _: setattr(self.noise_seed, "value", self.noise_seed.value + 1))
        self.clear.on_click(lambda _: self._clear())
        squares = [square for line in self.squares for square in line]
        w.on_change([self.source, self.digit, self.t, self.noise_seed, self.row, self.col, *squares], self.update)
        self.update()

    def x0(self) -> torch.Tensor:
        """x_0 as the controls say: the chosen held-out digit, or the drawing."""
        if self.source.value == self.SOURCES[0]:
            return held_out_digit(self.digit.value)
        return drawing_to_image(w.drawn(self.squares))

    def update(self) -> None:
        """Redraw from the controls; a bad input (an empty drawing) is named on the error line."""
        if self._quiet:
            return
        drawing = self.source.value == self.SOURCES[1]
        self.drawing.layout.display = None if drawing else "none"
        self.digit.disabled = drawing
        w.guarded(self.error, self._redraw)

    def _redraw(self) -> None:
        x0 = self.x0()
        fig = draw_forward_posterior(self.schedule, x0, self.t.value, fixed_noise(x0, self.noise_seed.value),
                                     self.row.value, self.col.value)
        self.image.value = w.figure_bytes(fig)

    def _clear(self) -> None:
        self._quiet = True
        try:
            w.clear_drawing(self.squares)
        finally:
            self._quiet = False
        self.update()


def forward_posterior_explorer(schedule: NoiseSchedule | None = None):
    """The live forward and posterior explorer (an ipywidgets ``VBox``); needs a kernel with ipywidgets.

    In the static book the chapter shows :func:`forward_posterior_scrubber` instead.
    """
    return ForwardPosteriorExplorer(schedule).widget


__all__ = ["ForwardPosterior", "forward_posterior", "PixelPosterior", "pixel_posterior", "draw_forward_posterior",
           "forward_posterior_scrubber", "ForwardPosteriorExplorer", "forward_posterior_explorer"]
