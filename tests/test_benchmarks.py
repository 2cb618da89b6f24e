"""The benchmark scripts run, at settings small enough for the test suite, and write their records.

Their numbers mean nothing at these settings (benchmarks/README.md has the recorded runs); what is
checked is that each script still runs end to end against the current ddpm_core and writes the
fields its README tables are made from. gpu_check.py, written for a CUDA machine, runs here in its
--smoke mode. About a minute and a half in all, on one thread.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
BOOK_HTML = BENCHMARKS.parent / "_build" / "html"


def run_script(name: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(BENCHMARKS / name), *args], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_time_to_quality_trains_guides_and_scores(tmp_path):
    out = tmp_path / "ttq.json"
    run_script("time_to_quality.py", "--minutes", "0.2", "--seconds-per-step", "0.5", "--n", "40",
               "--samplers", "ddim4-eta1,ddim4-eta1-ag2", "--sample-seeds", "1", "--seed", "3", "--out", str(out))
    record = json.loads(out.read_text())
    assert record["train_config"]["seed"] == 3
    (run,) = record["runs"]
    assert (run["steps"], run["guide_step"]) == (24, 3)  # 0.2 min / 0.5 s; the guide after an eighth
    assert [row["sampler"] for row in run["samplers"]] == ["ddim4-eta1", "ddim4-eta1-ag2"]
    for row in run["samplers"]:
        # 24 steps learn next to nothing: far from the floor, near pure noise.
        assert math.isfinite(row["fd"]) and row["fd"] > 3 * row["fd_real_floor"]
        assert (tmp_path / row["grid"]).is_file()
    assert run["samplers"][1]["guidance_weight"] == 2.0


def test_time_to_quality_refuses_a_malformed_sampler(tmp_path):
    done = subprocess.run([sys.executable, str(BENCHMARKS / "time_to_quality.py"), "--samplers", "ddim-fast",
                           "--out", str(tmp_path / "x.json")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--samplers" in done.stderr


def test_sampling_cost_times_every_sampler(tmp_path):
    out = tmp_path / "sc.json"
    run_script("sampling_cost.py", "--network", "recipe", "--batches", "1", "--ddim-steps", "10", "--out", str(out))
    record = json.loads(out.read_text())
    assert record["model"]["network"] == "recipe" and record["model"]["parameters"] == 268_180
    calls = {row["sampler"]: row["network_calls"] for row in record["results"]}
    assert calls == {"ddpm": 1000, "ddim": 10, "ddim50-eta1-ag1.5": 100}
    assert all(row["wall_s_per_chain"] > 0 for row in record["results"])


def test_throughput_times_every_row(tmp_path):
    out = tmp_path / "tp.json"
    run_script("throughput.py", "--warmup", "0", "--rounds", "1", "--steps-per-round", "1", "--out", str(out))
    record = json.loads(out.read_text())
    speeds = record["median_images_per_wall_s"]
    assert {"source", "ddpm_core", "quick"} <= set(speeds) and all(v > 0 for v in speeds.values())


def test_fd_noise_reports_the_floor_spread(tmp_path):
    out = tmp_path / "fdn.json"
    run_script("fd_noise.py", "--sample-seeds", "1", "--out", str(out))
    summary = json.loads(out.read_text())["summary"]
    random_sets = summary["random"]
    assert random_sets["sets"] >= 2
    assert 0 < random_sets["fd_over_floor_min"] <= random_sets["fd_over_floor_mean"] <= random_sets["fd_over_floor_max"]


@pytest.mark.skipif(not (BOOK_HTML / "index.html").is_file(), reason="needs the built book (make book)")
def test_page_weight_reads_the_built_book():
    rows = {line.split()[0]: line.split()[1:] for line in run_script("page_weight.py").splitlines() if line.strip()}
    assert "notebooks/07_training" in rows and "total" in rows
    assert int(rows["total"][-2]) >= 1  # scrubbers in the whole book
    assert float(rows["total"][1]) > 0  # MB of HTML


def test_gpu_check_script_runs_its_smoke_mode(tmp_path):
    """benchmarks/gpu_check.py, the GPU check, runs every part on the CPU with --smoke.

    A GPU session is short; this keeps the script from failing there for a reason a CPU can find.
    """
    out = tmp_path / "gpu_check.json"
    run_script("gpu_check.py", "--smoke", "--steps", "4", "--compile-steps", "4", "--out", str(out))
    record = json.loads(out.read_text())
    assert [row["setting"] for row in record["throughput"]][:2] == ["fp32", "tf32"]
    assert len(record["throughput"]) == 7
    assert all(row["images_per_s"] > 0 and math.isfinite(row["final_loss"]) for row in record["throughput"])
    # On the CPU, 20 + 20 resumed steps equal 40 in one go to the last bit.
    assert [(r["max_abs_diff_model"], r["max_abs_diff_ema"]) for r in record["resumption"]] == [(0.0, 0.0)] * 2
    assert {(r["sampler"], r["batch"]) for r in record["sampling"]} == {
        ("ddpm 50 steps", 1), ("ddim 50 steps", 1), ("ddpm 50 steps", 2), ("ddim 50 steps", 2)}


def test_gpu_check_script_refuses_to_run_without_a_gpu(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    done = subprocess.run([sys.executable, str(BENCHMARKS / "gpu_check.py"), "--out", str(tmp_path / "x.json")],
                          capture_output=True, text=True)
    assert done.returncode != 0 and "needs a CUDA GPU" in done.stderr
