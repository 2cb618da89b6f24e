"""Training: Algorithm 1 of Ho et al. (2020) with the engineering around it.

The mathematics is three lines (:func:`training_step`): draw t ~ Uniform{1..T} and
eps ~ N(0, I), form x_t, take a gradient step on L_simple, eq. {eq}`eq-loss-simple`.
Everything else makes a run reproducible and safe to stop. One idea per module:

* :mod:`.config`: :class:`TrainConfig`, everything that determines a run;
* :mod:`.recipes`: the named recipes :data:`QUICK` (CPU), :data:`FULL` (GPU) and :data:`TEST`;
* :mod:`.step`: :func:`training_step`, and :class:`NonFiniteLossError`, the stop at a NaN;
* :mod:`.optim`: the moving average of the weights (:class:`EMA`), :class:`Muon`, the
  optimizer and the learning rate of each step (:func:`lr_at`);
* :mod:`.precision`: the device and mixed precision;
* :mod:`.state`: the run's state and its checkpoints, so that a stopped run resumes bit for bit;
* :mod:`.metrics`: ``metrics.jsonl`` and preview grids;
* :mod:`.batches`: the images of each step, from memory or read from disk by worker processes;
* :mod:`.distributed`: several processes (``torchrun``), each training on a slice of each batch;
* :mod:`.loop`: :func:`train`, the loop that ties them together;
* :mod:`.cli`: ``python -m ddpm_core.train``.

Weights files and checkpoints on disk are :mod:`ddpm_core.weights`' business: sampling and
evaluation read them without importing anything from here.

Timestep convention: the paper's t = 1..T; schedule arrays are indexed by t directly.
"""

from .config import RESUMABLE_CHANGES, TrainConfig, config_differences, make_schedule
from .loop import TrainResult, load_training_images, train
from .optim import EMA, Muon, lr_at, make_optimizer, newton_schulz_orthogonalize
from .precision import cpu_has_native_bf16, resolve_amp, resolve_device
from .recipes import FULL, QUICK, RECIPES, TEST
from .step import NonFiniteLossError, training_step

__all__ = [
    "TrainConfig", "RESUMABLE_CHANGES", "config_differences", "make_schedule",
    "QUICK", "FULL", "TEST", "RECIPES",
    "training_step", "NonFiniteLossError",
    "EMA", "Muon", "newton_schulz_orthogonalize", "make_optimizer", "lr_at",
    "resolve_device", "resolve_amp", "cpu_has_native_bf16",
    "train", "TrainResult", "load_training_images",
]
