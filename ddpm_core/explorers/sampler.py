"""The sampler explorer (chapters 4 and 7): the shipped model draws digits while the learner
chooses how.

Algorithm 2 with its T steps and sigma_t^2 = beta_t or beta-tilde_t, eq. {eq}`eq-reverse-variance`,
or DDIM with N steps and its noise eta, eq. {eq}`eq-ddim-step`; autoguidance with weight w,
eq. {eq}`eq-autoguidance`, by the shipped guide; the seed of x_T and of every z. A slider walks
the chain x_T, ..., x_0. Sampling runs in a thread: the progress bar moves, the current x_t shows,
and the Stop button (or any new setting) ends a run between two steps.

Noise my digit to t and denoise it (SDEdit, Meng et al., 2022): instead of x_T ~ N(0, I) the
chain can start from a digit x_0, a held-out one or one the learner draws, noised to x_t in one
step, x_t = q_sample(x_0, t, eps), eq. {eq}`eq-forward-closed-form`, with each copy's own eps;
Algorithm 2 then denoises it from t down to 0 in t steps (SDEdit's own, stochastic sampler), or
DDIM in N steps over ``ddim_timesteps(t, N)``. Small t keeps the digit, large t keeps little of
it. The book's page "Sampling in your browser" does the same with DDIM.

* compute: :class:`SamplerSettings`, :func:`sample_chain` (the library's samplers themselves,
  :func:`ddpm_core.reverse.p_sample_loop` and :func:`ddpm_core.ddim.ddim_sample_loop`, with the
  network called through a watcher that reports each step and can stop the loop), and
  :func:`noised_digits`, SDEdit's start;
* static: :func:`sampler_scrubber`, the chain of one setting (for SDEdit over a range of t,
  :mod:`ddpm_core.explorers.sdedit`);
* live: :func:`sampler_explorer`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, NamedTuple

import torch

from ..ddim import ddim_sample_loop, ddim_timesteps
from ..forward import q_sample
from ..guidance import Autoguided
from ..plotting import Scrubber, image_scrubber
from ..reverse import VARIANCES, EpsModel, p_sample_loop
from ..schedules import NoiseSchedule
from ..validation import check_choice, check_int, check_number
from . import widgets as w
from .digits import drawing_to_image, held_out_count, held_out_digit

SAMPLERS = ("ddpm", "ddim")  # Algorithm 2 (T steps), DDIM (N steps)


@dataclass(frozen=True, kw_only=True)
class SamplerSettings:
    """How to sample, as the explorer's controls give it (defaults: the book's recommended sampler).

    Attributes:
        sampler: ``"ddpm"`` (Algorithm 2, T network calls) or ``"ddim"`` (N calls).
        num_steps: N, DDIM's number of steps, in 1..T (not used by Algorithm 2).
        eta: DDIM's noise, >= 0 (0: deterministic; 1: DDPM-like; not used by Algorithm 2).
        variance: Algorithm 2's sigma_t^2, ``"beta"`` or ``"beta_tilde"`` (not used by DDIM).
        guidance: the autoguidance weight w >= 1 (1: the model alone, no guide needed).
        seed: seed of the generator of x_T (or of each eps of SDEdit) and every z.
        count: how many digits.
        start_t: None: start from x_T ~ N(0, I); a t in 1..T: start from a given digit noised to
            x_t and denoise it from t (SDEdit): Algorithm 2 in t steps, or DDIM (num_steps then in 1..t).
    """

    sampler: str = "ddim"
    num_steps: int = 50
    eta: float = 1.0
    variance: str = "beta"
    guidance: float = 1.5
    seed: int = 0
    count: int = 16
    start_t: int | None = None

    def check(self, T: int) -> None:
        """``ValueError`` naming the first setting that is not allowed for a schedule of T steps."""
        check_choice("sampler", self.sampler, SAMPLERS)
        if self.start_t is not None:
            check_int("start_t", self.start_t, 1, T)
        if self.sampler == "ddim":  # Algorithm 2 takes every step and no eta
            check_int("num_steps", self.num_steps, 1, self.first_t(T))
            check_number("eta", self.eta, low=0)
        else:
            check_choice("variance", self.variance, VARIANCES)
        check_number("guidance", self.guidance, low=1)
        check_int("seed", self.seed, 0)
        check_int("count", self.count, 1)

    def first_t(self, T: int) -> int:
        """The t the chain starts at: T, or start_t."""
        return T if self.start_t is None else self.start_t

    def steps(self, T: int) -> int:
        """How many steps (network calls of the model) one run takes."""
        return self.first_t(T) if self.sampler == "ddpm" else self.num_steps

    def label(self) -> str:
        """e.g. ``"DDIM, 50 steps, η = 1, w = 1.5, seed 0"``, after ``"from x_t, t = 400: "`` with start_t."""
        how = (f"Algorithm 2, σ² = {self.variance}" if self.sampler == "ddpm"
               else f"DDIM, {self.num_steps} steps, η = {self.eta:g}")
        start = "" if self.start_t is None else f"from x_t, t = {self.start_t}: "
        return f"{start}{how}, w = {self.guidance:g}, seed {self.seed}"


class SampleChain(NamedTuple):
    """What :func:`sample_chain` returns."""

    images: torch.Tensor  # x_0, (count, C, H, W), on the CPU
    chain: list[torch.Tensor]  # [x_T (or x_t of SDEdit), ..., x_0]: the state after each step, on the CPU
    timesteps: list[int]  # the t of each entry of chain (0 stands for x_0)


class SamplingStopped(Exception):
    """Raised between two steps when the explorer asks a run to stop."""

    def __init__(self, done: int, total: int):
        super().__init__(f"stopped after {done} of {total} steps")
        self.done, self.total = done, total


class _Watched:
    """The network as the sampler calls it: asks whether to stop before each step, reports after it."""

    def __init__(self, model: EpsModel, total: int, on_step: Callable | None, should_stop: Callable[[], bool] | None):
        self.model, self.total, self.done = model, total, 0
        self.on_step, self.should_stop = on_step, should_stop

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.should_stop is not None and self.should_stop():
            raise SamplingStopped(self.done, self.total)
        eps = self.model(x_t, t)
        self.done += 1
        if self.on_step is not None:
            self.on_step(self.done, self.total, x_t)
        return eps


def check_run(settings: SamplerSettings, schedule: NoiseSchedule, guide: EpsModel | None,
              x0: torch.Tensor | None = None, image_shape: tuple[int, int, int] = (1, 32, 32)) -> None:
    """``ValueError`` if ``settings`` cannot run: a setting out of range, guidance without a guide,
    or a start_t without one digit ``x0`` of shape (1, *image_shape) (or an ``x0`` without start_t)."""
    settings.check(schedule.T)
    if settings.guidance > 1 and guide is None:
        raise ValueError(f"guidance = {settings.guidance:g} needs a guide network (guidance = 1 needs none)")
    if settings.start_t is None and x0 is not None:
        raise ValueError("x0 is noised and denoised only with a start_t (without one the chain starts at x_T)")
    if settings.start_t is not None and x0 is None:
        raise ValueError(f"start_t = {settings.start_t} needs x0, the digit to noise and denoise")
    if x0 is not None and tuple(x0.shape) != (1, *image_shape):
        raise ValueError(f"x0 must be one digit of shape {(1, *image_shape)}, got {tuple(x0.shape)}")


def noised_digits(schedule: NoiseSchedule, x0: torch.Tensor, t: int, count: int,
                  generator: torch.Generator) -> torch.Tensor:
    """SDEdit's start: ``count`` copies of one digit ``x0`` (1, C, H, W), each noised to t in 1..T.

    x_t = q_sample(x_0, t, eps), eq. {eq}`eq-forward-closed-form`, each copy with its own eps ~ N(0, I)
    drawn from ``generator`` (where x_T would be drawn). Returns x_t, (count, C, H, W), float32 like x_T.
    """
    x0 = x0.float().expand(count, *x0.shape[1:])  # (count, C, H, W), one digit repeated
    return q_sample(schedule, x0, t, torch.randn(x0.shape, generator=generator))


def sample_chain(model: EpsModel, schedule: NoiseSchedule, settings: SamplerSettings, guide: EpsModel | None = None,
                 on_step: Callable[[int, int, torch.Tensor], None] | None = None,
                 should_stop: Callable[[], bool] | None = None, image_shape: tuple[int, int, int] = (1, 32, 32),
                 x0: torch.Tensor | None = None) -> SampleChain:
    """Draw ``settings.count`` digits and keep the chain, with the library's own sampler loops.

    The same settings give the same images as calling :func:`ddpm_core.ddim.ddim_sample_loop` or
    :func:`ddpm_core.reverse.p_sample_loop` with ``torch.Generator().manual_seed(seed)`` and the
    model (wrapped in :class:`ddpm_core.guidance.Autoguided` when w > 1). With ``settings.start_t``
    (SDEdit) that generator first draws the eps of :func:`noised_digits` (x0, start_t), and
    ``p_sample_loop`` or ``ddim_sample_loop`` (..., x_T=x_t, start_t=start_t) denoises x_t with it.

    Args:
        model: eps_theta, called as ``model(x_t, t)``.
        schedule: the schedule it was trained with.
        settings: the sampler, its parameters and the seed.
        guide: the weaker network of autoguidance; needed when ``settings.guidance > 1``.
        on_step: called as ``on_step(done, total, x_t)`` after each network call.
        should_stop: asked before each step; True ends the run with :class:`SamplingStopped`.
        image_shape: (C, H, W) of one image; the shipped models draw (1, 32, 32) digits.
        x0: with ``settings.start_t``, the digit to noise and denoise, (1, *image_shape) in [-1, 1].

    Returns:
        a :class:`SampleChain`.
    """
    check_run(settings, schedule, guide, x0, image_shape)
    net = Autoguided(model, guide, settings.guidance) if settings.guidance > 1 else model
    watched = _Watched(net, settings.steps(schedule.T), on_step, should_stop)
    shape = (settings.count, *image_shape)
    generator = torch.Generator().manual_seed(settings.seed)
    x_t = None if x0 is None else noised_digits(schedule, x0, settings.start_t, settings.count, generator)
    if settings.sampler == "ddpm":
        images, chain = p_sample_loop(schedule, watched, shape, generator=generator, variance=settings.variance,
                                      return_intermediates=True, x_T=x_t, start_t=settings.start_t)
        return SampleChain(images, chain, list(range(settings.first_t(schedule.T), -1, -1)))
    images, chain = ddim_sample_loop(schedule, watched, shape, settings.num_steps, eta=settings.eta,
                                     generator=generator, return_intermediates=True, x_T=x_t, start_t=settings.start_t)
    return SampleChain(images, chain, ddim_timesteps(settings.first_t(schedule.T), settings.num_steps) + [0])


@lru_cache(maxsize=1)
def shipped_networks() -> tuple[torch.nn.Module, NoiseSchedule, torch.nn.Module]:
    """(model, schedule, guide): the shipped model and its autoguidance guide (:mod:`ddpm_core.weights`)."""
    from ..weights import PRETRAINED_GUIDE, load_pretrained, load_weights

    model, schedule = load_pretrained()
    guide, _ = load_weights(PRETRAINED_GUIDE)
    return model, schedule, guide


def sampler_scrubber(settings: SamplerSettings = SamplerSettings(), frames: int = 26, networks=None,
                     **kwargs) -> Scrubber:
    """The static stand-in of :func:`sampler_explorer`: the chain of one setting, about ``frames`` states.

    ``networks`` is (model, schedule, guide), by default :func:`shipped_networks`.
    """
    model, schedule, guide = shipped_networks() if networks is None else networks
    result = sample_chain(model, schedule, settings, guide)
    last = len(result.chain) - 1
    picks = sorted({round(i * last / max(frames - 1, 1)) for i in range(frames)})
    kwargs.setdefault("title", f"The reverse chain from t = T to 0: {settings.label()}")
    return image_scrubber([result.chain[i] for i in picks], [f"t = {result.timesteps[i]}" for i in picks],
                          nrow=8, **kwargs)


def chain_png(chain: SampleChain, index: int) -> bytes:
    """State ``index`` of the chain as a PNG grid, 8 digits a row, each pixel 2 x 2."""
    return w.grid_png(chain.chain[check_int("index", index, 0, len(chain.chain) - 1)])


VIEW_LABELS = [("Algorithm 2", "ddpm"), ("DDIM", "ddim")]  # short: a button is about 10 characters wide
START_LABELS = [("noise x_T", "noise"), ("a held-out digit", "digit"), ("my drawing", "drawing")]
EDIT_T = 400  # the t slider's first value, as on the page "Sampling in your browser"


class SamplerExplorer:
    """The live view: the sampler's settings, Run and Stop, progress, the digits and a slider over the chain.

    Any change of a setting starts a new run (the one under way stops between two steps).
    ``networks`` is (model, schedule, guide), by default :func:`shipped_networks`; ``settings``
    gives the controls their first values and the number of digits (``count``). Drawing does not
    start a run (each square would); Run, or any other control, does.

    Attributes (the controls): ``start`` (``"noise"``, ``"digit"`` or ``"drawing"``), ``digit``, ``t``,
    ``squares`` (14 rows of 14 ``ToggleButton``), ``clear``, ``x0_image`` (the digit noised);
    ``sampler``, ``num_steps``, ``eta``, ``variance``, ``guidance``, ``seed``,
    ``run_button``, ``stop_button``, ``progress``, ``status``, ``step`` (the slider over the chain) and
    ``step_label`` (its t);
    ``image``, ``error``, ``widget``; ``result``, the last finished :class:`SampleChain`.
    """

    def __init__(self, networks=None, settings: SamplerSettings = SamplerSettings()):
        widgets = w.require_ipywidgets("sampler_explorer")
        self.model, self.schedule, self.guide = shipped_networks() if networks is None else networks
        self.count, self.result, self._thread, self._stop = settings.count, None, None, threading.Event()
        start = self._start_controls(widgets, settings)
        self.sampler = widgets.ToggleButtons(options=VIEW_LABELS, value=settings.sampler, description="sampler")
        self.num_steps = widgets.IntSlider(value=settings.num_steps, min=1, max=self.schedule.T, description="DDIM N",
                                           continuous_update=False)
        self.eta = widgets.FloatSlider(value=settings.eta, min=0, max=1, step=0.1, description="DDIM η",
                                       continuous_update=False)
        self.variance = widgets.ToggleButtons(options=list(VARIANCES), value=settings.variance, description="σ²")
        self.guidance = widgets.FloatSlider(value=settings.guidance, min=1, max=3, step=0.1, description="guidance w",
                                            continuous_update=False)
        self.seed = widgets.IntText(value=settings.seed, description="seed", layout=w.narrow(widgets, "180px"))
        self.run_button, self.stop_button = widgets.Button(description="Run"), widgets.Button(description="Stop")
        self.progress, self.status = widgets.IntProgress(value=0, min=0, max=1), widgets.HTML(value="")
        self.step, self.step_label = widgets.IntSlider(value=0, min=0, max=0, description="chain"), widgets.Label()
        self.image, self.error = w.picture(widgets, 2 * (8 * 34 + 2)), w.error_line(widgets)  # 8 digits a row, 2x
        self.widget = widgets.VBox([start, self.sampler, widgets.HBox([self.num_steps, self.eta]), self.variance,
                                    widgets.HBox([self.guidance, self.seed]),
                                    widgets.HBox([self.run_button, self.stop_button, self.progress]), self.status,
                                    self.error, self.image, widgets.HBox([self.step, self.step_label])])
        w.on_change([self.start, self.digit, self.t, self.sampler, self.num_steps, self.eta, self.variance,
                     self.guidance, self.seed], self.run)
        self.run_button.on_click(lambda _: self.run())
        self.stop_button.on_click(lambda _: self.stop())
        self.clear.on_click(lambda _: w.clear_drawing(self.squares))
        self.step.observe(lambda change: self._show_state(), names="value")
        self.run()

    def _start_controls(self, widgets, settings: SamplerSettings):
        """Where the chain starts: noise, or a held-out digit or a drawing noised to t (SDEdit). Their box."""
        self.start = widgets.ToggleButtons(options=START_LABELS, value="noise" if settings.start_t is None else "digit",
                                           description="start")
        self.digit = widgets.IntSlider(value=0, min=0, max=held_out_count() - 1, description="test digit",
                                       continuous_update=False)
        self.t = widgets.IntSlider(value=settings.start_t or EDIT_T, min=1, max=self.schedule.T,
                                   description="noise to t", continuous_update=False)
        note = "Click squares to draw a digit (each square is 2 x 2 pixels), then press Run."
        self.drawing, self.squares, self.clear = w.drawing_pad(widgets, note)
        self.x0_image = w.picture(widgets, 2 * 34)  # one digit, 2x
        return widgets.VBox([self.start, widgets.HBox([self.digit, self.t, self.x0_image]), self.drawing])

    def settings(self) -> SamplerSettings:
        """The settings as the controls hold them now."""
        return SamplerSettings(sampler=self.sampler.value, num_steps=self.num_steps.value, eta=self.eta.value,
                               variance=self.variance.value, guidance=self.guidance.value, seed=self.seed.value,
                               count=self.count, start_t=None if self.start.value == "noise" else self.t.value)

    def x0(self) -> torch.Tensor | None:
        """The digit to noise and denoise, as the controls say (None: start from noise)."""
        if self.start.value == "digit":
            return held_out_digit(self.digit.value)
        return drawing_to_image(w.drawn(self.squares)) if self.start.value == "drawing" else None

    def run(self) -> None:
        """Stop the run under way, check the settings and the digit, and start sampling in a thread."""
        self.stop()
        self._enable_controls()
        try:
            settings, x0 = self.settings(), self.x0()
            check_run(settings, self.schedule, self.guide, x0)
        except ValueError as err:  # bad input (an empty drawing, N > t) is named on the error line
            w.show_error(self.error, str(err))
            return
        w.show_error(self.error, None)
        self.x0_image.value = b"" if x0 is None else w.grid_png(x0.float(), nrow=1)
        self._stop = threading.Event()
        self.progress.max, self.progress.value = settings.steps(self.schedule.T), 0
        self.status.value = f"sampling {self.count} digits: {settings.label()} ..."
        self._forget_chain()  # the slider would walk the previous run's chain
        self._thread = threading.Thread(target=self._work, args=(settings, x0, self._stop), daemon=True)
        self._thread.start()

    def _enable_controls(self) -> None:
        """Grey out what the chosen sampler and start do not use; show the pad only for a drawing."""
        self.num_steps.disabled = self.eta.disabled = self.sampler.value == "ddpm"
        self.variance.disabled = self.sampler.value == "ddim"
        self.digit.disabled, self.t.disabled = self.start.value != "digit", self.start.value == "noise"
        self.drawing.layout.display = None if self.start.value == "drawing" else "none"
        self.x0_image.layout.display = "none" if self.start.value == "noise" else None

    def stop(self) -> None:
        """Ask the run under way to stop after its current step, and wait until it has."""
        self._stop.set()
        self.wait()

    def wait(self, timeout: float | None = None) -> None:
        """Wait until the run under way (if any) has ended."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _work(self, settings: SamplerSettings, x0: torch.Tensor | None, stop: threading.Event) -> None:
        start = last_shown = time.perf_counter()

        def on_step(done: int, total: int, x_t: torch.Tensor) -> None:
            nonlocal last_shown
            self.progress.value = done
            if time.perf_counter() - last_shown > 0.5:  # the current x_t, twice a second at most
                self.image.value, last_shown = w.grid_png(x_t), time.perf_counter()

        try:
            result = sample_chain(self.model, self.schedule, settings, self.guide, on_step, stop.is_set, x0=x0)
        except SamplingStopped as stopped:
            self.status.value = f"{stopped} ({settings.label()})"
            return
        except Exception as err:  # a thread has no cell to show its traceback in: say it here
            w.show_error(self.error, f"{type(err).__name__}: {err}")
            return
        self.result, first = result, "x_T" if settings.start_t is None else f"x_{settings.start_t}"
        self.status.value = (f"{self.count} digits in {time.perf_counter() - start:.1f} s: {settings.label()}; "
                             f"the slider walks the chain from {first} to x_0")
        self.step.max = len(result.chain) - 1
        self.step.value = self.step.max
        self._show_state()

    def _forget_chain(self) -> None:
        self.result = None
        self.step.max = self.step.value = 0
        self.step_label.value = "no chain yet"

    def _show_state(self) -> None:
        if self.result is not None and self.step.value < len(self.result.chain):
            self.image.value = chain_png(self.result, self.step.value)
            self.step_label.value = f"t = {self.result.timesteps[self.step.value]}"


def sampler_explorer(networks=None, settings: SamplerSettings = SamplerSettings()):
    """The live sampler explorer (an ipywidgets ``VBox``); needs a kernel with ipywidgets.

    ``networks`` is (model, schedule, guide), by default the shipped ones; ``settings`` are the
    controls' first values and the number of digits. In the static book the chapter shows
    :func:`sampler_scrubber` instead.
    """
    return SamplerExplorer(networks, settings=settings).widget


__all__ = ["SAMPLERS", "SamplerSettings", "SampleChain", "SamplingStopped", "check_run", "noised_digits",
           "sample_chain", "shipped_networks", "sampler_scrubber", "chain_png", "SamplerExplorer", "sampler_explorer"]
