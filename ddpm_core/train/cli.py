"""The command line of training: ``python -m ddpm_core.train``.

    python -m ddpm_core.train --run-dir runs/mnist --recipe quick --export weights.safetensors
    python -m ddpm_core.train --run-dir runs/mnist --recipe full --steps 5000

Every field of :class:`TrainConfig` and of the network's :class:`UNetConfig` has a flag
(``batch_size`` is ``--batch-size``). A value comes from the flag if it is given, else from
the recipe (``--recipe``, :mod:`.recipes`; ``--quick`` is ``--recipe quick``), else from
``TrainConfig``'s default.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch

from ..unet import UNetConfig
from ..validation import check_int
from ..weights import export_checkpoint, list_checkpoints
from .config import AMP_MODES, DATA_SOURCES, DEVICES, LOSS_TYPES, LOSS_WEIGHTINGS, LR_DECAYS, OPTIMIZERS, SCHEDULES, TrainConfig
from .loop import TrainResult, train
from .precision import resolve_amp, resolve_device
from .recipes import RECIPES


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())


def _flag(field: str) -> str:
    """The command-line flag of a configuration field: batch_size -> --batch-size."""
    return "--" + field.replace("_", "-")


def _config_flag_adder(group: argparse._ArgumentGroup, defaults: object) -> Callable[..., None]:
    """A function adding the flag of one field of ``defaults``' dataclass, its default shown in the help.

    The flag's own default is None ("not given"), so that :func:`config_from_args` can tell a
    flag given from one left out.
    """
    def add(field: str, help: str = "", aliases: tuple[str, ...] = (), **kwargs) -> None:
        value = getattr(defaults, field)
        shown = ",".join(map(str, value)) or "''" if isinstance(value, tuple) else value
        group.add_argument(_flag(field), *aliases, dest=field, default=None, help=f"{help} (default: {shown})".strip(),
                           **kwargs)

    return add


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m ddpm_core.train``."""
    p = argparse.ArgumentParser(prog="python -m ddpm_core.train", description="Train a DDPM on MNIST digits.")
    p.add_argument("--run-dir", required=True, help="folder for config, metrics and checkpoints")
    p.add_argument("--recipe", choices=tuple(RECIPES),
                   help="start from a named recipe (ddpm_core.train.recipes; explicit flags win): quick, the CPU "
                        "recipe of the shipped model; full, the training chapter's GPU run; test, its quick mode")
    p.add_argument("--quick", action="store_true", help="the same as --recipe quick")
    p.add_argument("--no-resume", action="store_true", help="refuse to continue an existing run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (CPU)")
    p.add_argument("--export", help="at the end, write the EMA weights to this .safetensors file")
    p.add_argument("--export-guide",
                   help="also write the EMA weights of the run's first checkpoint to this .safetensors file: "
                        "a weaker model of the same run, to guide sampling with (ddpm_core.guidance)")
    p.add_argument("--export-dtype", choices=("float32", "float16"), default="float32")
    g = p.add_argument_group("training (TrainConfig; defaults are TrainConfig's, or the recipe's with --recipe)")
    train_flag = _config_flag_adder(g, TrainConfig())
    train_flag("T", type=int)
    train_flag("schedule", choices=SCHEDULES)
    train_flag("batch_size", type=int)
    train_flag("lr", type=float)
    train_flag("optimizer", choices=OPTIMIZERS)
    train_flag("muon_lr", type=float)
    train_flag("warmup_steps", type=int)
    train_flag("lr_decay", choices=LR_DECAYS)
    train_flag("steps", type=int)
    train_flag("ema_decay", type=float)
    train_flag("grad_clip", type=float)
    train_flag("loss_type", choices=LOSS_TYPES)
    train_flag("loss_weighting", choices=LOSS_WEIGHTINGS)
    train_flag("min_snr_gamma", type=float)
    train_flag("seed", type=int)
    train_flag("checkpoint_every", type=int)
    train_flag("keep_checkpoints", type=int, help="keep the first checkpoint and the newest N (0: all)")
    train_flag("log_every", type=int)
    train_flag("sample_every", type=int)
    train_flag("data", help=f"one of {', '.join(DATA_SOURCES)}, or folder:PATH (every image under PATH)")
    train_flag("random_flip", action=argparse.BooleanOptionalAction, help="random horizontal flips")
    train_flag("num_workers", type=int, help="worker processes decoding images read from disk")
    train_flag("label_dropout", type=float, help="with --num-classes: share of labels dropped, for classifier-free guidance")
    train_flag("amp", choices=AMP_MODES)
    train_flag("channels_last", action=argparse.BooleanOptionalAction)
    train_flag("compile", action=argparse.BooleanOptionalAction)
    train_flag("device", choices=DEVICES)
    m = p.add_argument_group("network (UNetConfig)")
    net_flag = _config_flag_adder(m, UNetConfig())
    net_flag("image_channels", type=int, aliases=("--channels",), help="1 (grey) or 3 (RGB)")
    net_flag("image_size", type=int)
    net_flag("patch_size", type=int)
    net_flag("base_channels", type=int)
    net_flag("channel_mults", type=_ints, help="comma-separated, e.g. 1,2,2")
    net_flag("num_res_blocks", type=int)
    net_flag("attention_resolutions", type=_ints, help="comma-separated grid sizes, '' for none")
    net_flag("dropout", type=float)
    net_flag("num_groups", type=int)
    net_flag("num_classes", type=int, help="classes of a class-conditional network, e.g. 10 for the digits (0: none)")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """TrainConfig defaults, then the recipe (``--recipe``, or ``--quick``), then every flag given."""
    if args.quick and args.recipe not in (None, "quick"):
        raise ValueError(f"--quick is --recipe quick; it cannot be combined with --recipe {args.recipe}")
    recipe = "quick" if args.quick else args.recipe
    values = RECIPES[recipe].to_dict() if recipe else {}
    model_values = values.pop("model", {})
    for f in dataclasses.fields(TrainConfig):
        if f.name != "model" and getattr(args, f.name, None) is not None:
            values[f.name] = getattr(args, f.name)
    for f in dataclasses.fields(UNetConfig):
        if getattr(args, f.name, None) is not None:
            model_values[f.name] = getattr(args, f.name)
    return TrainConfig(**values, model=UNetConfig.from_dict(model_values))


def main(argv: list[str] | None = None) -> TrainResult:
    """Entry point of ``python -m ddpm_core.train``; returns the :class:`TrainResult`.

    Raises:
        ValueError: a flag has a value that is not allowed (the message names the flag).
    """
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        check_int("--threads", args.threads, 1)
    for flag, path in (("--export", args.export), ("--export-guide", args.export_guide)):
        if path is not None and Path(path).suffix != ".safetensors":
            raise ValueError(f"{flag} must name a .safetensors file, got {path!r}")  # checked before training, not after
    try:
        cfg = config_from_args(args)
    except ValueError as err:  # "steps must be ..." -> "--steps must be ..."
        field, _, rest = str(err).partition(" ")
        raise ValueError(f"{_flag(field)} {rest}" if field in vars(args) else str(err)) from None
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    result = train(cfg, args.run_dir, resume=not args.no_resume, progress=not args.no_progress)
    print(f"step {result.step}: loss {result.final_loss:.4f}, {result.wall_time_s:.0f} s, checkpoint {result.checkpoint}")
    if args.export or args.export_guide:
        _export(args, cfg, result, _provenance(cfg, result, sys.argv[1:] if argv is None else argv))
    return result


def _provenance(cfg: TrainConfig, result: TrainResult, argv: list[str]) -> dict:
    """How a run was made, for the card of its weights file: command, time, machine, data, precision."""
    device = resolve_device(cfg)
    return {
        "command": "python -m ddpm_core.train " + " ".join(argv),
        "wall_time_s": round(result.wall_time_s, 1),
        "final_loss": result.final_loss,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()}-core {platform.machine()} CPU, {torch.get_num_threads()} torch thread(s)"
        if device.type == "cpu" else torch.cuda.get_device_name(),
        "data_split": {"offline": "load_mnist_5k('train'): 4,500 digits",
                       "mnist": "MNIST train: 60,000 digits"}.get(cfg.data, cfg.data),
        "autocast": str(resolve_amp(cfg, device)[0] or "off (float32)").removeprefix("torch."),
        "torch": torch.__version__,
    }


def _export(args: argparse.Namespace, cfg: TrainConfig, result: TrainResult, metadata: dict) -> None:
    """Write the EMA weights of the newest checkpoint (``--export``) and of the first (``--export-guide``)."""
    dtype = torch.float16 if args.export_dtype == "float16" else torch.float32
    if args.export:
        export_checkpoint(result.checkpoint, args.export, metadata, dtype=dtype)
        print(f"EMA weights written to {args.export}")
    if args.export_guide:
        first = list_checkpoints(args.run_dir)[0]
        about_run = {k: v for k, v in metadata.items() if k not in ("wall_time_s", "final_loss")}  # the whole run's
        about_run["role"] = "autoguidance guide: the EMA weights of the run's first checkpoint"
        export_checkpoint(first, args.export_guide, about_run, dtype=dtype)
        print(f"EMA weights of {first.name} (the guide) written to {args.export_guide}")
