"""Weights on disk: finished models as safetensors with a JSON card, and training checkpoints.

Two kinds of file, read by training, sampling, evaluation and the chapters alike:

* **A weights file** (:func:`save_model`, :func:`load_model`): ``name.safetensors`` holding the
  tensors and ``name.json`` beside it, a card saying what network they belong to and how they
  were made. Neither can run code when read. The model shipped with ``ddpm_core``
  (:data:`PRETRAINED`) is one.
* **A checkpoint** (``run_dir/checkpoints/step_XXXXXXX.pt``): everything a training run needs
  to go on (weights, their moving average, the optimizer, the random generators). Read with
  ``torch.load(..., weights_only=True)``, which refuses pickled code (:func:`load_checkpoint`).

The card of a model's weights file carries its training configuration as a plain dict
(``train_config``), from which :func:`load_pretrained` rebuilds the noise schedule; nothing
here imports the training code.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Callable

import torch

from .schedules import NoiseSchedule
from .unet import UNet, UNetConfig

ASSETS = Path(__file__).parent / "assets"
PRETRAINED = ASSETS / "mnist_ddpm.safetensors"
PRETRAINED_GUIDE = ASSETS / "mnist_ddpm_guide.safetensors"  # its run's first checkpoint (ddpm_core.guidance)
PRETRAINED_CONDITIONAL = ASSETS / "mnist_ddpm_conditional.safetensors"  # class-conditional, label dropout
STORAGE_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


# ----------------------------------------------------------------------------- weights files


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], card: dict,
                 dtype: torch.dtype = torch.float32) -> None:
    """Write ``tensors`` to ``path`` (safetensors, stored as ``dtype``) and ``card`` beside it as JSON."""
    from safetensors.torch import save_file

    if dtype not in STORAGE_DTYPES:
        raise ValueError(f"dtype must be one of {STORAGE_DTYPES}, got {dtype}")
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"path must end in .safetensors, got {str(path)!r}")
    stored = {k: v.detach().to("cpu", dtype).contiguous() for k, v in tensors.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(stored, str(path), metadata={"format": "pt"})
    path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")


def read_card(path: str | Path) -> dict:
    """The JSON card beside the weights file ``path``."""
    card_path = Path(path).with_suffix(".json")
    if not Path(path).exists() or not card_path.exists():
        raise ValueError(f"path must name a .safetensors file with a .json card next to it, got {str(path)!r}")
    return json.loads(card_path.read_text())


def load_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """What :func:`save_tensors` wrote: the tensors as float32 and the card."""
    from safetensors.torch import load_file

    card = read_card(path)
    return {k: v.float() for k, v in load_file(str(path)).items()}, card


def save_model(model: UNet, config: UNetConfig, path: str | Path, metadata: dict | None = None,
               dtype: torch.dtype = torch.float32) -> None:
    """Write a U-Net's weights as safetensors and its card (same name, ``.json``).

    The card holds ``{"unet_config": ..., **metadata}``; put the training configuration under
    ``metadata["train_config"]`` so that :func:`load_pretrained` can rebuild the noise schedule.

    Args:
        model: the network.
        config: its :class:`UNetConfig`.
        path: the ``.safetensors`` file to write.
        metadata: JSON-serialisable provenance (command, steps, date, ...).
        dtype: storage dtype (float32, or float16 for half the size).
    """
    save_tensors(path, model.state_dict(), {"unet_config": config.to_dict(), **(metadata or {})}, dtype)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[UNet, dict]:
    """Read what :func:`save_model` wrote: the network (float32, eval mode) and its card."""
    tensors, card = load_tensors(path)
    model = UNet(UNetConfig.from_dict(card["unet_config"]))
    model.load_state_dict(tensors)
    return model.to(device).eval(), card


def schedule_of(train_config: dict) -> NoiseSchedule:
    """The noise schedule a training configuration (as a dict, :meth:`TrainConfig.to_dict`) used.

    A field missing from the dict takes ``TrainConfig``'s default: the linear schedule, T = 1000.
    """
    return NoiseSchedule.named(train_config.get("schedule", "linear"), train_config.get("T", 1000))


def load_pretrained(path: str | Path | None = None, device: str | torch.device = "cpu") -> tuple[UNet, NoiseSchedule]:
    """The MNIST model shipped in ``ddpm_core/assets`` (EMA weights) and its noise schedule.

    Args:
        path: another ``.safetensors`` file written by :func:`save_model` with a ``train_config``.
        device: where to put the model.

    Returns:
        (model, schedule): the network in eval mode and the :class:`NoiseSchedule` it was trained with.
    """
    model, card = load_model(PRETRAINED if path is None else path, device=device)
    return model, schedule_of(card["train_config"])


# ----------------------------------------------------------------------------- checkpoints

CHECKPOINT_RE = re.compile(r"^step_(\d{7})\.pt$")


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    """run_dir/checkpoints/step_XXXXXXX.pt."""
    return Path(run_dir) / "checkpoints" / f"step_{step:07d}.pt"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """The checkpoints of a run, oldest first."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if CHECKPOINT_RE.match(p.name)]
    return sorted(found, key=lambda p: int(CHECKPOINT_RE.match(p.name).group(1)))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint safely: ``weights_only=True`` refuses anything but tensors and plain data."""
    return torch.load(path, map_location=map_location, weights_only=True)


def load_newest_checkpoint(run_dir: str | Path, map_location: str | torch.device = "cpu") -> tuple[Path, dict] | None:
    """The newest checkpoint of a run that can be read, as (path, contents); None if there is none.

    A file that cannot be read (cut short when a session died on a file system that lost the
    end of it, or damaged later) is skipped with a warning naming it, and the one before it is
    tried. The skipped file is left where it is; the resumed run overwrites it when it gets there.
    """
    for path in reversed(list_checkpoints(run_dir)):
        try:
            return path, load_checkpoint(path, map_location=map_location)
        except Exception as err:  # torch raises RuntimeError, EOFError or UnpicklingError for a damaged file
            warnings.warn(f"skipping checkpoint {path}, which cannot be read ({type(err).__name__}: {err}); "
                          f"trying the one before it", stacklevel=2)
    return None


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write to a temporary file, flush it to disk, then rename: a crash never leaves half a file under ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())  # the bytes are on disk before the name points at them
    os.replace(tmp, path)


def ema_model_from_checkpoint(ckpt: dict) -> tuple[UNet, dict]:
    """The network of a checkpoint with its EMA weights (eval mode, CPU), and its training configuration.

    The checkpoint's weights are loaded first (for any buffers), then every parameter is
    overwritten by its moving average, ``ckpt["ema"]["shadow"]``.
    """
    train_config = json.loads(ckpt["config"])
    model = UNet(UNetConfig.from_dict(train_config.get("model", {})))
    model.load_state_dict(ckpt["model"])
    shadow = ckpt["ema"]["shadow"]
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(shadow[name])
    return model.eval(), train_config


def export_checkpoint(checkpoint: str | Path, path: str | Path, metadata: dict | None = None,
                      dtype: torch.dtype = torch.float32) -> None:
    """Write a checkpoint's EMA weights with :func:`save_model` (``train_config`` added to the metadata)."""
    ckpt = load_checkpoint(checkpoint)
    model, train_config = ema_model_from_checkpoint(ckpt)
    card = {"train_config": train_config, "steps": int(ckpt["step"]), **(metadata or {})}
    save_model(model, model.config, path, card, dtype)


def load_weights(weights: str | Path | None = None, device: str | torch.device = "cpu") -> tuple[UNet, NoiseSchedule]:
    """The EMA network and its schedule from a weights file, a run folder or a checkpoint.

    Args:
        weights: ``.safetensors`` file (with its JSON card), run folder (its newest
            checkpoint), ``.pt`` checkpoint, or None for the shipped model.
        device: where to put the model.

    Returns:
        (model, schedule), the model in eval mode.
    """
    if weights is None:
        return load_pretrained(PRETRAINED, device=device)
    weights = Path(weights)
    if not weights.exists():
        raise ValueError(f"weights: {str(weights)!r} does not exist")
    if weights.is_dir():
        found = list_checkpoints(weights)
        if not found:
            raise ValueError(f"weights: the run folder {str(weights)!r} holds no checkpoints")
        weights = found[-1]
    if weights.suffix == ".safetensors":
        return load_pretrained(weights, device=device)
    if weights.suffix == ".pt":
        model, train_config = ema_model_from_checkpoint(load_checkpoint(weights))
        return model.to(device), schedule_of(train_config)
    raise ValueError(f"weights must be a .safetensors file, a .pt checkpoint or a run folder, got {str(weights)!r}")
