"""Asking for a digit: how do the share of the requested class and the Fréchet distance move with the guidance weight?

The shipped class-conditional network (``ddpm_core/assets/mnist_ddpm_conditional.safetensors``,
EMA weights, trained with label dropout) samples with classifier-free guidance
(:class:`ddpm_core.guidance.ClassifierFreeGuided`): for each weight w of ``--weights`` (0: the
label is ignored; 1: the conditional network alone; above 1: guided), ``--per-class`` digits of
each class 0..9 with DDIM, 50 steps, eta = 1 (x0 clipped), the sampling noise drawn from
``--sample-seeds``. The shipped classifier then scores them:

* ``requested_share``: the share of digits the classifier assigns to the class that was asked for
  (fidelity to the label);
* ``fd_over_floor``: the Fréchet distance of all 10 x per-class digits to the 500 held-out test
  digits (50 per class), over the floor of ``time_to_quality.py`` (500 real training digits):
  1 is as good as real digits. Since every class is asked for equally often, this measures how
  well each class's digits cover the real ones (diversity and quality together);
* ``confident_share``: the share of digits the classifier is at least 90% sure of.

Prints a Markdown table and writes ``benchmarks/results/guidance_weight.json``; a run with other
settings must name its ``--out``.

    .venv/bin/python benchmarks/guidance_weight.py                                     # ~10 min, 1 thread
    .venv/bin/python benchmarks/guidance_weight.py --weights 0,3 --per-class 5 --sample-seeds 1 --out /tmp/g.json
"""

from __future__ import annotations

import argparse
import statistics

import torch

from ddpm_core.data import load_mnist_5k
from ddpm_core.ddim import ddim_sample_loop
from ddpm_core.evaluation import classifier_outputs, confident_share, frechet_distance, load_classifier
from ddpm_core.guidance import ClassifierFreeGuided
from ddpm_core.weights import PRETRAINED_CONDITIONAL, load_model, schedule_of

from machine import machine, out_path, write_record  # benchmarks/machine.py

CLASSES = range(10)


@torch.no_grad()
def generate_classes(model: torch.nn.Module, schedule, weight: float, per_class: int, seed: int) -> torch.Tensor:
    """``per_class`` digits of each class 0..9, guided with ``weight``: (10 * per_class, 1, 32, 32), class-major."""
    generator = torch.Generator().manual_seed(seed)
    size = model.config.image_size
    return torch.cat([ddim_sample_loop(schedule, ClassifierFreeGuided(model, label, weight), (per_class, 1, size, size),
                                       50, eta=1.0, clip_x0=True, generator=generator) for label in CLASSES])


def score(samples: torch.Tensor, per_class: int, classifier, feats_test: torch.Tensor, floor: float) -> dict:
    """Share of the requested class, FD / floor and confident share of one set of generated digits."""
    feats, probs = classifier_outputs(samples, classifier)
    requested = torch.arange(10).repeat_interleave(per_class)
    return {"requested_share": float((probs.argmax(dim=1) == requested).float().mean()),
            "fd_over_floor": frechet_distance(feats, feats_test) / floor,
            "confident_share": confident_share(probs)}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--weights", default="0,1,1.5,2,3,5", help="comma-separated guidance weights w >= 0")
    p.add_argument("--per-class", type=int, default=50, help="digits generated per class and weight and seed")
    p.add_argument("--sample-seeds", default="1,2,3", help="comma-separated seeds of the sampling noise")
    p.add_argument("--out", help="the JSON record (default, for the default settings only: "
                                 "benchmarks/results/guidance_weight.json)")
    args = p.parse_args(argv)
    out = out_path(p, args, "guidance_weight.json")
    try:
        weights = [float(w) for w in args.weights.split(",")]
        seeds = [int(s) for s in args.sample_seeds.split(",")]
    except ValueError:
        p.error(f"--weights takes numbers and --sample-seeds integers, comma-separated; got {args.weights!r}, "
                f"{args.sample_seeds!r}")
    if args.per_class < 2 or any(w < 0 for w in weights):
        p.error("--per-class must be at least 2 and every weight >= 0")
    torch.set_num_threads(args.threads)
    info = machine()

    model, card = load_model(PRETRAINED_CONDITIONAL)
    schedule = schedule_of(card["train_config"])
    classifier = load_classifier()
    train_images, _ = load_mnist_5k("train")
    test_images, _ = load_mnist_5k("test")
    feats_test, _ = classifier_outputs(test_images, classifier)
    real = train_images[torch.randperm(train_images.shape[0], generator=torch.Generator().manual_seed(0))[:500]]
    floor = frechet_distance(classifier_outputs(real, classifier)[0], feats_test)  # time_to_quality.py's floor

    rows = []
    for weight in weights:
        for seed in seeds:
            samples = generate_classes(model, schedule, weight, args.per_class, seed)
            rows.append({"weight": weight, "sample_seed": seed, **score(samples, args.per_class, classifier, feats_test, floor)})
            print(f"w = {weight:g}, seed {seed}: requested class {rows[-1]['requested_share']:.3f}, "
                  f"FD / floor {rows[-1]['fd_over_floor']:.2f}", flush=True)

    print(f"\n| w | requested class (mean of {len(seeds)}) | FD / floor | confident |")
    print("| ---: | ---: | ---: | ---: |")
    for weight in weights:
        mine = [r for r in rows if r["weight"] == weight]
        mean = {k: statistics.mean(r[k] for r in mine) for k in ("requested_share", "fd_over_floor", "confident_share")}
        print(f"| {weight:g} | {mean['requested_share']:.3f} | {mean['fd_over_floor']:.2f} | {mean['confident_share']:.3f} |")
    return write_record(out, "guidance_weight.py", "guidance_weight (shipped conditional model)", argv, info,
                        weights_file=str(PRETRAINED_CONDITIONAL.relative_to(PRETRAINED_CONDITIONAL.parents[2])),
                        weights_card={k: card.get(k) for k in ("steps", "command", "wall_time_s", "machine", "date")},
                        per_class=args.per_class, fd_real_floor=floor, rows=rows)


if __name__ == "__main__":
    main()
