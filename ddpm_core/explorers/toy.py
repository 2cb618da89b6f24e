"""The 2-D toy explorer (chapter 4): Algorithm 2 driven by the exact denoiser of a mixture the
learner writes.

The data are a mixture of isotropic Gaussians (:class:`ddpm_core.toy.GaussianMixture`), written
one component a line as ``x, y, weight, std``. The exact noise predictor E[eps | x_t]
(:func:`ddpm_core.toy.optimal_eps`) drives Algorithm 2, so whatever is wrong with the samples is
the sampler's fault, not a network's. The picture: the cloud x_t at a chosen t over the contours
of q(x_t), a few trajectories from x_T down to it, and the samples x_0 against fresh data with
their sliced Wasserstein distance (:func:`ddpm_core.toy.sliced_wasserstein`).

* compute: :func:`parse_components`, :func:`components_text`, :func:`toy_chain`;
* draw: :func:`draw_toy`;
* static: :func:`toy_scrubber`, the same figure over t;
* live: :func:`toy_explorer`.

Timestep convention: the paper's t = 1..T; ``chain[T - t]`` is x_t (``chain[T]`` is x_0).
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..plotting import Scrubber, figure_scrubber
from ..reverse import VARIANCES, p_sample_loop
from ..schedules import NoiseSchedule
from ..toy import GaussianMixture, optimal_eps, ring_mixture, sliced_wasserstein
from ..validation import check_choice, check_int
from . import widgets as w

LIMIT = 2.5  # the plots show [-LIMIT, LIMIT]^2, where x_T ~ N(0, I) lies


def parse_components(text: str) -> GaussianMixture:
    """A mixture from lines ``x, y, weight, std`` (one component a line; weights are rescaled to sum to 1).

    Blank lines and lines starting with ``#`` are skipped. ``ValueError`` names the line that is wrong.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    if not lines:
        raise ValueError("components is empty: write one component a line as 'x, y, weight, std'")
    rows = []
    for number, line in enumerate(lines, start=1):
        parts = line.split(",")
        try:
            x, y, weight, std = (float(p) for p in parts)
        except ValueError:
            raise ValueError(f"component {number} ({line!r}) must be four numbers 'x, y, weight, std'") from None
        if not (weight > 0 and std > 0):
            raise ValueError(f"component {number} ({line!r}) needs weight > 0 and std > 0")
        rows.append((x, y, weight, std))
    table = torch.tensor(rows, dtype=torch.float64)  # (K, 4)
    return GaussianMixture(weights=table[:, 2] / table[:, 2].sum(), means=table[:, :2], stds=table[:, 3])


def components_text(mixture: GaussianMixture) -> str:
    """The lines ``x, y, weight, std`` that :func:`parse_components` reads back as ``mixture``."""
    return "\n".join(f"{float(m[0]):.3f}, {float(m[1]):.3f}, {float(wk):.4g}, {float(s):.3g}"
                     for m, wk, s in zip(mixture.means, mixture.weights, mixture.stds))


def toy_chain(mixture: GaussianMixture, schedule: NoiseSchedule, n: int = 1000, seed: int = 0,
              variance: str = "beta") -> list[torch.Tensor]:
    """Algorithm 2 with the exact denoiser: the chain [x_T, ..., x_0] of ``n`` points (T + 1 tensors (n, 2)).

    Nothing is clipped (``clip_x0=False``): the exact x0_hat needs no help, and the components may
    lie outside [-1, 1].
    """
    check_int("n", n, 1)
    check_choice("variance", variance, VARIANCES)
    generator = torch.Generator().manual_seed(check_int("seed", seed))
    _, chain = p_sample_loop(schedule, optimal_eps(mixture, schedule), (n, 2), generator=generator,
                             variance=variance, clip_x0=False, return_intermediates=True)
    return chain


def draw_toy(mixture: GaussianMixture, schedule: NoiseSchedule, chain: Sequence[torch.Tensor], t: int,
             data: torch.Tensor, paths: int = 10):
    """Left: x_t over the contours of q(x_t), and ``paths`` trajectories from x_T to x_t. Right: x_0 against ``data``."""
    T = schedule.T
    t = check_int("t", t, 0, T)
    x_t, x_0 = chain[T - t], chain[T]
    with w.book_style():
        fig = w.new_figure(6.4, 3.2)
        left, right = fig.subplots(1, 2)
        axis = torch.linspace(-LIMIT, LIMIT, 81, dtype=torch.float64)
        gx, gy = torch.meshgrid(axis, axis, indexing="xy")
        abar = float(schedule.alphas_cumprod[t])
        density = mixture.marginal(abar).log_prob(torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)).exp()
        left.contour(gx.numpy(), gy.numpy(), density.reshape(gx.shape).numpy(), levels=6, colors="C1", linewidths=0.8)
        left.scatter(x_t[:, 0], x_t[:, 1], s=2, color="C0", linewidths=0)
        track = torch.stack([state[:paths] for state in chain[: T - t + 1]])  # (T - t + 1, paths, 2)
        for k in range(min(paths, track.shape[1])):
            left.plot(track[:, k, 0], track[:, k, 1], color="black", linewidth=0.6, alpha=0.6)
        left.set_title(f"$x_t$ and $q(x_t)$, $t$ = {t}", fontsize=11)
        right.scatter(data[:, 0], data[:, 1], s=2, color="grey", linewidths=0, label="data")
        right.scatter(x_0[:, 0], x_0[:, 1], s=2, color="C0", linewidths=0, label="samples $x_0$")
        distance = sliced_wasserstein(x_0.double(), data[: x_0.shape[0]].double(),
                                      generator=torch.Generator().manual_seed(0))
        right.set_title(f"$x_0$ against the data (SW = {distance:.3f})", fontsize=11)
        right.legend(loc="upper right", fontsize=8, markerscale=4)
        for ax in (left, right):
            ax.set(xlim=(-LIMIT, LIMIT), ylim=(-LIMIT, LIMIT), aspect="equal")
        fig.subplots_adjust(left=0.07, right=0.98, bottom=0.08, top=0.9, wspace=0.25)
    return fig


def data_points(mixture: GaussianMixture, n: int, seed: int) -> torch.Tensor:
    """``n`` fresh data points, from a generator of its own (seed + 1: not the sampler's numbers)."""
    return mixture.sample(n, torch.Generator().manual_seed(seed + 1))


DEFAULT_TIMESTEPS = (1000, 900, 800, 700, 600, 500, 400, 300, 250, 200, 150, 100, 75, 50, 30, 20, 10, 5, 0)


def toy_scrubber(mixture: GaussianMixture | None = None, schedule: NoiseSchedule | None = None, n: int = 1000,
                 seed: int = 0, variance: str = "beta", timesteps: Sequence[int] = DEFAULT_TIMESTEPS,
                 **kwargs) -> Scrubber:
    """The static stand-in of :func:`toy_explorer`: its figure at each t of ``timesteps`` (the ring, T = 1000)."""
    mixture = ring_mixture() if mixture is None else mixture
    schedule = NoiseSchedule.linear(1000) if schedule is None else schedule
    chain, data = toy_chain(mixture, schedule, n, seed, variance), data_points(mixture, n, seed)
    kwargs.setdefault("title", "Algorithm 2 with the exact denoiser: trajectories, and samples against the data")
    return figure_scrubber(lambda t: draw_toy(mixture, schedule, chain, t, data), timesteps,
                           [f"t = {t}" for t in timesteps], **kwargs)


class ToyExplorer:
    """The live view: the mixture (as text, or a ring), the sampler, and a slider over t.

    Attributes (the controls): ``components`` (a ``Textarea``), ``ring_k``, ``ring_radius``,
    ``ring_std``, ``make_ring`` (a button that writes that ring into ``components``), ``T``,
    ``variance``, ``n``, ``seed``, ``paths``, ``t``; ``image``, ``error``, ``widget``.
    """

    def __init__(self, mixture: GaussianMixture | None = None):
        widgets = w.require_ipywidgets("toy_explorer")
        text = components_text(ring_mixture() if mixture is None else mixture)
        self.components = widgets.Textarea(value=text, description="x, y, w, std", rows=8, continuous_update=False,
                                           layout=widgets.Layout(width="330px"))
        self.ring_k = widgets.IntSlider(value=8, min=1, max=12, description="ring: K")
        self.ring_radius = widgets.FloatSlider(value=0.7, min=0.1, max=2.0, step=0.05, description="radius")
        self.ring_std = widgets.FloatSlider(value=0.08, min=0.01, max=0.5, step=0.01, description="std")
        self.make_ring = widgets.Button(description="write this ring")
        self.T = widgets.Dropdown(options=[10, 50, 100, 300, 1000], value=1000, description="T (linear)")
        self.variance = widgets.ToggleButtons(options=list(VARIANCES), value="beta", description="σ²")
        self.n = widgets.IntSlider(value=1000, min=100, max=2000, step=100, description="points",
                                   continuous_update=False)
        self.seed = widgets.IntText(value=0, description="seed", layout=w.narrow(widgets, "180px"))
        self.paths = widgets.IntSlider(value=10, min=0, max=50, description="paths", continuous_update=False)
        self.t = widgets.IntSlider(value=0, min=0, max=1000, description="t", continuous_update=False)
        self.image, self.error = w.picture(widgets, w.COLUMN_PX), w.error_line(widgets)
        ring = widgets.VBox([self.ring_k, self.ring_radius, self.ring_std, self.make_ring])
        self.widget = widgets.VBox([widgets.HBox([self.components, ring]), widgets.HBox([self.T, self.variance]),
                                    widgets.HBox([self.n, self.seed]), widgets.HBox([self.t, self.paths]),
                                    self.error, self.image])
        self.chain = self.data = self.mixture = self.schedule = None
        self.make_ring.on_click(lambda _: self._write_ring())
        w.on_change([self.components, self.T, self.variance, self.n, self.seed], self.resample)
        w.on_change([self.t, self.paths], self.redraw)
        self.resample()

    def resample(self) -> None:
        """Read the mixture and run the sampler again, then redraw; a bad line is named on the error line."""
        if w.guarded(self.error, self._resample):
            self.redraw()

    def _resample(self) -> None:
        self.mixture = parse_components(self.components.value)
        self.schedule = NoiseSchedule.linear(self.T.value)
        self.chain = toy_chain(self.mixture, self.schedule, self.n.value, self.seed.value, self.variance.value)
        self.data = data_points(self.mixture, self.n.value, self.seed.value)
        self.t.max = self.schedule.T  # (ipywidgets clamps t into the new range)

    def redraw(self) -> None:
        """Draw the last chain at the chosen t (no sampling)."""
        if self.chain is not None:
            w.guarded(self.error, self._redraw)

    def _redraw(self) -> None:
        t = min(self.t.value, self.schedule.T)
        fig = draw_toy(self.mixture, self.schedule, self.chain, t, self.data, self.paths.value)
        self.image.value = w.figure_bytes(fig)

    def _write_ring(self) -> None:
        ring = ring_mixture(self.ring_k.value, self.ring_radius.value, self.ring_std.value)
        self.components.value = components_text(ring)  # which resamples


def toy_explorer(mixture: GaussianMixture | None = None):
    """The live 2-D toy explorer (an ipywidgets ``VBox``); needs a kernel with ipywidgets.

    In the static book the chapter shows :func:`toy_scrubber` instead.
    """
    return ToyExplorer(mixture).widget


__all__ = ["parse_components", "components_text", "toy_chain", "draw_toy", "data_points", "toy_scrubber",
           "ToyExplorer", "toy_explorer"]
