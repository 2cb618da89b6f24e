"""Every live explorer of ddpm_core.explorers, tried in JupyterLab 4 in headless Chromium.

Not part of the test suite (pytest collects test_*.py only): it needs JupyterLab, which
requirements.txt leaves out, and a few minutes. tests/test_explorers.py drives the same views in
a bare kernel; this script is the proof that they work in a browser. Run it after changing a view:

    .venv/bin/pip install jupyterlab
    .venv/bin/python tests/check_explorers_in_jupyter.py [--out DIR]

It writes a notebook with one cell per explorer (schedule, forward and posterior, sampler,
2-D toy, and a training dashboard followed by a six-step training run of a tiny U-Net that
feeds it), serves it with a throwaway Jupyter server (its own data, settings and workspace
folders, so your JupyterLab settings and trust database are left alone), opens it in
JupyterLab, runs Run > Run All Cells and waits for every cell to finish. Then, for each
explorer, through the page as a reader would:

1. schedule: the widget and its picture show; pressing the right-arrow key on the t / T
   slider and choosing "linear" in schedule B's dropdown each change the picture (and the
   latter greys out B's s); T = 0 typed into schedule A (Enter) and then beta_T below beta_1
   each show the red error line; good values clear it;
2. forward and posterior: dragging the t slider with the mouse changes the picture; "my
   drawing" with an empty pad shows the red error line; clicking eight squares of the pad
   clears it and changes the picture;
3. sampler: the first run finishes; the chain slider (Home key) shows x_T; seed -1 shows the
   red error line, seed 0 clears it; Algorithm 2 (1000 steps) moves the progress bar and the
   picture, and Stop ends the run with "stopped after N of 1000 steps". Then SDEdit (where the
   view has it): "a held-out digit" shows that digit and denoises it from t = 400; t = 10
   typed into the "noise to t" readout (fewer than DDIM's N = 20) shows the red error line, which
   Algorithm 2 clears (it denoises from t = 10 in 10 steps) and DDIM brings back;
   "my drawing" with an empty pad shows it too, and eight squares then Run denoise the drawing;
4. toy: choosing T = 50 in the dropdown and typing t = 25 into the t slider's readout (Enter)
   each change the picture; a components line that is not four numbers shows the red error
   line; K = 5 on the ring slider (arrow keys) and "write this ring" clear it and redraw;
5. training dashboard: after training, the status line names 3 metrics rows (last at step 6)
   and 3 sample grids, and the picture is a PNG that the browser decoded.

A screenshot of each explorer (and of some states on the way) goes to DIR (default
test-artifacts/jupyter-explorers, which .gitignore leaves out). Exit status 1 if a check fails;
the failed checks are listed at the end.

``--skip-actions`` does everything except touch the controls: every check that follows a
control change must then fail (a self-test of the checks themselves).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from jupyter_lab import CHROMIUM, CHROMIUM_ARGS, Checks, report, throwaway_jupyter  # tests/jupyter_lab.py

ROOT = Path(__file__).resolve().parents[1]

SETUP_CELL = '''import torch
from ddpm_core import NoiseSchedule
from ddpm_core.explorers import (SamplerSettings, forward_posterior_explorer, sampler_explorer, schedule_explorer,
                                 toy_explorer, training_dashboard)
from ddpm_core.toy import ring_mixture'''

SCHEDULE_CELL = "schedule_explorer()"

POSTERIOR_CELL = '''schedule = NoiseSchedule.linear(T=1000)
forward_posterior_explorer(schedule)'''

SAMPLER_CELL = "sampler_explorer(settings=SamplerSettings(num_steps=20, count=8))"

TOY_CELL = '''ring = ring_mixture()
toy_explorer(ring)'''

DASHBOARD_CELL = '''RUN_DIR = {run_dir!r}
dashboard = training_dashboard(RUN_DIR, total_steps=6)
dashboard'''

TRAIN_CELL = '''from ddpm_core.data import load_mnist_5k
from ddpm_core.train import TrainConfig, train
from ddpm_core.unet import UNetConfig

digits, _ = load_mnist_5k("train")
TINY = TrainConfig(steps=6, batch_size=8, lr=1e-3, warmup_steps=2, checkpoint_every=0, log_every=2, sample_every=2,
                   device="cpu", amp="off",
                   model=UNetConfig(base_channels=8, channel_mults=(1, 2), attention_resolutions=(), num_groups=4))
result = train(TINY, RUN_DIR, progress=False, on_sample=dashboard.on_sample, images=digits)
print("trained", result.step, "steps")'''

CELLS = {"setup": SETUP_CELL, "schedule": SCHEDULE_CELL, "posterior": POSTERIOR_CELL, "sampler": SAMPLER_CELL,
         "toy": TOY_CELL, "dashboard": DASHBOARD_CELL, "train": TRAIN_CELL}
CELL_INDEX = {name: i for i, name in enumerate(CELLS)}

ERROR_COLOR = "rgb(176, 0, 32)"  # #b00020, ddpm_core.explorers.widgets.ERROR_STYLE

# The explorer's picture: loaded, its size, its blob URL.
IMAGE_JS = """
(img) => ({complete: img.complete, width: img.naturalWidth, src: img.getAttribute('src') || ''})
"""

# The first bytes of what the browser holds behind the picture's blob URL.
IMAGE_MAGIC_JS = """
async (img) => {
  const bytes = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
  return Array.from(bytes.slice(0, 8));
}
"""

# The visible red error lines of a cell: [text, computed colour].
ERRORS_JS = """
(root) => [...root.querySelectorAll('.widget-html-content span')]
  .filter((s) => s.getClientRects().length > 0 && (s.getAttribute('style') || '').includes('b00020'))
  .map((s) => [s.textContent, getComputedStyle(s).color])
"""

# Record each text the element takes, as the kernel's messages change it.
STATUS_LOG_JS = """
(el) => {
  el.__log = [];
  if (!el.__observer) {
    el.__observer = new MutationObserver(() => el.__log.push(el.textContent.trim()));
    el.__observer.observe(el, {childList: true, subtree: true, characterData: true});
  }
}
"""

PNG_MAGIC = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]


def write_notebook(path: Path, run_dir: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source.format(run_dir=str(run_dir)) if name == "dashboard" else source)
                for name, source in CELLS.items()]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))  # not executed: Run All in the page gives the widgets their kernel


def poll(fn, timeout: float, interval: float = 0.25):
    """Call ``fn()`` until it returns something true or ``timeout`` seconds pass; return its last value."""
    end = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > end:
            return value
        time.sleep(interval)


class Explorer:
    """One explorer's cell in the page, with what the checks read from it and the actions a reader takes."""

    def __init__(self, page, name: str, out: Path, act: bool):
        self.page, self.name, self.out, self.act = page, name, out, act
        self.cell = page.locator(".jp-Notebook .jp-Cell").nth(CELL_INDEX[name])
        self.output = self.cell.locator(".jp-Cell-outputArea")

    # --- what is shown
    def image(self, index: int = -1):
        """The explorer's picture: the last image of the view (the sampler's first is its SDEdit x_0)."""
        images = self.cell.locator("img.widget-image")
        return images.last if index == -1 else images.nth(index)

    def image_state(self, index: int = -1) -> dict:
        return self.image(index).evaluate(IMAGE_JS)

    def src(self, index: int = -1) -> str:
        return self.image_state(index)["src"]

    def settle(self, quiet: float = 1.5, timeout: float = 60) -> str:
        """Wait until the picture has not changed for ``quiet`` seconds (earlier redraws have arrived); its URL."""
        end, last, since = time.monotonic() + timeout, self.src(), time.monotonic()
        while time.monotonic() < end and time.monotonic() - since < quiet:
            time.sleep(0.25)
            now = self.src()
            if now != last:
                last, since = now, time.monotonic()
        return last

    def status_line(self):
        """The view's first HTML line (the sampler's and the dashboard's status line)."""
        return self.cell.locator(".jp-OutputArea-output .widget-vbox").first.locator(":scope > .widget-html").first

    def status(self) -> str:
        return self.status_line().inner_text().strip()

    def log_status(self) -> None:
        """From now on, record every text the status line takes (a run's "sampling ..." may last 1 s)."""
        self.status_line().evaluate(STATUS_LOG_JS)

    def status_log(self) -> list[str]:
        return self.status_line().evaluate("(el) => el.__log || []")

    def errors(self) -> list[list[str]]:
        return self.cell.evaluate(ERRORS_JS)

    def wait_error(self, needle: str, timeout: float = 60) -> list[list[str]]:
        """The error lines once one holds ``needle`` (or what they are after ``timeout``)."""
        return poll(lambda: [e for e in self.errors() if needle in e[0]], timeout) or self.errors()

    def wait_no_error(self, timeout: float = 60) -> bool:
        return poll(lambda: not self.errors(), timeout)

    def wait_new_src(self, before: str, timeout: float = 60, index: int = -1) -> bool:
        """True once the picture's URL differs from ``before`` and the new picture has loaded."""
        def changed():
            state = self.image_state(index)
            return state["src"] != before and state["complete"] and state["width"] > 0
        return bool(poll(changed, timeout))

    def text_of(self, selector: str, index: int = 0) -> str:
        return self.cell.locator(selector).nth(index).inner_text()

    # --- controls, found by their description
    def control(self, kind: str, label: str, index: int = 0):
        """The ``.widget-<kind>`` control whose description is exactly ``label``."""
        exact = re.compile(rf"^\s*{re.escape(label)}\s*$")
        return (self.cell.locator(f".widget-{kind}")
                .filter(has=self.page.locator("label.widget-label", has_text=exact)).nth(index))

    def press_on_slider(self, label: str, *keys: str) -> None:
        if not self.act:
            return
        handle = self.control("hslider", label).locator(".noUi-handle")
        handle.scroll_into_view_if_needed()
        handle.focus()
        for key in keys:
            self.page.keyboard.press(key)
            self.page.wait_for_timeout(100)

    def drag_slider(self, label: str, fraction: float) -> None:
        """Drag the slider's handle with the mouse to ``fraction`` of its track."""
        if not self.act:
            return
        slider = self.control("hslider", label)
        slider.scroll_into_view_if_needed()
        handle = slider.locator(".noUi-handle").bounding_box()
        track = slider.locator(".noUi-target").bounding_box()
        y = handle["y"] + handle["height"] / 2
        self.page.mouse.move(handle["x"] + handle["width"] / 2, y)
        self.page.mouse.down()
        target = track["x"] + track["width"] * fraction
        for k in range(1, 11):  # in steps, as a hand moves
            self.page.mouse.move(handle["x"] + handle["width"] / 2 + (target - handle["x"]) * k / 10, y)
            self.page.wait_for_timeout(30)
        self.page.mouse.up()

    def type_into_readout(self, label: str, value: str) -> None:
        """Type ``value`` into the slider's number readout and press Enter."""
        if not self.act:
            return
        readout = self.control("hslider", label).locator(".widget-readout")
        readout.scroll_into_view_if_needed()
        readout.fill(value)
        readout.press("Enter")

    def type_into_text(self, label: str, value: str, index: int = 0) -> None:
        """Replace the text of a ``Text``/``IntText``/``FloatText`` box and press Enter."""
        if not self.act:
            return
        box = self.control("text", label, index).locator("input")
        box.scroll_into_view_if_needed()
        box.click()
        box.fill(value)
        box.press("Enter")

    def type_into_textarea(self, label: str, value: str) -> None:
        """Replace the text of a ``Textarea`` and leave it (Tab): it sends its value on leaving."""
        if not self.act:
            return
        area = self.control("textarea", label).locator("textarea")
        area.scroll_into_view_if_needed()
        area.click()
        area.fill(value)
        area.press("Tab")

    def choose(self, label: str, option: str, index: int = 0) -> None:
        """Choose ``option`` (as shown) in a dropdown."""
        if not self.act:
            return
        select = self.control("dropdown", label, index).locator("select")
        select.scroll_into_view_if_needed()
        select.select_option(label=option)

    def click(self, locator) -> None:
        if not self.act:
            return
        locator.scroll_into_view_if_needed()
        locator.click()

    def button(self, name: str):
        return self.cell.get_by_role("button", name=name, exact=True)

    def screenshot(self, suffix: str = "") -> None:
        self.output.scroll_into_view_if_needed()
        self.output.screenshot(path=str(self.out / f"{self.name}{suffix}.png"))


def check_rendered(ex: Explorer, checks: Checks, min_widgets: int = 5) -> None:
    widgets = ex.output.locator(".jupyter-widgets").count()
    checks.expect(widgets >= min_widgets and ex.output.locator(".widget-vbox").count() > 0,
                  f"{ex.name}: the widget rendered ({widgets} .jupyter-widgets elements)")
    state = poll(lambda: (lambda s: s if s["complete"] and s["width"] > 0 else None)(ex.image_state()), 60)
    state = state or ex.image_state()
    checks.expect(state["width"] > 0 and state["src"].startswith("blob:"),
                  f"{ex.name}: its picture loaded ({state['width']} px wide)", state)
    checks.expect(not ex.errors(), f"{ex.name}: no error line at first", ex.errors())


def check_error(ex: Explorer, checks: Checks, needle: str, what: str) -> None:
    found = ex.wait_error(needle, timeout=30 if ex.act else 5)
    ok = any(needle in text and color == ERROR_COLOR for text, color in found)
    checks.expect(ok, f"{ex.name}: {what} shows the red error line" + (f": {found[0][0]!r}" if ok else ""), found)


def readout(ex: Explorer, label: str) -> str:
    return ex.control("hslider", label).locator(".widget-readout").inner_text().strip()


def check_schedule(ex: Explorer, checks: Checks) -> None:
    print("schedule explorer")
    check_rendered(ex, checks)
    timeout = 60 if ex.act else 5
    before = ex.settle()
    ex.press_on_slider("t / T", *["ArrowRight"] * 5)
    checks.expect(ex.wait_new_src(before, timeout), "schedule: right arrow on the t / T slider changes the picture")
    checks.expect(readout(ex, "t / T") == "0.55", "schedule: the t / T readout says 0.55", readout(ex, "t / T"))
    before = ex.settle()
    s_box = ex.control("text", "s (cosine)", 1).locator("input")
    checks.expect(not s_box.is_disabled(), "schedule: schedule B (cosine) has its s enabled")
    ex.choose("kind", "linear", 1)  # schedule B: cosine to linear
    changed = ex.wait_new_src(before, timeout)
    disabled = poll(s_box.is_disabled, 10 if ex.act else 1)
    checks.expect(changed and disabled, "schedule: kind 'linear' chosen in schedule B's dropdown changes the picture "
                  "and greys out its s", {"changed": changed, "s disabled": disabled})
    ex.type_into_text("T", "0")
    check_error(ex, checks, "T must be an integer", "T = 0 in schedule A (Enter)")
    ex.screenshot("_error_T0")
    ex.type_into_text("T", "1000")
    checks.expect(ex.wait_no_error(timeout), "schedule: T = 1000 clears the error line", ex.errors())
    ex.type_into_text("β_T", "0.00001")
    check_error(ex, checks, "beta_T must be greater than beta_1", "beta_T = 1e-5 < beta_1 in schedule A (Enter)")
    before = ex.settle()
    ex.type_into_text("β_T", "0.03")  # not 0.02: the same picture as before would not be sent again
    checks.expect(ex.wait_no_error(timeout) and ex.wait_new_src(before, timeout),
                  "schedule: beta_T = 0.03 clears the error line and redraws", ex.errors())
    ex.settle()
    ex.screenshot()


def check_posterior(ex: Explorer, checks: Checks) -> None:
    print("forward and posterior explorer")
    check_rendered(ex, checks)
    timeout = 60 if ex.act else 5
    before = ex.settle()
    ex.drag_slider("t", 0.7)
    changed = ex.wait_new_src(before, timeout)
    t_value = readout(ex, "t")
    checks.expect(changed and t_value != "100", f"posterior: dragging the t slider (to t = {t_value}) changes the picture")
    pad = ex.cell.locator(".widget-gridbox")
    checks.expect(not pad.is_visible(), "posterior: the drawing pad is hidden while x0 is a held-out digit")
    ex.click(ex.button("my drawing"))
    check_error(ex, checks, "the drawing is empty", "'my drawing' with an empty pad")
    checks.expect(poll(pad.is_visible, 10 if ex.act else 1), "posterior: 'my drawing' shows the drawing pad")
    ex.screenshot("_empty_drawing")
    before = ex.settle()
    draw_a_one(ex, checks, pad)
    checks.expect(ex.wait_no_error(timeout) and ex.wait_new_src(before, timeout),
                  "posterior: drawing clears the error line and draws the drawing", ex.errors())
    ex.settle()
    ex.screenshot()


def draw_a_one(ex: Explorer, checks: Checks, pad) -> None:
    """Click eight squares of a drawing pad, a vertical stroke, one by one; check they are on."""
    squares = pad.locator(".widget-toggle-button")
    checks.expect(squares.count() == 14 * 14, f"{ex.name}: the pad has 14 x 14 squares ({squares.count()})")
    for row in range(3, 11):
        ex.click(squares.nth(row * 14 + 7))
        ex.page.wait_for_timeout(150)
    active = poll(lambda: pad.locator(".widget-toggle-button.mod-active").count() == 8, 10 if ex.act else 1)
    checks.expect(active, f"{ex.name}: the 8 clicked squares are on "
                  f"({pad.locator('.widget-toggle-button.mod-active').count()})")


def progress_fraction(ex: Explorer) -> float:
    width = ex.cell.locator(".widget-hprogress .progress-bar").evaluate("(b) => b.style.width")
    return float(width.rstrip("%") or 0) / 100


def wait_run(ex: Explorer, timeout: float = 300) -> str:
    """The status line once a run started since :meth:`Explorer.log_status` has finished ("" if none has)."""
    def finished():
        log = ex.status_log()
        starts = [i for i, text in enumerate(log) if text.startswith("sampling")]
        return bool(starts) and any("digits in" in text for text in log[starts[0]:])
    return ex.status() if poll(finished, timeout if ex.act else 5, interval=0.5) else ""


def check_sampler(ex: Explorer, checks: Checks) -> None:
    print("sampler explorer")
    done = poll(lambda: "digits in" in ex.status(), 300, interval=0.5)
    checks.expect(bool(done), f"sampler: the first run (DDIM, 20 steps, from noise) finishes ({ex.status()!r})")
    check_rendered(ex, checks)
    x0_image = ex.image(0)
    checks.expect(not x0_image.is_visible(), "sampler: no x_0 picture while the chain starts from noise")
    chain_label = ex.control("hslider", "chain").locator("xpath=following-sibling::*[1]")  # the Label after it
    step_label = lambda: chain_label.inner_text().strip()
    checks.expect(step_label() == "t = 0", f"sampler: the chain slider's label says t = 0 ({step_label()!r})")
    before = ex.settle()
    ex.press_on_slider("chain", "Home")
    changed = ex.wait_new_src(before, 30 if ex.act else 5)
    checks.expect(changed and poll(lambda: step_label() == "t = 1000", 10 if ex.act else 1),
                  f"sampler: Home on the chain slider shows x_T (label {step_label()!r}, picture changed: {changed})")
    ex.screenshot("_x_T")

    ex.type_into_text("seed", "-1")
    check_error(ex, checks, "seed must be an integer", "seed -1 (Enter)")
    ex.log_status()
    ex.type_into_text("seed", "0")
    checks.expect(ex.wait_no_error(30 if ex.act else 5), "sampler: seed 0 clears the error line", ex.errors())
    status = wait_run(ex)
    checks.expect("seed 0" in status, f"sampler: seed 0 runs again ({status!r})", ex.status_log())

    ex.click(ex.button("Algorithm 2"))
    started = poll(lambda: "Algorithm 2" in ex.status() and progress_fraction(ex) > 0, 60 if ex.act else 5)
    first = progress_fraction(ex)
    checks.expect(bool(started), f"sampler: Algorithm 2 starts a run ({ex.status()!r}, progress {first:.1%})")
    time.sleep(5)
    second = progress_fraction(ex)
    checks.expect(second > first, f"sampler: the progress bar advances ({first:.1%} -> {second:.1%})")
    before = ex.src()
    checks.expect(ex.wait_new_src(before, 10 if ex.act else 2), "sampler: the current x_t shows while it runs")
    ex.screenshot("_running")
    ex.click(ex.button("Stop"))
    stopped = poll(lambda: re.search(r"stopped after (\d+) of (\d+) steps", ex.status()), 30 if ex.act else 5)
    checks.expect(bool(stopped) and 0 < int(stopped.group(1)) < int(stopped.group(2)),
                  f"sampler: Stop ends the run ({ex.status()!r})")
    at_stop = progress_fraction(ex)
    time.sleep(2)
    checks.expect(bool(stopped) and progress_fraction(ex) == at_stop,
                  f"sampler: the progress bar stays still after Stop ({at_stop:.1%})")
    ex.screenshot("_stopped")
    check_sdedit(ex, checks, step_label)


def check_sdedit(ex: Explorer, checks: Checks, step_label) -> None:
    """The SDEdit start (a held-out digit or a drawing noised to t, then denoised), where the view has it."""
    if ex.cell.get_by_role("button", name="a held-out digit", exact=True).count() == 0:
        print("  note  the sampler explorer has no SDEdit start: not checked")
        return
    timeout = 300 if ex.act else 5
    ex.log_status()
    ex.click(ex.button("DDIM"))
    status = wait_run(ex)
    checks.expect("DDIM" in status, f"sampler: back to DDIM, a run from noise ({status!r})", ex.status_log())
    before = ex.settle()
    ex.log_status()
    ex.click(ex.button("a held-out digit"))
    status = wait_run(ex, timeout)
    x0 = ex.image_state(0)
    checks.expect("from x_t, t = 400" in status and "from x_400 to x_0" in status,
                  f"sampler SDEdit: 'a held-out digit' denoises it from t = 400 ({status!r})")
    checks.expect(ex.image(0).is_visible() and x0["width"] > 0, f"sampler SDEdit: the digit x_0 shows ({x0})")
    checks.expect(ex.wait_new_src(before, 5), "sampler SDEdit: the picture shows the denoised digits")
    ex.press_on_slider("chain", "Home")
    checks.expect(poll(lambda: step_label() == "t = 400", 10 if ex.act else 1),
                  f"sampler SDEdit: Home on the chain slider shows x_400 ({step_label()!r})")
    ex.screenshot("_sdedit_digit")

    ex.type_into_readout("noise to t", "10")
    check_error(ex, checks, "num_steps must be an integer in 1..10", "noise to t = 10 < N = 20 (typed, Enter)")
    ex.log_status()
    ex.click(ex.button("Algorithm 2"))  # SDEdit's own sampler: t steps, no N to exceed t
    checks.expect(ex.wait_no_error(30 if ex.act else 5), "sampler SDEdit: Algorithm 2 clears the error line",
                  ex.errors())
    status = wait_run(ex, timeout)
    checks.expect("from x_t, t = 10: Algorithm 2" in status and "from x_10 to x_0" in status,
                  f"sampler SDEdit: Algorithm 2 denoises the digit from t = 10 ({status!r})")
    ex.click(ex.button("DDIM"))
    check_error(ex, checks, "num_steps must be an integer in 1..10", "DDIM again, t = 10 < N = 20")
    ex.log_status()
    ex.type_into_readout("noise to t", "300")
    checks.expect(ex.wait_no_error(30 if ex.act else 5), "sampler SDEdit: t = 300 clears the error line", ex.errors())
    status = wait_run(ex, timeout)
    checks.expect("from x_t, t = 300" in status, f"sampler SDEdit: t = 300 runs ({status!r})")

    pad = ex.cell.locator(".widget-gridbox")
    ex.click(ex.button("my drawing"))
    check_error(ex, checks, "the drawing is empty", "'my drawing' with an empty pad")
    checks.expect(poll(pad.is_visible, 10 if ex.act else 1), "sampler SDEdit: 'my drawing' shows the drawing pad")
    before, x0_before = ex.settle(), ex.src(0)
    ex.log_status()
    draw_a_one(ex, checks, pad)
    checks.expect(not ex.status_log() and ex.errors(), "sampler SDEdit: drawing starts no run (the error line stays "
                  "until Run)", ex.status_log())
    ex.click(ex.button("Run"))
    status = wait_run(ex, timeout)
    checks.expect(not ex.errors() and "from x_t, t = 300" in status,
                  f"sampler SDEdit: Run after drawing clears the error line and denoises the drawing ({status!r})",
                  ex.errors())
    checks.expect(ex.wait_new_src(x0_before, 5, index=0) and ex.wait_new_src(before, 5),
                  "sampler SDEdit: the drawing shows as x_0 and its denoised copies as the picture")
    ex.screenshot("_sdedit_drawing")


def check_toy(ex: Explorer, checks: Checks) -> None:
    print("2-D toy explorer")
    check_rendered(ex, checks)
    timeout = 120 if ex.act else 5
    before = ex.settle()
    ex.choose("T (linear)", "50")
    checks.expect(ex.wait_new_src(before, timeout), "toy: T = 50 chosen in the dropdown resamples and redraws")
    before = ex.settle()
    ex.type_into_readout("t", "25")
    changed = ex.wait_new_src(before, timeout)
    checks.expect(changed and readout(ex, "t") == "25", f"toy: t = 25 typed into the slider's readout redraws "
                  f"(t = {readout(ex, 't')})")
    ex.type_into_textarea("x, y, w, std", "0.5, 0.5, 1, 0.1\n1, 2, 3")
    check_error(ex, checks, "must be four numbers", "a components line '1, 2, 3'")
    ex.screenshot("_error")
    before = ex.settle()
    ex.press_on_slider("ring: K", "ArrowLeft", "ArrowLeft", "ArrowLeft")  # 8 to 5 components
    ex.click(ex.button("write this ring"))
    lines = lambda: ex.control("textarea", "x, y, w, std").locator("textarea").input_value().strip().count("\n") + 1
    checks.expect(ex.wait_no_error(timeout) and ex.wait_new_src(before, timeout) and lines() == 5,
                  f"toy: ring K = 5 and 'write this ring' write 5 lines ({lines()}), clear the error line and redraw",
                  ex.errors())
    ex.settle()
    ex.screenshot()


def check_dashboard(ex: Explorer, checks: Checks) -> None:
    print("training dashboard")
    train_cell = ex.page.locator(".jp-Notebook .jp-Cell").nth(CELL_INDEX["train"])
    printed = train_cell.locator(".jp-Cell-outputArea").inner_text()
    checks.expect("trained 6 steps" in printed, "dashboard: the training cell trained 6 steps", printed[-300:])
    check_rendered(ex, checks, min_widgets=3)
    status = ex.status()
    found = re.search(r"(\d+) metrics rows, last at step (\d+); median \d+ images/s; (\d+) sample grids", status)
    checks.expect(bool(found) and found.groups() == ("3", "6", "3"),
                  f"dashboard: the status line names 3 metrics rows, step 6, 3 sample grids ({status!r})")
    magic = ex.image().evaluate(IMAGE_MAGIC_JS)
    checks.expect(magic == PNG_MAGIC, "dashboard: its picture is a PNG", magic)
    ex.screenshot()


def run_all_cells(page, checks: Checks) -> None:
    page.get_by_role("menuitem", name="Run").first.click()
    page.locator(".lm-Menu-item", has_text="Run All Cells").first.click()
    prompts_js = "() => [...document.querySelectorAll('.jp-Notebook .jp-InputPrompt')].map((e) => e.textContent.trim())"
    start = time.monotonic()
    done = poll(lambda: all(re.fullmatch(r"\[\d+\]:", p) for p in page.evaluate(prompts_js)), 900, interval=2)
    checks.expect(bool(done), f"Run All: every cell ran ({time.monotonic() - start:.0f} s; prompts "
                  f"{page.evaluate(prompts_js)})")
    errors = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]')
    checks.expect(errors.count() == 0, "Run All: no cell raised an error",
                  errors.first.inner_text()[-1500:] if errors.count() else None)
    stderr = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    for i in range(stderr.count()):
        print("  note  a cell wrote to stderr:", stderr.nth(i).inner_text()[:300].replace("\n", " | "))


def run_checks(base: str, out: Path, act: bool) -> list[str]:
    from playwright.sync_api import sync_playwright

    checks = Checks()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1280, "height": 1200}).new_page()
        page.set_default_timeout(60_000)
        page.goto(f"{base}/lab/tree/explorers.ipynb?reset")
        page.wait_for_function("() => document.querySelectorAll('.jp-Notebook .jp-Cell').length >= 7", timeout=120_000)
        page.wait_for_function(  # the kernel has started
            "() => document.querySelector('.jp-Notebook-ExecutionIndicator, .jp-KernelStatus, "
            ".jp-Toolbar-kernelStatus') !== null", timeout=120_000)
        page.wait_for_timeout(3000)
        print("Run > Run All Cells")
        run_all_cells(page, checks)
        page.wait_for_timeout(2000)
        page.screenshot(path=str(out / "notebook_after_run_all.png"))
        for name, check in (("schedule", check_schedule), ("posterior", check_posterior), ("sampler", check_sampler),
                            ("toy", check_toy), ("dashboard", check_dashboard)):
            try:
                check(Explorer(page, name, out, act), checks)
            except Exception as err:  # a check that cannot even look: record it, go on with the next explorer
                checks.expect(False, f"{name}: the checks ran to the end", f"{type(err).__name__}: {err}"[:800])
                page.screenshot(path=str(out / f"{name}_exception.png"))
        browser.close()
    print(f"{checks.count} checks, {len(checks.failures)} failed")
    return checks.failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "test-artifacts" / "jupyter-explorers",
                        help="folder for the screenshots")
    parser.add_argument("--skip-actions", action="store_true",
                        help="self-test: touch no control; the checks that follow a control change must fail")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    versions = {name: importlib.metadata.version(name) for name in ("jupyterlab", "ipywidgets", "jupyterlab_widgets",
                                                                    "ipykernel", "playwright")}
    print("versions:", ", ".join(f"{k} {v}" for k, v in versions.items()))
    with tempfile.TemporaryDirectory(prefix="explorers-jupyter-") as tmp:
        tmp = Path(tmp)
        work = tmp / "notebooks"
        work.mkdir()
        write_notebook(work / "explorers.ipynb", tmp / "run")
        with throwaway_jupyter(tmp, work, MPLBACKEND="Agg") as base:
            failures = run_checks(base, args.out, act=not args.skip_actions)
    return report(failures, args.out)


if __name__ == "__main__":
    sys.exit(main())
