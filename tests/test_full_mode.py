"""The training chapter's full mode, the one a GPU runs, executed on this CPU.

nbval executes chapter 7 in quick mode, the mode chosen where there is no GPU. The cells of the
full run (the default U-Net, mixed precision and channels-last, the 1000-step chain of
Algorithm 2, 500 digits scored) are otherwise run only on a GPU. Here they run on the CPU with
DDPM_QUICK=0, on the offline digits and for 20 steps: the digits are noise, but every cell
must run. About three minutes on two cores.
"""

import json
from pathlib import Path

import nbformat
from nbclient import NotebookClient

CHAPTER = Path(__file__).resolve().parent.parent / "notebooks" / "07_training.ipynb"


def stdout_of(nb) -> str:
    return "".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                   for out in cell.get("outputs", []) if out.get("output_type") == "stream")


def test_training_chapter_runs_in_full_mode_on_a_cpu(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    monkeypatch.setenv("DDPM_QUICK", "0")
    monkeypatch.setenv("DDPM_DATA", "offline")
    monkeypatch.setenv("DDPM_STEPS", "20")
    monkeypatch.setenv("DDPM_RUN_DIR", str(run_dir))
    nb = nbformat.read(CHAPTER, as_version=4)
    NotebookClient(nb, timeout=1200, kernel_name="python3",
                   resources={"metadata": {"path": str(CHAPTER.parent)}}).execute()  # raises on any error
    text = stdout_of(nb)
    assert "mode: full training" in text
    assert "20 steps," in text
    assert "sampler: ddpm, 1000 network calls per image" in text
    assert "500 images per set" in text
    assert (run_dir / "checkpoints" / "step_0000020.pt").is_file()
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["amp"], config["channels_last"], config["batch_size"]) == ("auto", True, 128)
