"""The schedule explorer (chapter 2): two noise schedules side by side.

Choose each schedule (linear with beta_1 and beta_T, or cosine with its offset s; any T) and see
alphabar_t, eq. {eq}`eq-alphabar`, and the log signal-to-noise ratio
log SNR(t) = log(alphabar_t / (1 - alphabar_t)) over t / T, with a chosen digit's
x_t = q_sample(x_0, t), eq. {eq}`eq-forward-closed-form`, under each at the same t / T.

* compute: :class:`ScheduleSpec` (a schedule's settings, checked, and the schedule they make),
  :func:`schedule_curves`, :func:`timestep_at`;
* draw: :class:`ScheduleFigure`, one figure updated in place (a redraw changes data, not axes);
* static: :func:`schedule_scrubber`, frames of the same figure over t / T;
* live: :func:`schedule_explorer`.

Timestep convention: the paper's t = 1..T; t = 0 stands for x_0 (alphabar_0 = 1, log SNR = +inf).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np
import torch

from ..forward import q_sample
from ..plotting import Scrubber, figure_scrubber, image_grid
from ..schedules import SCHEDULE_NAMES, NoiseSchedule
from ..validation import check_choice, check_int, check_number
from . import widgets as w
from .digits import fixed_noise, held_out_count, held_out_digit


MAX_T = 100_000  # the explorer's limit: 15 float64 arrays of T + 1 entries each


@dataclass(frozen=True, kw_only=True)
class ScheduleSpec:
    """The settings of one schedule, as the explorer's controls give them.

    Attributes:
        kind: ``"linear"`` (Ho et al.) or ``"cosine"`` (Nichol & Dhariwal).
        T: number of diffusion steps, in 1..MAX_T (so that a mistyped T cannot fill the kernel's memory).
        beta_1, beta_T: the first and last variance of the linear schedule, 0 < beta_1 < beta_T < 1.
        s: the offset of the cosine schedule, s >= 0.
    """

    kind: str = "linear"
    T: int = 1000
    beta_1: float = 1e-4
    beta_T: float = 0.02
    s: float = 0.008

    def build(self) -> NoiseSchedule:
        """The :class:`NoiseSchedule` of these settings; ``ValueError`` naming the setting that is wrong."""
        check_choice("kind", self.kind, SCHEDULE_NAMES)
        check_int("T", self.T, 1, MAX_T)
        if self.kind == "cosine":
            return NoiseSchedule.cosine(self.T, check_number("s", self.s, low=0))
        beta_1 = check_number("beta_1", self.beta_1, low=0, high=1, low_open=True, high_open=True)
        beta_T = check_number("beta_T", self.beta_T, low=0, high=1, low_open=True, high_open=True)
        if not beta_T > beta_1:
            raise ValueError(f"beta_T must be greater than beta_1 (noise grows with t), "
                             f"got beta_1 = {beta_1:g} and beta_T = {beta_T:g}")
        return NoiseSchedule.linear(self.T, beta_1, beta_T)

    def label(self) -> str:
        """A short description, e.g. ``"linear, T = 1000, β₁ = 0.0001, β_T = 0.02"``."""
        if self.kind == "cosine":
            return f"cosine, T = {self.T}, s = {self.s:g}"
        return f"{self.kind}, T = {self.T}, β₁ = {self.beta_1:g}, β_T = {self.beta_T:g}"


class ScheduleCurves(NamedTuple):
    """What :func:`schedule_curves` returns: float64 arrays of length T + 1, indexed by t."""

    t_over_T: np.ndarray  # t / T for t = 0..T
    alphas_cumprod: np.ndarray  # alphabar_t, eq. (eq-alphabar); 1 at t = 0
    log_snr: np.ndarray  # log(alphabar_t / (1 - alphabar_t)); +inf at t = 0


def schedule_curves(schedule: NoiseSchedule) -> ScheduleCurves:
    """alphabar_t and log SNR(t) over t / T, the two curves of the explorer."""
    abar = schedule.alphas_cumprod.numpy()  # float64, (T + 1,)
    with np.errstate(divide="ignore"):  # t = 0: 1 / 0 = +inf, on purpose
        log_snr = np.log(abar) - np.log1p(-abar)
    return ScheduleCurves(np.arange(schedule.T + 1) / schedule.T, abar, log_snr)


def timestep_at(fraction: float, T: int) -> int:
    """The timestep t in 1..T nearest to ``fraction`` * T (``fraction`` in [0, 1]; 0 gives t = 1)."""
    check_number("fraction", fraction, low=0, high=1)
    return min(T, max(1, round(fraction * check_int("T", T, 1))))


class ScheduleFigure:
    """The explorer's picture: alphabar_t and log SNR(t) of each schedule, and its x_t at t / T.

    Drawn once; :meth:`update` changes the curves, markers and images and returns the figure.
    """

    COLORS = ("C0", "C1")

    def __init__(self):
        with w.book_style():
            self.fig = w.new_figure(6.4, 3.0)
            grid = self.fig.add_gridspec(2, 3, width_ratios=(1.2, 1.2, 0.55), left=0.1, right=0.98,
                                         bottom=0.15, top=0.8, wspace=0.45, hspace=0.45)
            self.ax_abar, self.ax_snr = self.fig.add_subplot(grid[:, 0]), self.fig.add_subplot(grid[:, 1])
            self.ax_images = [self.fig.add_subplot(grid[i, 2]) for i in range(2)]
            self.ax_abar.set(xlabel="t / T", ylabel=r"$\bar\alpha_t$", xlim=(0, 1), ylim=(-0.02, 1.02))
            self.ax_snr.set(xlabel="t / T", ylabel="log SNR(t)", xlim=(0, 1))
            self.curves, self.dots, self.images, self.labels = [], [], [], []
            axes = (self.ax_abar, self.ax_snr)
            for k, (color, ax_image) in enumerate(zip(self.COLORS, self.ax_images)):
                self.curves.append(tuple(ax.plot([], [], color=color)[0] for ax in axes))  # (alphabar, log SNR)
                self.dots.append(tuple(ax.plot([], [], "o", color=color)[0] for ax in axes))
                self.images.append(ax_image.imshow(np.zeros((36, 36), np.uint8), cmap="gray", vmin=0, vmax=255))
                ax_image.set_axis_off()
                self.labels.append(self.fig.text(0.02, 0.95 - 0.075 * k, "", color=color, fontsize=10, va="top"))
            self.markers = [ax.axvline(0.5, color="grey", linewidth=0.8, linestyle=":") for ax in axes]

    def update(self, specs: Sequence[ScheduleSpec], x0: torch.Tensor, noise: torch.Tensor, fraction: float):
        """Show two schedules (``specs``), the digit ``x0`` (1, 1, H, W) noised with ``noise`` at t / T = ``fraction``.

        Raises ``ValueError`` (from :meth:`ScheduleSpec.build`) before anything is drawn.
        """
        if len(specs) != 2:
            raise ValueError(f"specs must hold two schedules, got {len(specs)}")
        schedules = [spec.build() for spec in specs]
        snr_range = []
        with w.book_style():
            for k, (spec, schedule) in enumerate(zip(specs, schedules)):
                curves = schedule_curves(schedule)
                t = timestep_at(fraction, schedule.T)
                self.curves[k][0].set_data(curves.t_over_T, curves.alphas_cumprod)
                self.curves[k][1].set_data(curves.t_over_T[1:], curves.log_snr[1:])
                self.labels[k].set_text(f"{'AB'[k]}: {spec.label()}")
                self.dots[k][0].set_data([t / schedule.T], [curves.alphas_cumprod[t]])
                self.dots[k][1].set_data([t / schedule.T], [curves.log_snr[t]])
                snr_range += [curves.log_snr[1:].min(), curves.log_snr[1:].max()]
                self.images[k].set_data(image_grid(q_sample(schedule, x0, t, noise), nrow=1))
                self.ax_images[k].set_title(f"{'AB'[k]}: $t$ = {t}", fontsize=10, color=self.COLORS[k])
            for marker in self.markers:
                marker.set_xdata([fraction, fraction])
            low, high = min(snr_range), max(snr_range)
            pad = 0.05 * max(high - low, 1.0)
            self.ax_snr.set_ylim(low - pad, high + pad)
        return self.fig


DEFAULT_SPECS = (ScheduleSpec(), ScheduleSpec(kind="cosine"))


def schedule_scrubber(x0: torch.Tensor | None = None, noise: torch.Tensor | None = None,
                      specs: Sequence[ScheduleSpec] = DEFAULT_SPECS,
                      fractions: Sequence[float] = tuple(i / 20 for i in range(1, 21)), **kwargs) -> Scrubber:
    """The static stand-in of :func:`schedule_explorer`: its figure at each t / T of ``fractions``.

    ``x0`` defaults to held-out digit 0 and ``noise`` to seed 0, as in the explorer.
    """
    x0 = held_out_digit(0) if x0 is None else x0
    noise = fixed_noise(x0, 0) if noise is None else noise
    figure = ScheduleFigure()
    kwargs.setdefault("title", "Two schedules: alphabar_t, log SNR(t) and x_t at the same t / T")
    return figure_scrubber(lambda f: figure.update(specs, x0, noise, f), fractions,
                           [f"t / T = {f:.2f}" for f in fractions], **kwargs)


class ScheduleExplorer:
    """The live view: the settings of schedules A and B, a held-out digit and t / T, and the figure.

    Attributes (the controls, for code and tests): ``a`` and ``b`` (dicts ``kind``, ``T``,
    ``beta_1``, ``beta_T``, ``s`` of widgets), ``digit``, ``fraction``, ``noise_seed``;
    ``image`` (the figure as PNG), ``error`` (what is wrong with an input); ``widget`` (the whole view).
    """

    def __init__(self, specs: Sequence[ScheduleSpec] = DEFAULT_SPECS):
        widgets = w.require_ipywidgets("schedule_explorer")
        self.a, self.b = (_spec_controls(widgets, spec) for spec in specs)
        self.digit = widgets.IntSlider(value=0, min=0, max=held_out_count() - 1, description="test digit",
                                       continuous_update=False)
        self.fraction = widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.01, description="t / T")
        self.noise_seed = widgets.IntText(value=0, description="noise seed", layout=w.narrow(widgets, "180px"))
        self.figure = ScheduleFigure()
        self.image, self.error = w.picture(widgets, w.shown_width(self.figure.fig)), w.error_line(widgets)
        columns = [widgets.VBox([w.labelled(widgets, name), *controls.values()]) for name, controls in
                   (("Schedule A (blue)", self.a), ("Schedule B (orange)", self.b))]
        self.widget = widgets.VBox([widgets.HBox(columns), widgets.HBox([self.digit, self.fraction, self.noise_seed]),
                                    self.error, self.image])
        w.on_change([*self.a.values(), *self.b.values(), self.digit, self.fraction, self.noise_seed], self.update)
        self.update()

    def specs(self) -> tuple[ScheduleSpec, ScheduleSpec]:
        """The two schedules' settings as the controls hold them now."""
        return tuple(ScheduleSpec(**{name: c.value for name, c in controls.items()}) for controls in (self.a, self.b))

    def update(self) -> None:
        """Redraw from the controls; a bad setting is named on the error line, the last picture stays."""
        for controls in (self.a, self.b):
            cosine = controls["kind"].value == "cosine"
            controls["beta_1"].disabled = controls["beta_T"].disabled = cosine
            controls["s"].disabled = not cosine
        w.guarded(self.error, self._redraw)

    def _redraw(self) -> None:
        x0 = held_out_digit(self.digit.value)
        fig = self.figure.update(self.specs(), x0, fixed_noise(x0, self.noise_seed.value), self.fraction.value)
        self.image.value = w.figure_bytes(fig)


def _spec_controls(widgets, spec: ScheduleSpec) -> dict:
    """The controls of one schedule, keyed by :class:`ScheduleSpec`'s field names."""
    layout, style = w.narrow(widgets, "230px"), {"description_width": "80px"}  # "s (cosine)" in full
    values = dataclasses.asdict(spec)
    return {
        "kind": widgets.Dropdown(options=list(SCHEDULE_NAMES), value=values["kind"], description="kind",
                                 layout=layout, style=style),
        "T": widgets.IntText(value=values["T"], description="T", layout=layout, style=style),
        "beta_1": widgets.FloatText(value=values["beta_1"], step=1e-4, description="β₁", layout=layout, style=style),
        "beta_T": widgets.FloatText(value=values["beta_T"], step=1e-3, description="β_T", layout=layout, style=style),
        "s": widgets.FloatText(value=values["s"], step=1e-3, description="s (cosine)", layout=layout, style=style),
    }


def schedule_explorer(specs: Sequence[ScheduleSpec] = DEFAULT_SPECS):
    """The live schedule explorer (an ipywidgets ``VBox``); needs a kernel with ipywidgets.

    In the static book the chapter shows :func:`schedule_scrubber` instead.
    """
    return ScheduleExplorer(specs).widget


__all__ = ["ScheduleSpec", "ScheduleCurves", "schedule_curves", "timestep_at", "ScheduleFigure", "schedule_scrubber",
           "ScheduleExplorer", "schedule_explorer"]
