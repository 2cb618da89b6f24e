"""Fréchet-distance noise: how much does the FD of 500 digits move by chance, when nothing but the draw changes?

Every number of ``time_to_quality.py`` is one Frechet distance (FD) between 500 digits and the 500
held-out test digits (``load_mnist_5k("test")``: exactly 50 of each class), in the feature space of
the shipped classifier, divided by one floor: the FD of 500 real training digits (``randperm``
seed 0, as in ``time_to_quality.py``). This script measures how much such a number moves when
nothing but the draw of the 500 digits changes:

* ``random``: the 4,500 training digits in the floor's order, cut into 9 disjoint sets of 500 (the
  first is the floor's own set). Like a sampler's output, their class counts vary by chance.
* ``stratified``: 9 disjoint sets of exactly 50 digits per class, as the test set is built (each
  class's 450 training digits in the floor's order, cut into runs of 50).
* ``shipped``: the shipped model (``ddpm_core/assets``, EMA weights) sampled with DDIM, 50 steps,
  eta = 1 (x0 clipped), one set per sampling seed; classes are the classifier's predictions.

For every set: FD, FD / floor, the class counts, and chi^2 = sum_k (n_k - 50)^2 / 50, how far the
counts are from 50 per class; then, per kind, the spread of FD / floor and its correlation with
chi^2, and the shipped model's class counts pooled over all its sets (is its class mix off, beyond
the luck of each draw?). Prints a Markdown table and writes ``benchmarks/results/fd_noise.json``;
a run with other settings must name its ``--out``.

    .venv/bin/python benchmarks/fd_noise.py                                          # ~4 min, 1 thread
    .venv/bin/python benchmarks/fd_noise.py --sample-seeds 1,2 --out /tmp/fd.json    # quicker
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from ddpm_core.data import TEST_PER_CLASS, load_mnist_5k
from ddpm_core.evaluation import classifier_outputs, frechet_distance, load_classifier
from ddpm_core.train import TrainConfig
from ddpm_core.weights import PRETRAINED, load_model

from machine import machine, out_path, write_record  # benchmarks/machine.py
from time_to_quality import generate  # the sampler every time_to_quality.py number uses

SET_SIZE = 500  # digits per set, as in time_to_quality.py


def chi_square_from_uniform(counts: np.ndarray) -> float:
    """sum_k (n_k - e)^2 / e with e = N / K: 0 for equal counts (9 degrees of freedom for K = 10)."""
    expected = counts.sum() / len(counts)
    return float(((counts - expected) ** 2 / expected).sum())


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--sample-seeds", default="1,2,3,4,5,6,7,8,9",
                   help="comma-separated sampling seeds of the shipped model, one set of 500 each")
    p.add_argument("--out", help="the JSON record (default, for the default settings only: "
                                 "benchmarks/results/fd_noise.json)")
    args = p.parse_args(argv)
    out = out_path(p, args, "fd_noise.json")
    seeds = [int(s) for s in args.sample_seeds.split(",") if s.strip()]
    if not seeds:
        p.error("--sample-seeds needs at least one integer seed")
    torch.set_num_threads(args.threads)
    info = machine()

    classifier = load_classifier()
    train_images, train_labels = load_mnist_5k("train")
    test_images, _ = load_mnist_5k("test")
    feats_test, _ = classifier_outputs(test_images, classifier)
    feats_train, _ = classifier_outputs(train_images, classifier)

    rows = []

    def add(kind: str, name: str, feats: torch.Tensor, counts: np.ndarray) -> None:
        rows.append({"kind": kind, "set": name, "fd": frechet_distance(feats, feats_test),
                     "class_counts": counts.tolist(), "chi_square": chi_square_from_uniform(counts)})

    # The floor's order: time_to_quality.py takes the first 500 of this permutation.
    perm = torch.randperm(train_images.shape[0], generator=torch.Generator().manual_seed(0))
    for i in range(train_images.shape[0] // SET_SIZE):
        idx = perm[i * SET_SIZE:(i + 1) * SET_SIZE]
        add("random", f"training digits {i * SET_SIZE + 1}-{(i + 1) * SET_SIZE}", feats_train[idx],
            np.bincount(train_labels[idx].numpy(), minlength=10))
    # The same order again, each class cut into 9 runs of 50: 9 disjoint sets of 50 per class
    # (chapter 7 builds its sets the same way).
    per_class = [perm[train_labels[perm] == k].reshape(-1, SET_SIZE // 10) for k in range(10)]  # (9, 50) each
    for i, idx in enumerate(torch.cat(per_class, dim=1)):  # (9, 500)
        add("stratified", f"stratified set {i + 1}", feats_train[idx], np.bincount(train_labels[idx].numpy(), minlength=10))

    model, card = load_model(PRETRAINED)
    cfg = TrainConfig.from_dict(card["train_config"])
    for seed in seeds:
        samples = generate(model, cfg, SET_SIZE, ddim_steps=50, eta=1.0, seed=seed)
        feats, probs = classifier_outputs(samples, classifier)
        add("shipped", f"sampling seed {seed}", feats, np.bincount(probs.argmax(dim=1).numpy(), minlength=10))

    floor = rows[0]["fd"]  # the first random set is the floor of time_to_quality.py
    for r in rows:
        r["fd_over_floor"] = r["fd"] / floor

    print(f"\nFD of 500 digits vs the {TEST_PER_CLASS * 10} held-out test digits; floor = {floor:.2f}\n")
    print("| kind | set | FD | FD / floor | class counts (0-9) | chi^2 |")
    print("| --- | --- | ---: | ---: | --- | ---: |")
    for r in rows:
        print(f"| {r['kind']} | {r['set']} | {r['fd']:.2f} | {r['fd_over_floor']:.2f} | "
              f"{' '.join(map(str, r['class_counts']))} | {r['chi_square']:.1f} |")
    summary = {}
    print("\n| kind | sets | FD / floor: min | mean | max | chi^2: mean | corr(chi^2, FD) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for kind in ("random", "stratified", "shipped"):
        ratio = np.array([r["fd_over_floor"] for r in rows if r["kind"] == kind])
        chi = np.array([r["chi_square"] for r in rows if r["kind"] == kind])
        corr = float(np.corrcoef(chi, ratio)[0, 1]) if len(ratio) > 2 and chi.std() > 0 else float("nan")
        summary[kind] = {"sets": len(ratio), "fd_over_floor_min": float(ratio.min()), "fd_over_floor_mean": float(ratio.mean()),
                         "fd_over_floor_max": float(ratio.max()), "chi_square_mean": float(chi.mean()), "corr_chi_square_fd": corr}
        print(f"| {kind} | {len(ratio)} | {ratio.min():.2f} | {ratio.mean():.2f} | {ratio.max():.2f} | {chi.mean():.1f} | {corr:.2f} |")
    # Is the sampler's class mix itself off? Pool its sets: over all seeds, an unbiased sampler's
    # counts deviate from equal by chance only (chi^2 about 9 on average, 9 degrees of freedom).
    pooled = np.sum([r["class_counts"] for r in rows if r["kind"] == "shipped"], axis=0)
    summary["shipped"]["pooled_class_counts"] = pooled.tolist()
    summary["shipped"]["pooled_chi_square"] = chi_square_from_uniform(pooled)
    print(f"\nshipped model, all {pooled.sum()} samples pooled: class counts {' '.join(map(str, pooled))}, "
          f"chi^2 = {chi_square_from_uniform(pooled):.1f} (9 degrees of freedom)")
    return write_record(
        out, "fd_noise.py", "fd_noise", argv, info,
        floor=floor, reference="load_mnist_5k('test'): 500 held-out digits, 50 per class",
        shipped_sampler="DDIM, 50 steps, eta = 1, x0 clipped (time_to_quality.py's ddim50-eta1)",
        summary=summary, sets=rows,
    )


if __name__ == "__main__":
    main()
