"""Everything that determines a training run: :class:`TrainConfig`, and what may change on resuming."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from ..schedules import SCHEDULE_NAMES, NoiseSchedule
from ..unet import UNetConfig
from ..validation import check_choice, check_int, check_number

SCHEDULES = SCHEDULE_NAMES
LOSS_TYPES = ("l2", "l1")
LR_DECAYS = ("none", "cosine")
LOSS_WEIGHTINGS = ("uniform", "min_snr")
OPTIMIZERS = ("adam", "muon")
DATA_SOURCES = ("offline", "mnist", "cifar10", "fashion-mnist")  # and "folder:PATH"
AMP_MODES = ("auto", "off", "fp16", "bf16")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything that determines a training run.

    A run resumes only with the configuration it was started with, except for the fields in
    :data:`RESUMABLE_CHANGES`, which do not change the weights (``steps`` may grow, unless
    ``lr_decay="cosine"``).

    Attributes:
        T: number of diffusion steps.
        schedule: ``"linear"`` (Ho et al.) or ``"cosine"`` (Nichol & Dhariwal).
        batch_size: images per step.
        lr: peak learning rate of Adam.
        optimizer: ``"adam"`` for every parameter, or ``"muon"``: :class:`Muon` for the
            weight matrices and convolution filters between the first and the last layer,
            Adam (at ``lr``) for the rest (:func:`make_optimizer`).
        muon_lr: peak learning rate of the Muon parameters (``optimizer="muon"`` only); it
            follows the same warm-up and decay as ``lr``.
        warmup_steps: steps of linear warm-up from 0 to ``lr`` (0: none).
        lr_decay: after the warm-up, ``"none"`` (constant ``lr``) or ``"cosine"`` (down to 0
            at the last step, eq. {eq}`eq-training-lr`). With ``"cosine"`` the learning rate
            depends on ``steps``, so a run cannot be resumed with a different ``steps``.
        steps: total number of optimizer steps.
        ema_decay: decay of the exponential moving average of the weights, in [0, 1).
        grad_clip: clip the gradient's global norm to this value (0: no clipping).
        loss_type: ``"l2"`` (L_simple) or ``"l1"``.
        loss_weighting: ``"uniform"`` (every t weighs 1: L_simple) or ``"min_snr"`` (each
            example's error times :func:`~ddpm_core.losses.min_snr_weight`, eq. {eq}`eq-min-snr`).
        min_snr_gamma: the cap gamma of ``"min_snr"``.
        seed: seed of the weights' initialisation, the data order and the noise.
        checkpoint_every: write a checkpoint every this many steps (0: only at the end).
        keep_checkpoints: keep the run's first checkpoint (the autoguidance guide) and the
            newest this many, deleting the others as new ones are written (0: keep all).
        log_every: append a line to metrics.jsonl every this many steps.
        sample_every: save a grid of EMA samples every this many steps (0: never).
        data: ``"offline"`` (the 4,500 training digits of :func:`ddpm_core.data.load_mnist_5k`),
            ``"mnist"`` (60,000 digits through torchvision, needs a network), ``"folder:PATH"``
            (every image under PATH, resized and centre-cropped to ``model.image_size``, in
            ``model.image_channels`` channels), ``"cifar10"`` or ``"fashion-mnist"`` (through
            torchvision; :mod:`ddpm_core.datasets`).
        random_flip: flip each training image horizontally with probability 1/2.
        label_dropout: for a class-conditional network (``model.num_classes`` > 0), the
            probability that an image's label is replaced by "no label", so that the network
            also learns to predict without one (classifier-free guidance needs both).
        num_workers: worker processes that decode images read from disk (``folder:``,
            ``cifar10``, ``fashion-mnist``) while the network trains; 0 decodes in the
            training process. It changes nothing of what a step computes.
        amp: mixed precision: ``"auto"`` (bf16 on GPUs and CPUs that compute in it natively;
            else fp16 with a gradient scaler on a GPU, off on a CPU), ``"off"``, ``"fp16"``
            (GPU only) or ``"bf16"``.
        channels_last: store activations as (B, H, W, C) in memory (faster on recent GPUs).
        compile: wrap the model in ``torch.compile``.
        device: ``"auto"`` (CUDA if available), ``"cpu"`` or ``"cuda"``.
        model: the :class:`~ddpm_core.unet.UNetConfig`.
    """

    T: int = 1000
    schedule: Literal["linear", "cosine"] = "linear"
    batch_size: int = 128
    lr: float = 2e-4
    optimizer: Literal["adam", "muon"] = "adam"
    muon_lr: float = 0.01
    warmup_steps: int = 1000
    lr_decay: Literal["none", "cosine"] = "none"
    steps: int = 20000
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    loss_type: Literal["l2", "l1"] = "l2"
    loss_weighting: Literal["uniform", "min_snr"] = "uniform"
    min_snr_gamma: float = 5.0
    seed: int = 0
    checkpoint_every: int = 1000
    keep_checkpoints: int = 0
    log_every: int = 100
    sample_every: int = 0
    data: str = "offline"
    random_flip: bool = False
    label_dropout: float = 0.1
    num_workers: int = 0
    amp: Literal["auto", "off", "fp16", "bf16"] = "auto"
    channels_last: bool = False
    compile: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    model: UNetConfig = dataclasses.field(default_factory=UNetConfig)

    def __post_init__(self) -> None:
        check_int("T", self.T, 1)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_int("batch_size", self.batch_size, 1)
        check_number("lr", self.lr, low=0, low_open=True)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_number("muon_lr", self.muon_lr, low=0, low_open=True)
        check_int("warmup_steps", self.warmup_steps, 0)
        check_choice("lr_decay", self.lr_decay, LR_DECAYS)
        check_int("steps", self.steps, 1)
        check_number("ema_decay", self.ema_decay, low=0, high=1, high_open=True)
        check_number("grad_clip", self.grad_clip, low=0)
        check_choice("loss_type", self.loss_type, LOSS_TYPES)
        check_choice("loss_weighting", self.loss_weighting, LOSS_WEIGHTINGS)
        check_number("min_snr_gamma", self.min_snr_gamma, low=0, low_open=True)
        for name in ("seed", "checkpoint_every", "keep_checkpoints", "sample_every"):
            check_int(name, getattr(self, name), 0)
        check_int("log_every", self.log_every, 1)
        is_folder = isinstance(self.data, str) and self.data.startswith("folder:") and len(self.data) > len("folder:")
        if not (is_folder or self.data in DATA_SOURCES):
            raise ValueError(f"data must be one of {DATA_SOURCES} or 'folder:PATH', got {self.data!r}")
        check_int("num_workers", self.num_workers, 0)
        check_number("label_dropout", self.label_dropout, low=0, high=1, high_open=True)
        check_choice("amp", self.amp, AMP_MODES)
        for name in ("random_flip", "channels_last", "compile"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        check_choice("device", self.device, DEVICES)
        if not isinstance(self.model, UNetConfig):
            raise ValueError(f"model must be a UNetConfig, got {type(self.model).__name__}")

    def to_dict(self) -> dict:
        """The fields as a JSON-friendly dict, with ``model`` nested."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["model"] = self.model.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {sorted(unknown)}")
        d = dict(d)
        if "model" in d:
            d["model"] = UNetConfig.from_dict(d["model"])
        return cls(**d)


# Fields a resumed session may set differently: they change when things are logged, saved,
# previewed or compiled, and how long the run is, but not what one step computes.
RESUMABLE_CHANGES = ("steps", "checkpoint_every", "keep_checkpoints", "log_every", "sample_every", "compile",
                     "num_workers")


def make_schedule(cfg: TrainConfig) -> NoiseSchedule:
    """The :class:`NoiseSchedule` a configuration trains with."""
    return NoiseSchedule.named(cfg.schedule, cfg.T)


def config_differences(saved: dict, cfg: TrainConfig, ignore: tuple[str, ...] = RESUMABLE_CHANGES) -> list[str]:
    """Fields (``model.*`` for the network's) where ``saved`` and ``cfg`` differ, ``ignore`` left out.

    A field missing from ``saved`` (written before the field existed) counts as its default.
    """
    current = cfg.to_dict()
    defaults = TrainConfig().to_dict()
    diffs = []
    for key in sorted(set(saved) | set(current)):
        if key in ignore:
            continue
        a, b = saved.get(key, defaults.get(key)), current.get(key)
        if key == "model" and isinstance(a, dict) and isinstance(b, dict):
            a = {**defaults["model"], **a}
            diffs += [f"model.{k}: {a.get(k)!r} != {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif a != b:
            diffs.append(f"{key}: {a!r} != {b!r}")
    return diffs
