"""The recorded training run (ddpm_core.run_record): written and read back, and the shipped one
belongs to the shipped weights."""

import hashlib
import json

import numpy as np
import pytest
import torch

from ddpm_core.ddim import ddim_sample_loop
from ddpm_core.explorers import TrainingDashboard
from ddpm_core.plotting import image_grid, png_bytes, to_uint8
from ddpm_core.run_record import SHIPPED_RUN, load_run_record, save_run_record, split_grid
from ddpm_core.weights import PRETRAINED, load_pretrained, read_card


def test_split_grid_undoes_image_grid():
    images = torch.rand(16, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    grid = image_grid(images, nrow=8)
    assert np.array_equal(split_grid(grid, 16, 32), to_uint8(images)[:, 0])


def write_run(run_dir, steps=(10, 20)):
    (run_dir / "samples").mkdir(parents=True)
    rows = [{"step": s, "loss": 1.0 / s, "lr": 1e-3, "images_per_s": 100.0 + s} for s in steps]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    previews = {}
    for s in steps:
        images = torch.rand(16, 1, 32, 32, generator=torch.Generator().manual_seed(s)) * 2 - 1
        (run_dir / "samples" / f"step_{s:07d}.png").write_bytes(png_bytes(image_grid(images, nrow=8)))
        previews[s] = to_uint8(images)
    return rows, previews


def test_a_record_reads_back_what_the_run_wrote(tmp_path):
    rows, previews = write_run(tmp_path / "run")
    path = save_run_record(tmp_path / "run", tmp_path / "record.safetensors", {"steps": 20, "machine": "m"})
    record = load_run_record(path)
    assert record.rows == rows
    assert [step for step, _ in record.previews] == [10, 20]
    for step, images in record.previews:
        assert images.shape == (16, 1, 32, 32) and images.min() >= -1 and images.max() <= 1
        assert np.array_equal(to_uint8(images), previews[step])
    assert record.card == {"steps": 20, "machine": "m"}
    dashboard = TrainingDashboard.from_record(record)
    assert dashboard.total_steps == 20 and dashboard.rows == rows and len(dashboard.scrubber().frames) == 2


def test_a_run_without_previews_is_named(tmp_path):
    write_run(tmp_path / "run")
    for png in (tmp_path / "run" / "samples").iterdir():
        png.unlink()
    with pytest.raises(ValueError, match="run_dir must hold metrics.jsonl and samples/step_XXXXXXX.png"):
        save_run_record(tmp_path / "run", tmp_path / "record.safetensors", {})


def test_the_shipped_record_is_the_shipped_models_run():
    record = load_run_record()
    assert record.card["weights_sha256"] == hashlib.sha256(PRETRAINED.read_bytes()).hexdigest()
    shipped = read_card(PRETRAINED)
    assert record.card["steps"] == shipped["steps"] == record.rows[-1]["step"]
    assert [step for step, _ in record.previews] == list(range(250, shipped["steps"] + 1, 250))
    assert [row["step"] for row in record.rows] == list(range(100, shipped["steps"] + 1, 100))
    assert record.rows[-1]["loss"] < record.rows[0]["loss"] / 10


def test_the_last_preview_is_what_the_shipped_weights_draw(one_thread):
    """The run's last preview, recomputed from the shipped file: 16 DDIM-50 samples from seed 0."""
    model, schedule = load_pretrained()
    with torch.no_grad():
        images = ddim_sample_loop(schedule, model, (16, 1, 32, 32), num_steps=50,
                                  generator=torch.Generator().manual_seed(0))
    step, recorded = load_run_record(SHIPPED_RUN).previews[-1]
    assert step == read_card(PRETRAINED)["steps"]
    # Pixels are rounded to 0..255 after 50 float32 steps: another CPU's kernels may move a few by one level.
    difference = np.abs(to_uint8(images).astype(int) - to_uint8(recorded).astype(int))
    assert difference.max() <= 2 and (difference > 0).mean() < 0.01
