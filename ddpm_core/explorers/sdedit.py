"""SDEdit over a range of t, the static stand-in of the sampler explorer's "noise my digit".

One held-out digit, noised to x_t = q_sample(x_0, t, eps) for several t and denoised from each by
the explorer's own :func:`~ddpm_core.explorers.sampler.sample_chain` (SDEdit, Meng et al., 2022):
small t gives the digit back, large t another digit. :func:`sdedit_runs` computes the runs,
:func:`sdedit_scrubber` shows them, a frame per t (chapter 7).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import torch

from ..plotting import Scrubber, image_scrubber
from ..schedules import NoiseSchedule
from .digits import held_out_digit
from .sampler import SampleChain, SamplerSettings, sample_chain, shipped_networks

SDEDIT_STARTS = (50, 100, 200, 300, 400, 500, 600, 700, 800, 1000)  # the t of each frame of sdedit_scrubber
SDEDIT_SETTINGS = SamplerSettings(num_steps=25, eta=0.0, count=8)  # deterministic from x_t, guided (w = 1.5)


def sdedit_runs(index: int = 0, starts: Sequence[int] = SDEDIT_STARTS, settings: SamplerSettings = SDEDIT_SETTINGS,
                networks=None) -> dict[int, SampleChain]:
    """The explorer's "noise my digit to t and denoise it" (SDEdit) for a range of t, t -> its run.

    Held-out digit ``index`` (:func:`held_out_digit`), ``settings.count`` copies of it noised to each
    t of ``starts`` (``noised_digits``, the same seed for every t) and denoised by
    :func:`sample_chain` with ``settings`` from t: Algorithm 2 in t steps, or DDIM in min(num_steps, t).
    ``networks`` is (model, schedule, guide), by default :func:`shipped_networks`.
    """
    model, schedule, guide = shipped_networks() if networks is None else networks
    x0 = held_out_digit(index)
    runs = {}
    for t in starts:
        run = replace(settings, start_t=t, num_steps=min(settings.num_steps, t))
        runs[t] = sample_chain(model, schedule, run, guide, x0=x0)
    return runs


def sdedit_scrubber(runs: dict[int, SampleChain], schedule: NoiseSchedule, **kwargs) -> Scrubber:
    """The static stand-in of SDEdit in ``sampler_explorer``: a frame per t of :func:`sdedit_runs`,
    the noised copies x_t in the top row and what the sampler made of each below it."""
    frames = [torch.cat([run.chain[0], run.images]) for run in runs.values()]  # x_t above, x_0 below
    labels = [f"t = {t}, √ᾱₜ = {float(schedule.sqrt_alphas_cumprod[t]):.2f}" for t in runs]
    kwargs.setdefault("title", "A digit noised to t (top) and denoised (below)")
    return image_scrubber(frames, labels, nrow=frames[0].shape[0] // 2, **kwargs)


__all__ = ["SDEDIT_STARTS", "SDEDIT_SETTINGS", "sdedit_runs", "sdedit_scrubber"]
