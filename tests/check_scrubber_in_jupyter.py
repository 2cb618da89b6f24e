"""How a scrubber looks in JupyterLab 4 and Notebook 7, checked in headless Chromium.

Not part of the test suite (pytest collects test_*.py only): it needs JupyterLab and Notebook 7,
which requirements.txt leaves out. Run it after changing the scrubber's markup or script:

    .venv/bin/pip install jupyterlab notebook
    .venv/bin/python tests/check_scrubber_in_jupyter.py [--out DIR]

It writes a notebook with two scrubbers (a matplotlib figure and a forward-diffusion grid, both
with the optional strip of every frame, ``strip_scale=0.5``),
executes it with nbclient (outputs stored, notebook not signed, so Jupyter does not trust it),
serves it with a throwaway Jupyter server (its own data, settings and workspace folders, so
your trust database is left alone) and opens copies of it in Chromium:

1. JupyterLab, untrusted: the scripts did not run; the first frame, the note and the strip
   of every frame show, the slider and play button are disabled, clicking the slider changes
   nothing;
2. Notebook 7, untrusted: the same;
3. JupyterLab after Run > Run All Cells, 4. JupyterLab after Trust Notebook (command
   palette), 5. Notebook 7 after File > Trust Notebook: the scripts ran; no note, no strip,
   the controls are enabled and clicking the slider changes the picture and the label.

Screenshots go to DIR (default: test-artifacts/jupyter). Exit status 1 if a check fails.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from jupyter_lab import CHROMIUM, CHROMIUM_ARGS, Checks, report, throwaway_jupyter  # tests/jupyter_lab.py

ROOT = Path(__file__).resolve().parents[1]

FIGURE_CELL = '''import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from ddpm_core.plotting import figure_scrubber

def draw(mu):
    fig, ax = plt.subplots(figsize=(4, 1.6))
    x = np.linspace(-4, 4, 200)
    ax.plot(x, np.exp(-(x - mu) ** 2 / 2), color="C0")
    ax.set_xlabel("x"); ax.set_title(f"mean {mu:+.1f}")
    return fig

means = np.linspace(-2, 2, 9)
figure_scrubber(draw, means, [f"mu = {m:+.1f}" for m in means], title="A Gaussian sliding", strip_scale=0.5)'''

GRID_CELL = '''import torch
from ddpm_core import NoiseSchedule
from ddpm_core.plotting import forward_diffusion_scrubber

s = NoiseSchedule.linear(1000, 1e-4, 0.02)
yy, xx = torch.meshgrid(torch.arange(28), torch.arange(28), indexing="ij")
rings = [((((yy - 14) ** 2 + (xx - 14) ** 2).sqrt() - r).abs() < 2.5).float() for r in (5, 8, 11, 6)]
x0 = torch.stack(rings)[:, None] * 2 - 1
forward_diffusion_scrubber(s, x0, [0, 50, 100, 200, 300, 500, 700, 1000], nrow=4, title="Forward diffusion of four rings",
                           strip_scale=0.5)'''

FRAMES = [9, 8]  # frames of the two scrubbers above

# What a reader sees of each visible scrubber.
STATE_JS = """
() => [...document.querySelectorAll('.ddpm-scrubber')].filter((r) => r.getClientRects().length > 0).map((root) => {
  const img = root.querySelector('img');
  const note = root.querySelector('.ddpm-scrubber-note');
  const strip = root.querySelector('.ddpm-scrubber-strip');
  return {
    picture: !!img && img.complete && img.naturalWidth > 0,
    disabled: [root.querySelector('input[type=range]').disabled, root.querySelector('button').disabled],
    note: !!note && note.getClientRects().length > 0 ? note.textContent : null,
    strip_images: strip ? [...strip.querySelectorAll('img')].filter((i) => i.complete && i.naturalWidth > 0).length : 0,
  };
})
"""


def write_notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(FIGURE_CELL), nbformat.v4.new_code_cell(GRID_CELL)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    nbformat.write(nb, str(path))  # not signed: Jupyter opens it untrusted


def click_slider(page, root) -> bool:
    """Click near the right end of the slider like a reader; True if picture and label changed."""
    before = root.evaluate("(r) => [r.querySelector('img').getAttribute('src'), r.querySelector('.ddpm-scrubber-label').textContent]")
    box = root.locator("input[type=range]").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.9, box["y"] + box["height"] / 2)
    page.wait_for_timeout(300)
    after = root.evaluate("(r) => [r.querySelector('img').getAttribute('src'), r.querySelector('.ddpm-scrubber-label').textContent]")
    return before[0] != after[0] and before[1] != after[1]


def check_untrusted(page, checks: Checks, where: str, out: Path) -> None:
    states = page.evaluate(STATE_JS)
    checks.expect(len(states) == 2, f"{where}: two scrubbers shown")
    for i, state in enumerate(states):
        checks.expect(state["picture"], f"{where}: scrubber {i + 1} shows its first frame")
        checks.expect(state["disabled"] == [True, True], f"{where}: scrubber {i + 1} slider and play button disabled")
        checks.expect(bool(state["note"]) and "Trust Notebook" in state["note"], f"{where}: scrubber {i + 1} note visible")
        checks.expect(state["strip_images"] == FRAMES[i], f"{where}: scrubber {i + 1} strip holds {FRAMES[i]} images that load")
        root = page.locator(".ddpm-scrubber:visible").nth(i)
        root.scroll_into_view_if_needed()
        checks.expect(not click_slider(page, root), f"{where}: scrubber {i + 1} does not move when clicked")
        root.locator("details summary").click()
        page.wait_for_timeout(300)
        root.screenshot(path=str(out / f"{where}_scrubber{i + 1}.png"))
    page.screenshot(path=str(out / f"{where}.png"))


def check_trusted(page, checks: Checks, where: str, out: Path) -> None:
    page.wait_for_timeout(2000)
    states = page.evaluate(STATE_JS)
    checks.expect(len(states) == 2, f"{where}: two scrubbers shown")
    for i, state in enumerate(states):
        checks.expect(state["disabled"] == [False, False], f"{where}: scrubber {i + 1} controls enabled")
        checks.expect(state["note"] is None and state["strip_images"] == 0, f"{where}: scrubber {i + 1} note and strip removed")
        root = page.locator(".ddpm-scrubber:visible").nth(i)
        root.scroll_into_view_if_needed()
        checks.expect(click_slider(page, root), f"{where}: scrubber {i + 1} moves when its slider is clicked")
        root.screenshot(path=str(out / f"{where}_scrubber{i + 1}.png"))
    page.screenshot(path=str(out / f"{where}.png"))


def accept_trust_dialog(page) -> None:
    page.locator(".jp-Dialog button", has_text="Trust").click()


def run_checks(base: str, out: Path) -> list[str]:
    from playwright.sync_api import sync_playwright

    checks = Checks()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

        def open_page(url: str):
            page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
            page.goto(url)
            page.wait_for_function("() => document.querySelectorAll('.ddpm-scrubber').length >= 2", timeout=90_000)
            page.wait_for_timeout(2000)
            return page

        print("JupyterLab, untrusted")
        check_untrusted(open_page(f"{base}/lab/tree/lab_untrusted.ipynb?reset"), checks, "lab_untrusted", out)

        print("Notebook 7, untrusted")
        check_untrusted(open_page(f"{base}/notebooks/nb7_untrusted.ipynb"), checks, "nb7_untrusted", out)

        print("JupyterLab, Run > Run All Cells")
        page = open_page(f"{base}/lab/tree/lab_run.ipynb?reset")
        page.get_by_role("menuitem", name="Run").first.click()
        page.locator(".lm-Menu-item", has_text="Run All Cells").first.click()
        page.wait_for_function(
            "() => [...document.querySelectorAll('.jp-InputPrompt')].every((e) => /\\[\\d+\\]/.test(e.textContent))",
            timeout=120_000,
        )
        check_trusted(page, checks, "lab_after_run", out)

        print("JupyterLab, View > Activate Command Palette > Trust Notebook")
        page = open_page(f"{base}/lab/tree/lab_trust.ipynb?reset")
        page.get_by_role("menuitem", name="View").first.click()
        page.locator(".lm-Menu-item", has_text="Activate Command Palette").first.click()
        page.keyboard.type("Trust Notebook")
        page.wait_for_timeout(300)
        page.keyboard.press("Enter")
        accept_trust_dialog(page)
        check_trusted(page, checks, "lab_after_trust", out)

        print("Notebook 7, File > Trust Notebook")
        page = open_page(f"{base}/notebooks/nb7_trust.ipynb")
        page.get_by_role("menuitem", name="File").first.click()
        page.locator(".lm-Menu-item", has_text="Trust Notebook").first.click()
        accept_trust_dialog(page)
        check_trusted(page, checks, "nb7_after_trust", out)
        browser.close()
    return checks.failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "test-artifacts" / "jupyter", help="folder for the screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="scrubber-jupyter-") as tmp:
        tmp = Path(tmp)
        work = tmp / "notebooks"
        work.mkdir()
        print("executing the notebook ...")
        write_notebook(work / "scrubbers.ipynb")
        for name in ("lab_untrusted", "nb7_untrusted", "lab_run", "lab_trust", "nb7_trust"):
            shutil.copy(work / "scrubbers.ipynb", work / f"{name}.ipynb")
        with throwaway_jupyter(tmp, work) as base:
            failures = run_checks(base, args.out)
    return report(failures, args.out)


if __name__ == "__main__":
    sys.exit(main())
