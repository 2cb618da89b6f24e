"""Live explorers: the book's quantities under the learner's hands, in Jupyter and Colab.

One module per thing explored, each in three layers:

* **compute**: plain functions of the library's objects (schedules, samplers, the exact toy
  denoiser) that return numbers and tensors; the tests check them against the library;
* **draw**: a function (or, for the schedule, a figure updated in place) that turns them into
  a matplotlib figure;
* **view**: an ipywidgets view whose controls call the two above; its explorer function
  (``schedule_explorer()``, ...) returns the widget. ipywidgets is imported only when a view is
  built, so ``import ddpm_core.explorers`` needs nothing beyond ddpm_core.

The static book has no kernel, so each explorer has a ``..._scrubber()`` that draws a
:class:`ddpm_core.plotting.Scrubber` (precomputed frames under a slider) with the same draw
function. Explorers and chapters:

=====================================  =================================  ========
explorer (live)                        stand-in (static)                  chapter
=====================================  =================================  ========
:func:`schedule_explorer`              :func:`schedule_scrubber`          2
:func:`forward_posterior_explorer`     :func:`forward_posterior_scrubber` 2, 3
:func:`sampler_explorer`               :func:`sampler_scrubber`           4, 7
:func:`toy_explorer`                   :func:`toy_scrubber`               4
:func:`training_dashboard`             ``TrainingDashboard.scrubber()``   7
=====================================  =================================  ========

The sampler explorer also starts from a digit (held out, or drawn) noised to t and denoises it
from t with Algorithm 2 or DDIM (SDEdit), as the page "Sampling in your browser" does with DDIM;
:func:`sdedit_runs` does it for a range of t and :func:`sdedit_scrubber` shows them in the static
book (chapter 7).

Bad input (beta_T <= beta_1, T < 1, an empty drawing, more DDIM steps than t, a mixture line
that is not four numbers) is named on a red line in the view, never shown as a traceback.
"""

from .digits import drawing_to_image, fixed_noise, held_out_digit
from .forward_posterior import (
    ForwardPosteriorExplorer,
    forward_posterior,
    forward_posterior_explorer,
    forward_posterior_scrubber,
    pixel_posterior,
)
from .sampler import SamplerExplorer, SamplerSettings, SamplingStopped, sample_chain, sampler_explorer, sampler_scrubber
from .sdedit import sdedit_runs, sdedit_scrubber
from .schedule import ScheduleExplorer, ScheduleSpec, schedule_curves, schedule_explorer, schedule_scrubber
from .toy import ToyExplorer, components_text, parse_components, toy_chain, toy_explorer, toy_scrubber
from .training import TrainingDashboard, training_dashboard, training_summary

__all__ = [
    "ScheduleSpec",
    "schedule_curves",
    "schedule_scrubber",
    "schedule_explorer",
    "ScheduleExplorer",
    "held_out_digit",
    "fixed_noise",
    "drawing_to_image",
    "forward_posterior",
    "pixel_posterior",
    "forward_posterior_scrubber",
    "forward_posterior_explorer",
    "ForwardPosteriorExplorer",
    "SamplerSettings",
    "SamplingStopped",
    "sample_chain",
    "sampler_scrubber",
    "sdedit_runs",
    "sdedit_scrubber",
    "sampler_explorer",
    "SamplerExplorer",
    "parse_components",
    "components_text",
    "toy_chain",
    "toy_scrubber",
    "toy_explorer",
    "ToyExplorer",
    "training_summary",
    "training_dashboard",
    "TrainingDashboard",
]
