"""Sample quality against training time: how good are the digits after 3 and 10 minutes of training on two CPU cores?

Trains ddpm_core's U-Net with :func:`ddpm_core.train.train` on the 4,500 offline training
digits (``load_mnist_5k("train")``) with the CPU recipe :data:`ddpm_core.train.QUICK`, changed
by any training flag of ``python -m ddpm_core.train`` given here (``--lr 4e-3``,
``--attention-resolutions 8``, ...: the same parser and :func:`ddpm_core.train.cli.config_from_args`
turn them into the configuration). Each budget of ``--minutes`` is a separate run whose length is
fixed in advance: a calibration times two short runs of the recipe (``--calibration-steps`` steps
and a quarter of that; their difference cancels start-up costs), or ``--seconds-per-step`` is
given, and the run gets budget / (seconds per step) steps. (The recipe's learning rate decays to
0 at the last step, so a run must know its length: one run cannot be scored at 3 minutes and
continued to 10.) The time each run really took is measured and reported next to its budget.
Sampling and scoring are not counted.

The clock (``--clock``) is the wall clock by default, with two torch threads: the targets are set
for two CPU cores, on an otherwise idle machine (the 1-minute load average before and after each
run is recorded to show it was). On a machine shared with other jobs, ``--threads 1 --clock cpu``
measures this process's CPU time instead, about what the wall clock would show on an idle machine.

The EMA weights of each run generate ``--n`` digits with every DDIM sampler of ``--samplers``
(``ddim<steps>-eta<eta>``; x0 clipped to [-1, 1]; with ``-ag<w>`` added, autoguided with weight w
by the EMA weights of the run's first checkpoint, written after an eighth of its steps:
:class:`ddpm_core.guidance.Autoguided`) and
:func:`ddpm_core.evaluation.quality_with_controls` scores them:

* ``fd``: Frechet distance, in the shipped classifier's feature space, between the
  generated digits and the 500 held-out test digits (``load_mnist_5k("test")``, never
  trained on);
* ``fd_real_floor``: the same distance between 500 real training digits and those test
  digits: what a perfect sampler would score with this many images;
* ``fd_noise``: the same for pure noise: what a sampler that learned nothing would score.

Targets on two CPU cores: ``fd`` within 3x the floor after 3 minutes, within 1.5x after 10.

Prints a Markdown table and writes a JSON record and a grid of 64 generated digits per run and
sampler (``<out>_<minutes>min_<sampler>.png``). With its defaults the script reruns the recorded
headline and rewrites ``benchmarks/results/time_to_quality.json``; any other configuration
(other flags, a changed recipe, ``--score-shipped``) must name its ``--out``.

    .venv/bin/python benchmarks/time_to_quality.py                  # the headline (~20 min, idle 2-core machine)
    .venv/bin/python benchmarks/time_to_quality.py --minutes 0.5 --n 100 --samplers ddim20-eta1 --out /tmp/ttq.json
    .venv/bin/python benchmarks/time_to_quality.py --score-shipped --out /tmp/shipped.json
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from ddpm_core.data import load_mnist_5k
from ddpm_core.ddim import ddim_sample_loop
from ddpm_core.evaluation import load_classifier, quality_with_controls
from ddpm_core.guidance import Autoguided
from ddpm_core.plotting import image_grid, png_bytes
from ddpm_core.train import TrainConfig, make_schedule, resolve_amp, train
from ddpm_core.train.cli import build_parser as training_parser
from ddpm_core.train.cli import config_from_args
from ddpm_core.unet import UNet, UNetConfig, count_parameters
from ddpm_core.weights import PRETRAINED, PRETRAINED_GUIDE, checkpoint_path, load_model, load_weights

from machine import changed_options, machine, out_path, write_record  # benchmarks/machine.py

CURRENT = "time_to_quality.json"  # the headline, what the default configuration writes
GUIDE_EVERY = 8  # a run of N steps writes a checkpoint every N // 8 steps; the first is the guide

# Fields of TrainConfig that each run sets itself, or that this script fixes: not recipe flags here.
PER_RUN = ("steps", "checkpoint_every", "keep_checkpoints", "log_every", "sample_every", "data", "device")
RECIPE_FIELDS = ({f.name for f in dataclasses.fields(TrainConfig)} - {"model", *PER_RUN}
                 | {f.name for f in dataclasses.fields(UNetConfig)})
_RECIPE = ["--run-dir", "unused", "--recipe", "quick"]  # what every parse of the training flags starts from


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())


def recipe_config(flags: list[str], error=None) -> tuple[TrainConfig, list[str]]:
    """``QUICK`` changed by ``flags``, training flags of ``python -m ddpm_core.train``; and the flags that changed it.

    The flags are parsed by :func:`ddpm_core.train.cli.build_parser` as if given after
    ``--recipe quick``, and :func:`ddpm_core.train.cli.config_from_args` makes the configuration,
    so a flag means here what it means to the training command. Flags that are not fields of the
    recipe, or that each run sets itself (:data:`PER_RUN`), are refused through ``error``.
    """
    parser = training_parser()
    if error is not None:
        parser.error = error  # report bad flags as this script's usage errors
    else:
        error = parser.error
    base = vars(parser.parse_args(_RECIPE))
    args = parser.parse_args(_RECIPE + list(flags))
    changed = [name for name, value in vars(args).items() if value != base[name]]
    refused = [name for name in changed if name not in RECIPE_FIELDS]
    if refused:
        error(f"{', '.join('--' + n.replace('_', '-') for n in refused)}: not a recipe flag here "
              f"(each run sets {', '.join(PER_RUN)} itself)")
    return config_from_args(args), ["--" + name.replace("_", "-") for name in changed]


def build_config(recipe: TrainConfig, steps: int) -> TrainConfig:
    """``recipe`` as a run of ``steps`` steps, its first checkpoint (the autoguidance guide) after an eighth of them."""
    return dataclasses.replace(recipe, steps=steps, checkpoint_every=max(1, steps // GUIDE_EVERY), keep_checkpoints=0,
                               log_every=max(1, steps // 20), sample_every=0)


def parse_sampler(text: str) -> tuple[int, float, float]:
    """'ddim50-eta1' -> (50, 1.0, 1.0): DDIM steps, eta, guidance weight; 'ddim50-eta1-ag2' -> (50, 1.0, 2.0)."""
    try:
        ddim, _, weight = text.partition("-ag")
        steps, eta = ddim.removeprefix("ddim").split("-eta")
        steps, eta, weight = int(steps), float(eta), float(weight or 1)
        if weight < 1:
            raise ValueError
        return steps, eta, weight
    except ValueError:
        raise argparse.ArgumentTypeError(f"a sampler is written ddim<steps>-eta<eta>, e.g. ddim50-eta1, or with "
                                         f"autoguidance of weight >= 1 ddim<steps>-eta<eta>-ag<weight>, e.g. "
                                         f"ddim50-eta1-ag2; got {text!r}") from None


@torch.no_grad()
def generate(model: torch.nn.Module, cfg: TrainConfig, n: int, ddim_steps: int, eta: float, seed: int) -> torch.Tensor:
    """``n`` digits from ``model`` with DDIM (x0 clipped to [-1, 1]), in batches of 250."""
    schedule = make_schedule(cfg)
    generator = torch.Generator().manual_seed(seed)
    size, channels = cfg.model.image_size, cfg.model.image_channels
    out = []
    for start in range(0, n, 250):
        b = min(250, n - start)
        out.append(ddim_sample_loop(schedule, model, (b, channels, size, size), ddim_steps, eta=eta,
                                    clip_x0=True, generator=generator))
    return torch.cat(out)


def clock_now(kind: str) -> float:
    """This process's CPU time (``"cpu"``) or the wall clock (``"wall"``), in seconds."""
    return time.process_time() if kind == "cpu" else time.perf_counter()


def seconds_per_step(recipe: TrainConfig, args: argparse.Namespace, images: torch.Tensor) -> float:
    """What one step of ``recipe`` costs, from two timed runs of different lengths.

    Each run resumes from an untimed first step (start-up costs) and then does n steps; the
    difference of the two times over the difference of their n cancels what every run pays
    once (building the model, loading and saving a checkpoint), which a single short run
    would spread over its few steps. (lr_decay is switched off here: a cosine run refuses to
    change its length on resume; the cost of a step does not depend on it.)
    """
    short, long = max(1, args.calibration_steps // 4), args.calibration_steps
    # Only the last step writes a checkpoint here; the eight of a real run are counted in its own time.
    cfg = dataclasses.replace(build_config(recipe, 1), lr_decay="none", checkpoint_every=0)
    elapsed = {}
    for n in (short, long):
        scratch = Path(tempfile.mkdtemp(prefix="ttq_calibration_"))
        try:
            train(cfg, scratch, progress=False, images=images)  # start-up costs, not timed
            start = clock_now(args.clock)
            train(dataclasses.replace(cfg, steps=1 + n), scratch, progress=False, images=images)
            elapsed[n] = clock_now(args.clock) - start
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return (elapsed[long] - elapsed[short]) / (long - short)


def score(samples: torch.Tensor, test_images: torch.Tensor, real_b: torch.Tensor, classifier: torch.nn.Module) -> dict:
    """quality_with_controls, with the ratio to the floor."""
    report = quality_with_controls(samples, test_images, real_b, classifier, generator=torch.Generator().manual_seed(0))
    return {
        "fd": report["fd"],
        "fd_real_floor": report["fd_real_floor"],
        "fd_over_floor": report["fd"] / report["fd_real_floor"],
        "fd_noise": report["fd_noise"],
        "class_entropy_bits": report["class_entropy"],
        "confident_share": report["confident_share"],
        "class_counts": report["class_counts"],
    }


def score_samplers(model: torch.nn.Module, cfg: TrainConfig, args: argparse.Namespace, test_images: torch.Tensor,
                   real_b: torch.Tensor, classifier: torch.nn.Module, grid_stem: Path,
                   guide: torch.nn.Module) -> list[dict]:
    """Every sampler of ``--samplers`` and seed of ``--sample-seeds`` on the same model.

    The autoguided samplers (``-ag<weight>``) steer ``model`` away from ``guide``. A grid of 64
    digits is written for each sampler's first seed.
    """
    rows = []
    seeds = _ints(args.sample_seeds)
    for name in args.samplers.split(","):
        ddim_steps, eta, weight = parse_sampler(name)
        sampler_model = Autoguided(model, guide, weight) if weight > 1 else model
        for seed in seeds:
            t0, cpu0 = time.perf_counter(), time.process_time()
            samples = generate(sampler_model, cfg, args.n, ddim_steps, eta, seed=seed)
            row = {"sampler": name, "ddim_steps": ddim_steps, "eta": eta, "guidance_weight": weight, "sample_seed": seed,
                   "sampling_wall_s": round(time.perf_counter() - t0, 1),
                   "sampling_cpu_s": round(time.process_time() - cpu0, 1),
                   **score(samples, test_images, real_b, classifier)}
            if seed == seeds[0]:
                grid = grid_stem.with_name(f"{grid_stem.name}_{name}.png")
                grid.write_bytes(png_bytes(image_grid(samples[:64], nrow=8)))
                row["grid"] = grid.name
            rows.append(row)
            print(f"    {name}, sampling seed {seed}: FD {row['fd']:.2f} (floor {row['fd_real_floor']:.2f}, "
                  f"{row['fd_over_floor']:.2f}x; noise {row['fd_noise']:.1f}), "
                  f"classes {row['class_entropy_bits'] + 0.0:.2f} bits, confident {row['confident_share']:.2f}", flush=True)
    return rows


def score_shipped(args: argparse.Namespace, argv: list[str] | None, info: dict, test_images: torch.Tensor,
                  real_b: torch.Tensor, classifier: torch.nn.Module, out: Path) -> dict:
    """The same measurement for the EMA weights shipped in ddpm_core/assets (no training)."""
    model, card = load_model(PRETRAINED)
    guide, _ = load_model(PRETRAINED_GUIDE)
    cfg = TrainConfig.from_dict(card["train_config"])
    print(f"The shipped model ({card.get('steps')} steps: {card.get('command')}), {args.n} samples (EMA weights) "
          f"vs the 500 held-out test digits")
    rows = score_samplers(model, cfg, args, test_images, real_b, classifier, out.with_name(out.stem), guide)
    return write_record(
        out, "time_to_quality.py", "time_to_quality (shipped model)", argv, info,
        weights=str(PRETRAINED.relative_to(PRETRAINED.parents[2])),
        guide=str(PRETRAINED_GUIDE.relative_to(PRETRAINED.parents[2])),
        weights_card={k: card.get(k) for k in ("steps", "command", "wall_time_s", "machine", "date")},
        n_generated=args.n,
        samplers=rows,
    )


def build_parser() -> argparse.ArgumentParser:
    """This script's own options; the recipe's flags are ``python -m ddpm_core.train``'s (:func:`recipe_config`)."""
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], allow_abbrev=False,
        epilog="Every other flag changes the recipe (ddpm_core.train.QUICK) for every run: it is a flag of the "
               "training and network groups of `python -m ddpm_core.train --help`, e.g. --lr 4e-3, --optimizer adam, "
               "--attention-resolutions 8, --seed 1; except " + ", ".join("--" + n.replace("_", "-") for n in PER_RUN)
               + ", which each run sets itself.")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2: the targets' two cores)")
    p.add_argument("--minutes", default="3,10", help="comma-separated training budgets, one run each")
    p.add_argument("--clock", choices=("cpu", "wall"), default="wall",
                   help="what --minutes counts: wall-clock time (default) or this process's CPU time")
    p.add_argument("--calibration-steps", type=int, default=400,
                   help="steps of the longer of the two timed runs that turn minutes into steps (the shorter does a "
                        "quarter); more steps average over more of the machine's changes of speed")
    p.add_argument("--seconds-per-step", type=float,
                   help="skip the calibration and turn minutes into steps with this (runs started together "
                        "disturb each other's calibration); the table reports the time each run really took")
    p.add_argument("--n", type=int, default=500, help="generated digits per evaluation")
    p.add_argument("--samplers", default="ddim50-eta1-ag1.5,ddim50-eta1-ag2,ddim50-eta1",
                   help="comma-separated DDIM samplers ddim<steps>-eta<eta>, or ddim<steps>-eta<eta>-ag<w> for "
                        "autoguidance of weight w by the run's first checkpoint; the first one is the headline")
    p.add_argument("--sample-seeds", default="1,2,3,4,5",
                   help="comma-separated seeds of the sampling noise; several show how much FD moves with it")
    p.add_argument("--score-shipped", action="store_true",
                   help="no training: score the model shipped in ddpm_core/assets the same way")
    p.add_argument("--classifier", help="classifier weights (default: the one shipped in ddpm_core/assets)")
    p.add_argument("--out", help=f"the JSON record (default, for the default configuration only: "
                                 f"benchmarks/results/{CURRENT})")
    return p


def main(argv: list[str] | None = None) -> dict:
    p = build_parser()
    args, recipe_flags = p.parse_known_args(argv)
    recipe, recipe_changes = recipe_config(recipe_flags, p.error)
    for name in args.samplers.split(","):
        try:
            parse_sampler(name)  # refuse a malformed sampler before training for minutes
        except argparse.ArgumentTypeError as err:
            p.error(f"--samplers: {err}")
    if args.calibration_steps < 4:
        p.error(f"--calibration-steps must be at least 4, got {args.calibration_steps}")
    if not _ints(args.sample_seeds):
        p.error("--sample-seeds needs at least one integer seed")
    if args.score_shipped and recipe_changes:
        p.error(f"--score-shipped trains nothing: {', '.join(recipe_changes)} would change nothing")
    # --seconds-per-step and --calibration-steps change how minutes become steps, not what is measured.
    out = out_path(p, args, CURRENT, changed_options(p, args, ignore=("seconds_per_step", "calibration_steps"))
                   + recipe_changes)
    torch.set_num_threads(args.threads)
    info = machine()
    budgets = sorted(float(m) for m in args.minutes.split(","))
    out.parent.mkdir(parents=True, exist_ok=True)

    train_images, _ = load_mnist_5k("train")
    test_images, _ = load_mnist_5k("test")
    # The floor's second real set: as many training digits as generated ones, disjoint from the test digits.
    perm = torch.randperm(train_images.shape[0], generator=torch.Generator().manual_seed(0))
    real_b = train_images[perm[: args.n]]
    classifier = load_classifier(args.classifier) if args.classifier else load_classifier()

    if args.score_shipped:
        return score_shipped(args, argv, info, test_images, real_b, classifier, out)

    started = time.perf_counter()
    per_step = args.seconds_per_step or seconds_per_step(recipe, args, train_images)
    source = "given" if args.seconds_per_step else "calibration"
    print(f"{source}: {per_step:.3f} s per step ({args.clock} clock, {args.threads} thread(s))", flush=True)
    runs = []
    for minutes in budgets:
        steps = max(1, int(minutes * 60 / per_step))
        cfg = build_config(recipe, steps)
        run_dir = Path(tempfile.mkdtemp(prefix="ttq_"))
        try:
            load_before = os.getloadavg()[0]
            start = clock_now(args.clock)
            cpu0 = time.process_time()
            result = train(cfg, run_dir, progress=False, images=train_images)
            trained_s, train_cpu_s = clock_now(args.clock) - start, time.process_time() - cpu0
            load_after = os.getloadavg()[0]
            guide, _ = load_weights(checkpoint_path(run_dir, cfg.checkpoint_every))  # EMA weights of the first checkpoint
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
        print(f"  {minutes:g} min budget: {steps} steps in {trained_s / 60:.2f} min ({args.clock} clock)", flush=True)
        runs.append({
            "budget_minutes": minutes,
            "clock": args.clock,
            "training_s": round(trained_s, 1),
            "training_wall_s": round(result.wall_time_s, 1),
            "training_cpu_s": round(train_cpu_s, 1),
            "steps": result.step,
            "guide_step": cfg.checkpoint_every,
            "images_seen": result.step * cfg.batch_size,
            "loss_last_window": result.final_loss,
            "load_average_1_min_before_after": [round(load_before, 2), round(load_after, 2)],
            "samplers": score_samplers(result.ema_model, cfg, args, test_images, real_b, classifier,
                                       out.with_name(f"{out.stem}_{minutes:g}min"), guide),
        })

    clock_name = "CPU" if args.clock == "cpu" else "wall-clock"
    print(f"\nTime to quality, {info['cpu']}, {args.threads} torch thread(s); {args.n} samples (EMA weights) "
          f"vs the 500 held-out test digits\n")
    print(f"| budget (min) | training {clock_name} time (min) | steps | sampler, seed | FD / floor "
          "| classes (bits) | confident | 1-min load |")
    print("| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |")
    for r in runs:
        for q in r["samplers"]:
            la = r["load_average_1_min_before_after"]
            print(f"| {r['budget_minutes']:g} | {r['training_s'] / 60:.2f} | {r['steps']:,} | "
                  f"{q['sampler']}, {q['sample_seed']} | {q['fd_over_floor']:.2f} | "
                  f"{q['class_entropy_bits'] + 0.0:.2f} | {q['confident_share']:.2f} | {la[0]:.1f} to {la[1]:.1f} |")
    return write_record(
        out, "time_to_quality.py", "time_to_quality", argv, info,
        train_config={**build_config(recipe, 1).to_dict(), "steps": "budget / calibrated seconds per step"},
        parameters=count_parameters(UNet(recipe.model)),
        autocast_dtype=str(resolve_amp(recipe, torch.device("cpu"))[0]),  # what amp resolved to here
        calibration={"steps": None if args.seconds_per_step else args.calibration_steps, "seconds_per_step": per_step,
                     "given": bool(args.seconds_per_step), "clock": args.clock},
        n_generated=args.n,
        reference="load_mnist_5k('test'): 500 held-out digits; floor's second set: "
                  f"{args.n} digits of load_mnist_5k('train') (randperm seed 0)",
        targets="fd <= 3 x floor after 3 min, fd <= 1.5 x floor after 10 min (2 CPU cores)",
        runs=runs,
        total_wall_clock_s=round(time.perf_counter() - started, 1),
    )


if __name__ == "__main__":
    main()
