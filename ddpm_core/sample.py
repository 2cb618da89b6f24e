"""Sampling from the command line: a grid of generated digits as a PNG.

    python -m ddpm_core.sample --n 64 --sampler ddim --num-steps 50 --eta 1 --seed 0 --out grid.png
    python -m ddpm_core.sample --weights runs/mnist --sampler ddpm --out grid.png
    python -m ddpm_core.sample --guidance 1.5 --out guided.png     # autoguidance, the shipped guide

``--weights`` is a ``.safetensors`` file written by :func:`ddpm_core.weights.save_model`, a
run folder (its newest checkpoint's EMA weights), or a checkpoint ``.pt`` file; without it
the model shipped in ``ddpm_core/assets`` is used. DDPM (Algorithm 2) always makes T model
calls; DDIM makes ``--num-steps``.

``--guidance w`` (> 1) samples with :class:`ddpm_core.guidance.Autoguided`: the model steered away
from ``--guide``, a weaker network of the same run (by default, with the shipped model, the guide
shipped with it). It doubles the model calls.

``--label y`` asks a class-conditional network (``--weights``; train one with
``python -m ddpm_core.train --recipe quick --num-classes 10``) for digit y, with classifier-free
guidance of weight ``--cfg w``
(:class:`ddpm_core.guidance.ClassifierFreeGuided`; 1: the label alone, the default).
``--npz`` also saves the images as an array (N, C, H, W) in [-1, 1], for any other measure.

    python -m ddpm_core.sample --weights cond.safetensors --label 7 --cfg 3 --out sevens.png --npz sevens.npz
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from .ddim import ddim_sample_loop
from .guidance import Autoguided, ClassifierFreeGuided
from .reverse import VARIANCES, p_sample_loop
from .schedules import NoiseSchedule
from .validation import check_int, check_number
from .weights import PRETRAINED_GUIDE, load_weights

SAMPLERS = ("ddpm", "ddim")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m ddpm_core.sample``."""
    p = argparse.ArgumentParser(prog="python -m ddpm_core.sample", description="Generate a grid of digits.")
    p.add_argument("--weights", help="safetensors file, run folder or .pt checkpoint (default: the shipped model)")
    p.add_argument("--n", type=int, default=64, help="number of images")
    p.add_argument("--sampler", choices=SAMPLERS, default="ddim")
    p.add_argument("--num-steps", type=int, default=50, help="DDIM steps (ignored by ddpm, which uses T)")
    p.add_argument("--eta", type=float, default=1.0,
                   help="DDIM noise level: 1 (default) adds as much noise per step as Algorithm 2, which gives "
                        "the shipped CPU-trained model clearly better digits (benchmarks/README.md); 0 is deterministic")
    p.add_argument("--guidance", type=float, default=1.0,
                   help="autoguidance weight w >= 1 (default 1: none): eps_guide + w (eps_model - eps_guide)")
    p.add_argument("--guide", help="the guide's weights, in the forms --weights accepts (default with the shipped "
                                   "model: the guide shipped with it, its run's first checkpoint)")
    p.add_argument("--label", type=int, help="the class to sample from a class-conditional network (--weights)")
    p.add_argument("--cfg", type=float, default=1.0,
                   help="classifier-free guidance weight w >= 0 with --label (default 1: the label alone; 0: no label)")
    p.add_argument("--variance", choices=VARIANCES, default="beta", help="DDPM variance sigma_t^2")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--nrow", type=int, default=8, help="images per row of the grid")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (CPU)")
    p.add_argument("--out", default="samples.png", help="PNG file to write")
    p.add_argument("--npz", help="also write the images to this .npz file (array 'images', (N, C, H, W) in [-1, 1])")
    return p


def main(argv: list[str] | None = None) -> torch.Tensor:
    """Entry point of ``python -m ddpm_core.sample``; returns the images, (n, C, H, W) in [-1, 1].

    Raises:
        ValueError: a flag has a value that is not allowed (the message names the flag).
    """
    args = build_parser().parse_args(argv)
    check_int("--n", args.n, 1)
    if args.threads is not None:
        torch.set_num_threads(check_int("--threads", args.threads, 1))
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch.cuda.is_available() is False; use --device cpu")
    if args.npz is not None and Path(args.npz).suffix != ".npz":
        raise ValueError(f"--npz must name a .npz file, got {args.npz!r}")
    check_number("--guidance", args.guidance, low=1)  # 1: no guidance
    check_number("--cfg", args.cfg, low=0)
    if args.label is not None and args.weights is None:
        raise ValueError("--label needs --weights: a class-conditional network, e.g. trained with "
                         "python -m ddpm_core.train --recipe quick --num-classes 10 --export cond.safetensors")
    model, schedule = load_weights(args.weights, device=args.device)
    cfg = model.config
    model = _guided(args, model, schedule)
    shape = (args.n, cfg.image_channels, cfg.image_size, cfg.image_size)
    generator = torch.Generator(device=args.device).manual_seed(args.seed)
    if args.sampler == "ddpm":
        images = p_sample_loop(schedule, model, shape, generator=generator, device=args.device, variance=args.variance)
    else:
        images = ddim_sample_loop(schedule, model, shape, num_steps=args.num_steps, eta=args.eta,
                                  generator=generator, device=args.device)
    images = images.cpu()
    _write(args, images)
    return images


def _guided(args: argparse.Namespace, model: torch.nn.Module, schedule: NoiseSchedule) -> torch.nn.Module:
    """The model as the flags ask: alone, autoguided (``--guidance``) or asked for a class (``--label``)."""
    if args.label is not None:
        if args.guidance > 1:
            raise ValueError("--guidance (autoguidance) and --label (classifier-free guidance) cannot be combined")
        if not getattr(model.config, "num_classes", 0):
            raise ValueError("--label needs a class-conditional network; --weights is not one (num_classes = 0)")
        check_int("--label", args.label, 0, model.config.num_classes - 1)
        return ClassifierFreeGuided(model, args.label, args.cfg)
    if args.cfg != 1.0:
        raise ValueError("--cfg needs --label: classifier-free guidance asks for a class")
    if args.guidance == 1:
        return model
    if args.guide is None and args.weights is not None:
        raise ValueError("--guide is needed with --weights and --guidance > 1: the guide must come from the same run")
    guide, guide_schedule = load_weights(args.guide or PRETRAINED_GUIDE, device=args.device)
    if not torch.equal(guide_schedule.betas, schedule.betas):
        raise ValueError("--guide was trained with another noise schedule than --weights; use a checkpoint of the same run")
    return Autoguided(model, guide, args.guidance)


def _write(args: argparse.Namespace, images: torch.Tensor) -> None:
    """The PNG grid (``--out``) and, with ``--npz``, the images as an array."""
    from .plotting import image_grid, png_bytes

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_bytes(png_bytes(image_grid(images, nrow=args.nrow)))
    print(f"{args.n} samples ({args.sampler}) written to {args.out}")
    if args.npz is not None:
        import numpy as np

        Path(args.npz).parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(args.npz, images=images.numpy())
        print(f"the images as an array (N, C, H, W) in [-1, 1] written to {args.npz}")


if __name__ == "__main__":
    try:
        main()
    except ValueError as err:  # a bad flag: a message, not a traceback
        build_parser().error(str(err))
