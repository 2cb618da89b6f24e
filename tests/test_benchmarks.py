"""The benchmark scripts: each answers its question from the command line, builds its runs from
the training recipes, and the results that benchmarks/README.md reports are there and say what it says.

Nothing here times anything (the numbers depend on the machine). Every script's ``--help`` runs;
the configurations the scripts train are the recipes of ``ddpm_core.train`` (compared field by
field); each result file exists, parses and is named in the README, whose headline table is
recomputed from it; and ``gpu_check.py``, written for a CUDA machine, runs end to end on the CPU
in its ``--smoke`` mode (about ten seconds).
"""

import dataclasses
import json
import math
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ddpm_core.train import FULL, QUICK
from ddpm_core.unet import UNetConfig

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
RESULTS = BENCHMARKS / "results"
README = (BENCHMARKS / "README.md").read_text(encoding="utf-8")
BOOK_HTML = BENCHMARKS.parent / "_build" / "html"
SCRIPTS = ("throughput.py", "time_to_quality.py", "fd_noise.py", "sampling_cost.py", "gpu_check.py", "page_weight.py",
           "data_loading.py", "explorers.py", "browser_sampler.py", "guidance_weight.py")

sys.path.insert(0, str(BENCHMARKS))  # the scripts import benchmarks/machine.py as `machine`
import gpu_check  # noqa: E402
import sampling_cost  # noqa: E402
import time_to_quality  # noqa: E402


def run_script(name: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCHMARKS / name), *args], capture_output=True, text=True,
                          timeout=timeout)


# ----------------------------------------------------------------------------- the scripts


@pytest.mark.parametrize("script", SCRIPTS)
def test_each_script_states_its_question_and_answers_help(script):
    done = run_script(script, "--help", timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    question = (BENCHMARKS / script).read_text(encoding="utf-8").split('"""')[1].splitlines()[0]
    assert question.endswith("?"), f"{script}'s docstring should open with its question, got {question!r}"
    assert " ".join(question.split()[:4]) in " ".join(done.stdout.split())  # the description --help shows


def test_gpu_run_sh_parses():
    assert subprocess.run(["bash", "-n", str(BENCHMARKS / "gpu_run.sh")]).returncode == 0


@pytest.mark.parametrize("script, args", [
    ("throughput.py", ("--rounds", "1")),
    ("time_to_quality.py", ("--threads", "1")),
    ("time_to_quality.py", ("--lr", "4e-3")),  # a changed recipe is another configuration too
    ("time_to_quality.py", ("--score-shipped",)),
    ("fd_noise.py", ("--sample-seeds", "1")),
    ("sampling_cost.py", ("--batches", "1")),
    ("guidance_weight.py", ("--per-class", "5")),
])
def test_other_settings_cannot_overwrite_the_recorded_result(script, args):
    """Only a script's default configuration writes its file in results/; anything else needs --out."""
    done = run_script(script, *args, timeout=120)
    assert done.returncode == 2 and "--out" in done.stderr and args[0] in done.stderr


def test_time_to_quality_trains_the_cpu_recipe():
    recipe, changed = time_to_quality.recipe_config([])
    assert recipe == QUICK and changed == []
    # The training command's own flags, parsed by its own parser, change the recipe.
    recipe, changed = time_to_quality.recipe_config(["--lr", "4e-3", "--attention-resolutions", "8", "--seed", "1"])
    assert recipe == dataclasses.replace(QUICK, lr=4e-3, seed=1,
                                         model=dataclasses.replace(QUICK.model, attention_resolutions=(8,)))
    assert sorted(changed) == ["--attention-resolutions", "--lr", "--seed"]
    # A run of N steps: the recipe with its length, its first checkpoint (the guide) after N / 8 steps.
    assert time_to_quality.build_config(QUICK, 800) == dataclasses.replace(
        QUICK, steps=800, checkpoint_every=100, keep_checkpoints=0, log_every=40, sample_every=0)


def test_time_to_quality_refuses_what_each_run_sets_itself():
    errors = []

    def error(message):
        errors.append(message)
        raise SystemExit(2)

    with pytest.raises(SystemExit):
        time_to_quality.recipe_config(["--steps", "5"], error)
    assert errors and "--steps" in errors[0]
    done = run_script("time_to_quality.py", "--samplers", "ddim-fast", "--out", "/tmp/unused.json", timeout=120)
    assert done.returncode == 2 and "--samplers" in done.stderr


def test_gpu_check_runs_the_gpu_recipe():
    assert gpu_check.GPU_CHECK == dataclasses.replace(FULL, data="offline", device="cuda", checkpoint_every=0,
                                                      keep_checkpoints=0, log_every=50, sample_every=0)
    differs = {f.name for f in dataclasses.fields(FULL) if getattr(gpu_check.SMOKE, f.name) != getattr(FULL, f.name)}
    # --smoke changes only what makes it a few CPU seconds (and what GPU_CHECK changes).
    assert differs <= {"T", "batch_size", "device", "amp", "channels_last", "warmup_steps", "log_every", "model",
                       "data", "checkpoint_every", "keep_checkpoints", "sample_every"}


def test_sampling_cost_times_the_recipes_networks():
    assert sampling_cost.NETWORKS == {"full": FULL.model, "quick": QUICK.model}


def test_gpu_check_runs_its_smoke_mode(tmp_path):
    """The one real run here: gpu_check.py, written for a CUDA machine, end to end on the CPU.

    A GPU session is short; this keeps the script from failing there for a reason a CPU can find.
    """
    out = tmp_path / "gpu_check.json"
    done = run_script("gpu_check.py", "--smoke", "--steps", "4", "--compile-steps", "4", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(out.read_text())
    assert [row["setting"] for row in record["throughput"]] == list(gpu_check.SETTINGS)
    assert all(row["images_per_s"] > 0 and math.isfinite(row["final_loss"]) for row in record["throughput"])
    # On the CPU, 20 + 20 resumed steps equal 40 in one go to the last bit.
    assert [(r["max_abs_diff_model"], r["max_abs_diff_ema"]) for r in record["resumption"]] == [(0.0, 0.0)] * 2
    assert {(r["sampler"], r["batch"]) for r in record["sampling"]} == {
        ("ddpm 50 steps", 1), ("ddim 50 steps", 1), ("ddpm 50 steps", 2), ("ddim 50 steps", 2)}


def test_gpu_check_refuses_to_run_without_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    done = run_script("gpu_check.py", timeout=120)
    assert done.returncode != 0 and "needs a CUDA GPU" in done.stderr


@pytest.mark.skipif(not (BOOK_HTML / "index.html").is_file(), reason="needs the built book (make book)")
def test_page_weight_reads_the_built_book():
    done = run_script("page_weight.py", timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines() if line.strip()}
    assert "notebooks/07_training" in rows and int(rows["total"][-2]) >= 1 and float(rows["total"][1]) > 0


# ----------------------------------------------------------------------------- the recorded results

# Files that the README names by a shared prefix and a short suffix in its tables: `recipe_*` and `v3`.
GROUPS = ("time_to_quality_recipe_", "time_to_quality_network_", "time_to_quality_ablation_")
RESULT_FILES = sorted(p.name for p in RESULTS.iterdir())


def named_in_readme(name: str) -> bool:
    if name in README:
        return True
    if name.endswith(".png"):  # grids: `results/time_to_quality_*.png` and `..._shipped_<sampler>.png`
        return "results/time_to_quality_*.png" in README
    return any(name.startswith(p) and f"`{p}*`" in README and f"(`{name[len(p):-len('.json')]}`)" in README
               for p in GROUPS)


def test_results_hold_the_current_results_only():
    assert sum(name.endswith(".json") for name in RESULT_FILES) == 28
    unnamed = [name for name in RESULT_FILES if not named_in_readme(name)]
    assert not unnamed, f"result files the README does not name: {unnamed}"


@pytest.mark.parametrize("name", [n for n in RESULT_FILES if n.endswith(".json")])
def test_each_result_parses_and_its_grids_exist(name):
    record = json.loads((RESULTS / name).read_text())
    assert {"benchmark", "date", "command", "machine"} <= set(record)
    assert record["command"].startswith("python benchmarks/" + record["benchmark"].split()[0])
    rows = [q for run in record.get("runs", []) for q in run["samplers"]] + record.get("samplers", [])
    for row in rows:
        assert math.isfinite(row["fd_over_floor"]) and row["fd_over_floor"] > 0
        assert "grid" not in row or (RESULTS / row["grid"]).is_file()


def test_every_result_the_readme_cites_exists():
    cited = set(re.findall(r"results/([\w.-]+\.json)", README))
    assert cited and not [name for name in cited if not (RESULTS / name).is_file()]
    # What each script's default configuration writes (throughput.py: per thread count; sampling_cost.py:
    # per network) is recorded: the default commands of the README rewrite these files.
    for name in ("throughput.json", "throughput_2threads.json", "time_to_quality.json", "fd_noise.json",
                 "sampling_cost_full.json", "sampling_cost_quick.json"):
        assert (RESULTS / name).is_file(), name


# The flags that turn today's QUICK into the recipe each recorded run trained, as the README gives them.
V3 = "--batch-size 64 --lr 2e-3 --optimizer adam --attention-resolutions 8"
V2 = V3 + " --base-channels 32 --amp off"
RECIPE_FLAGS = {
    "time_to_quality.json": "", "time_to_quality_seeds6to10.json": "", "time_to_quality_trainseed1.json": "--seed 1",
    "time_to_quality_recipe_v3.json": V3,
    "time_to_quality_recipe_v4.json": "--batch-size 64 --lr 2e-3 --muon-lr 0.005",
    "time_to_quality_recipe_v4_matched.json": "--batch-size 64 --lr 2e-3 --muon-lr 0.005",
    "time_to_quality_recipe_v5.json": "",
    "time_to_quality_network_base32.json": V3 + " --base-channels 32",
    "time_to_quality_network_base24.json": V3 + " --base-channels 24",
    "time_to_quality_network_base16.json": V3 + " --base-channels 16",
    "time_to_quality_network_base16_noattn.json": "--batch-size 64 --lr 2e-3 --optimizer adam --base-channels 16",
    "time_to_quality_ablation_v2.json": V2,
    "time_to_quality_ablation_uniform.json": V2 + " --loss-weighting uniform",
    "time_to_quality_ablation_constant_lr.json": V2 + " --lr-decay none",
    "time_to_quality_ablation_first_recipe.json": V2 + " --loss-weighting uniform --lr-decay none --dropout 0.1",
}


@pytest.mark.parametrize("name", sorted(RECIPE_FLAGS))
def test_the_readme_flags_rebuild_each_recorded_recipe(name):
    """The README's command for a recorded run trains the recipe that run trained.

    Compared field by field with the recorded configuration, except the fields each run sets
    itself and ``amp`` (version 2's "auto" meant float32 before bf16 came to CPUs: ``--amp off``
    now). Fields added since a run are at their defaults there: Adam before Muon existed.
    """
    recorded = json.loads((RESULTS / name).read_text())["train_config"]
    recorded.setdefault("optimizer", "adam")
    recorded["model"] = {**UNetConfig().to_dict(), **recorded["model"]} if "model" in recorded else recorded.get("model")
    rebuilt = time_to_quality.recipe_config(RECIPE_FLAGS[name].split())[0].to_dict()
    fields = set(recorded) - set(time_to_quality.PER_RUN) - {"amp", "muon_lr" if recorded["optimizer"] == "adam" else ""}
    assert {k: rebuilt[k] for k in fields} == {k: recorded[k] for k in fields}
    assert recorded["amp"] in ("auto", "bf16") and rebuilt["amp"] == ("off" if "--amp off" in RECIPE_FLAGS[name] else "auto")


def _fd_over_floor(name: str, minutes: float | None, sampler: str) -> list[float]:
    record = json.loads((RESULTS / name).read_text())
    return [q["fd_over_floor"] for run in record["runs"] if minutes is None or run["budget_minutes"] == minutes
            for q in run["samplers"] if q["sampler"] == sampler]


def test_the_readme_headline_is_what_the_results_say():
    """Each row of the headline table, recomputed from results/time_to_quality.json."""
    record = json.loads((RESULTS / "time_to_quality.json").read_text())
    for run in record["runs"]:
        for sampler in dict.fromkeys(q["sampler"] for q in run["samplers"]):
            scores = _fd_over_floor("time_to_quality.json", run["budget_minutes"], sampler)
            row = (f"| {run['budget_minutes']:g} | {run['training_s'] / 60:.2f} | {run['steps']:,} | `{sampler}` | "
                   f"{', '.join(f'{s:.2f}' for s in scores)} |")
            assert row in README, row
            assert f"{statistics.mean(scores):.2f}" in README.split(row)[1].split("\n")[0]
    # The two-network conclusion the top-level README repeats: 1.47, 1.52, and 1.49 over twenty scores.
    seed0 = (_fd_over_floor("time_to_quality.json", 10.0, "ddim50-eta1-ag1.5")
             + _fd_over_floor("time_to_quality_seeds6to10.json", 10.0, "ddim50-eta1-ag1.5"))
    seed1 = _fd_over_floor("time_to_quality_trainseed1.json", None, "ddim50-eta1-ag1.5")
    assert [f"{statistics.mean(v):.2f}" for v in (seed0, seed1, seed0 + seed1)] == ["1.47", "1.52", "1.49"]


# ----------------------------------------------------------------------------- end-to-end runs
# Each script runs once at settings small enough for the suite (its numbers mean nothing there),
# against the current ddpm_core, and writes the fields the README's tables are made from.


def run_ok(name: str, *args: str) -> str:
    done = run_script(name, "--threads", "1", *args, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_time_to_quality_trains_guides_and_scores(tmp_path):
    out = tmp_path / "ttq.json"
    run_ok("time_to_quality.py", "--minutes", "0.2", "--seconds-per-step", "0.5", "--n", "40",
           "--samplers", "ddim4-eta1,ddim4-eta1-ag2", "--sample-seeds", "1", "--seed", "3", "--out", str(out))
    record = json.loads(out.read_text())
    assert record["train_config"]["seed"] == 3
    (run,) = record["runs"]
    assert (run["steps"], run["guide_step"]) == (24, 3)  # 0.2 min / 0.5 s; the guide after an eighth
    assert [row["sampler"] for row in run["samplers"]] == ["ddim4-eta1", "ddim4-eta1-ag2"]
    for row in run["samplers"]:
        # 24 steps learn next to nothing: far from the floor, near pure noise.
        assert math.isfinite(row["fd"]) and row["fd"] > 3 * row["fd_real_floor"]
    assert run["samplers"][1]["guidance_weight"] == 2.0


def test_sampling_cost_times_every_sampler(tmp_path):
    out = tmp_path / "sc.json"
    run_ok("sampling_cost.py", "--network", "quick", "--batches", "1", "--ddim-steps", "10", "--out", str(out))
    record = json.loads(out.read_text())
    assert record["model"]["network"] == "quick" and record["model"]["parameters"] == 268_180
    calls = {row["sampler"]: row["network_calls"] for row in record["results"]}
    assert calls == {"ddpm": 1000, "ddim": 10, "ddim50-eta1-ag1.5": 100}
    assert all(row["wall_s_per_chain"] > 0 for row in record["results"])


def test_throughput_times_every_row(tmp_path):
    out = tmp_path / "tp.json"
    run_ok("throughput.py", "--warmup", "0", "--rounds", "1", "--steps-per-round", "1", "--out", str(out))
    speeds = json.loads(out.read_text())["median_images_per_wall_s"]
    assert {"source", "ddpm_core", "quick"} <= set(speeds) and all(v > 0 for v in speeds.values())


def test_fd_noise_reports_the_floor_spread(tmp_path):
    out = tmp_path / "fdn.json"
    run_ok("fd_noise.py", "--sample-seeds", "1", "--out", str(out))
    random_sets = json.loads(out.read_text())["summary"]["random"]
    assert random_sets["sets"] >= 2
    assert 0 < random_sets["fd_over_floor_min"] <= random_sets["fd_over_floor_mean"] <= random_sets["fd_over_floor_max"]
