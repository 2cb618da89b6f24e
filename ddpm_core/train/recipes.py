"""The named training recipes, each one :class:`TrainConfig` defined here and nowhere else.

* :data:`QUICK`: the CPU recipe that trained the model shipped in ``ddpm_core/assets``
  (``python -m ddpm_core.train --recipe quick``, or ``--quick``): about ten minutes on two
  CPU cores.
* :data:`FULL`: the GPU recipe of the training chapter: 20,000 steps on the 60,000 MNIST
  digits with the default network, in mixed precision.
* :data:`TEST`: the training chapter's quick mode: a hundred steps of a narrow network on
  the offline digits, so that the tests run the chapter's code path on any CPU.

Change a field with :func:`dataclasses.replace`, e.g. ``replace(FULL, steps=5000)``.
"""

from ..unet import UNetConfig
from .config import TrainConfig

QUICK = TrainConfig(
    steps=6000, batch_size=128, lr=3e-3, optimizer="muon", muon_lr=0.01, warmup_steps=100,
    lr_decay="cosine", ema_decay=0.999, loss_weighting="min_snr", min_snr_gamma=5.0,
    checkpoint_every=500, log_every=100, sample_every=0, device="cpu",
    model=UNetConfig(base_channels=16, dropout=0.0, attention_resolutions=()),
)

FULL = TrainConfig(
    data="mnist",  # 60,000 digits, downloaded by torchvision
    steps=20000, batch_size=128, lr=1e-3, warmup_steps=500, lr_decay="cosine", ema_decay=0.9995,
    loss_weighting="min_snr",  # eq. (eq-min-snr), gamma = 5
    checkpoint_every=1000, keep_checkpoints=3,  # on disk: the first (the autoguidance guide) and the newest 3
    log_every=100, sample_every=2000,
    amp="auto", channels_last=True, compile=False,
    model=UNetConfig(),
)

TEST = TrainConfig(
    data="offline",  # the 4,500 training digits that ship with ddpm_core: no download
    steps=100, batch_size=32, lr=2e-3, warmup_steps=10, lr_decay="cosine", ema_decay=0.99,
    loss_weighting="min_snr",
    checkpoint_every=25, log_every=10, sample_every=25,
    amp="off", device="cpu",
    model=UNetConfig(base_channels=16),
)

RECIPES = {"quick": QUICK, "full": FULL, "test": TEST}
