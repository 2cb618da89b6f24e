"""The training dashboard (chapter 7): one display, updated in place while a run trains.

It shows the loss curve of ``metrics.jsonl`` (one row every ``log_every`` steps: step, loss,
lr, images per second), the latest speed, and the latest 16 samples of the EMA weights. Training
already calls ``on_sample(step, images)`` every ``sample_every`` steps (:func:`ddpm_core.train.train`),
and by then the rows up to that step are in ``metrics.jsonl``; so the dashboard needs no other hook:

    dashboard = training_dashboard(RUN_DIR)
    display(dashboard)                                   # the live display (needs ipywidgets)
    train(cfg, RUN_DIR, on_sample=dashboard.on_sample)   # rows read from RUN_DIR at each sample

Rows can also be given directly (:meth:`TrainingDashboard.add_metrics`), e.g. from a loop of
one's own. Without ipywidgets the dashboard still records what it is given, and
:meth:`TrainingDashboard.scrubber` draws the same pictures as a scrubber for the static book.

A recorded run (:func:`ddpm_core.run_record.load_run_record`, the shipped model's by default)
becomes a dashboard with :meth:`TrainingDashboard.from_record`.

* compute: :func:`training_summary`; draw: :func:`draw_training`; static:
  :meth:`TrainingDashboard.scrubber`; live: :func:`training_dashboard`.
"""

from __future__ import annotations

import html
import math
import statistics
from pathlib import Path
from typing import Sequence

import torch
from matplotlib.ticker import FormatStrFormatter, NullFormatter

from ..plotting import BOOK_DPI, Scrubber, figure_scrubber, image_grid
from ..run_record import RunRecord
from . import widgets as w

FIGURE_INCHES = (5.6, 2.6)  # the dashboard's figure: samples, then the loss


def training_summary(rows: Sequence[dict], step: int | None = None) -> dict:
    """The numbers the dashboard prints, from the metrics rows up to ``step`` (all if None).

    Returns:
        {"step", "loss" (of the last row), "images_per_s" (of the last row),
        "median_images_per_s" (over the rows), "rows" (how many)}; NaN where there is no row.
    """
    rows = [r for r in rows if step is None or r["step"] <= step]
    if not rows:
        return {"step": step or 0, "loss": math.nan, "images_per_s": math.nan, "median_images_per_s": math.nan,
                "rows": 0}
    last = rows[-1]
    return {"step": last["step"] if step is None else step, "loss": float(last["loss"]),
            "images_per_s": float(last["images_per_s"]),
            "median_images_per_s": statistics.median(float(r["images_per_s"]) for r in rows), "rows": len(rows)}


def draw_training(rows: Sequence[dict], step: int | None = None, images: torch.Tensor | None = None,
                  total_steps: int | None = None):
    """A grid of the samples drawn at ``step`` beside the loss curve up to it (log scale): a new figure.

    The samples come first: on a phone, where a figure wider than the column scrolls, they are
    what shows.
    """
    shown = [r for r in rows if step is None or r["step"] <= step]
    with w.book_style():
        fig = w.new_figure(*FIGURE_INCHES)
        sample_ax, loss_ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": (1, 1.3)})
        if shown:
            loss_ax.plot([r["step"] for r in shown], [r["loss"] for r in shown], color="C0")
            loss_ax.set_yscale("log")
            losses = [r["loss"] for r in rows]  # the whole run's range, so that frames compare
            loss_ax.set_ylim(min(losses) / 1.25, max(losses) * 1.25)
            loss_ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
            loss_ax.yaxis.set_minor_formatter(NullFormatter())
        right = total_steps or max([r["step"] for r in rows] + [step or 0, 1])
        loss_ax.set(xlabel="step", ylabel="loss", xlim=(0, right))
        summary = training_summary(rows, step)
        loss_ax.set_title(f"step {summary['step']}: loss {summary['loss']:.4f}, "
                          f"{summary['images_per_s']:.0f} images/s", fontsize=10)
        if images is not None:
            sample_ax.imshow(image_grid(images[:16], nrow=4), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        sample_ax.set_title("EMA samples" if images is not None else "no samples yet", fontsize=10)
        sample_ax.set_axis_off()
        fig.subplots_adjust(left=0.01, right=0.98, bottom=0.18, top=0.86, wspace=0.35)
    return fig


class TrainingDashboard:
    """Loss curve, speed and the latest EMA samples of a run, shown in one display updated in place.

    Args:
        run_dir: the run's folder; its ``metrics.jsonl`` is read at each :meth:`on_sample`
            (None: only rows given to :meth:`add_metrics`).
        total_steps: the run's length, for the x axis (None: as far as the rows go).

    Attributes: ``rows`` (the metrics rows so far), ``previews`` ((step, images) pairs), and
    once shown, ``image``, ``status`` and ``widget``.
    """

    def __init__(self, run_dir: str | Path | None = None, total_steps: int | None = None):
        self.run_dir, self.total_steps = run_dir, total_steps
        self.rows: list[dict] = []
        self.previews: list[tuple[int, torch.Tensor]] = []
        self._view = None  # (widget, status, image), built when first shown

    @property
    def widget(self):
        """The live display (an ipywidgets ``VBox``), built on first use; needs ipywidgets."""
        if self._view is None:
            widgets = w.require_ipywidgets("training_dashboard")
            status = widgets.HTML(value="waiting for the first samples ...")
            image = w.picture(widgets, round(FIGURE_INCHES[0] * BOOK_DPI))  # as the figure is drawn
            self._view = (widgets.VBox([status, image]), status, image)
            self.refresh()
        return self._view[0]

    @classmethod
    def from_record(cls, record: RunRecord) -> "TrainingDashboard":
        """The dashboard of a recorded run (:mod:`ddpm_core.run_record`), as it stood at the run's end."""
        dashboard = cls(total_steps=record.card.get("steps"))
        dashboard.rows, dashboard.previews = list(record.rows), list(record.previews)
        return dashboard

    def on_sample(self, step: int, images: torch.Tensor) -> None:
        """The hook of :func:`ddpm_core.train.train`: record the samples of ``step``, reread the metrics, redraw."""
        self.previews.append((int(step), images.detach().cpu()))
        if self.run_dir is not None:
            from ..train.metrics import metrics_rows  # training is running: its code is loaded already

            self.rows = metrics_rows(Path(self.run_dir) / "metrics.jsonl")
        self.refresh()

    def add_metrics(self, rows: dict | Sequence[dict]) -> None:
        """Add metrics rows (dicts with ``step``, ``loss``, ``images_per_s``, as in metrics.jsonl) and redraw."""
        self.rows.extend([rows] if isinstance(rows, dict) else rows)
        self.refresh()

    def refresh(self) -> None:
        """Redraw the display from what has been recorded (nothing to do until it is shown)."""
        if self._view is None:
            return
        _, status, image = self._view
        step, images = self.previews[-1] if self.previews else (None, None)
        summary = training_summary(self.rows)
        status.value = html.escape(f"{summary['rows']} metrics rows, last at step {summary['step']}; "
                                   f"median {summary['median_images_per_s']:.0f} images/s; "
                                   f"{len(self.previews)} sample grids")
        image.value = w.figure_bytes(draw_training(self.rows, step, images, self.total_steps))

    def scrubber(self, **kwargs) -> Scrubber:
        """The static stand-in: the dashboard as it looked at each recorded sample step."""
        if not self.previews:
            raise ValueError("the dashboard has no samples yet: train with on_sample=dashboard.on_sample first")
        kwargs.setdefault("title", "Training: the loss so far and the EMA samples, at each preview")
        return figure_scrubber(lambda p: draw_training(self.rows, p[0], p[1], self.total_steps), self.previews,
                               [f"step {step}" for step, _ in self.previews], **kwargs)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def training_dashboard(run_dir: str | Path | None = None, total_steps: int | None = None) -> TrainingDashboard:
    """A :class:`TrainingDashboard`; shown as a cell's result (or with ``display``) it is the live display."""
    return TrainingDashboard(run_dir, total_steps)


__all__ = ["training_summary", "draw_training", "TrainingDashboard", "training_dashboard"]
