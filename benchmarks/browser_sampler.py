"""Sampling in the browser: how long does the page "Sampling in your browser" take to draw 16 digits?

Headless Chromium (Debian's, driven by Playwright) opens the built page ``book/sampler.html``
over HTTP from a local server (Python's http.server, no compression), every request that
leaves the book blocked, and measures, as a reader would meet them:

* **one network call**: eps_theta for a batch of 16 at t = 500, as the page makes it (split
  over its workers), median and fastest of 20 calls after 5 to warm up;
* **a warm run**: 16 digits with DDIM-50 and autoguidance w = 1.5 (100 network calls), pressed
  with the page's own button after a first run: from the press to the last digit, median of
  ``--runs``;
* **a run from a fresh page**: the same press on a page just opened in a new browser context
  (nothing cached), which first loads the runtime and the two networks, so from the press to
  the last digit; ``--runs`` fresh pages;
* **a drawing noised and denoised** (SDEdit): "Noise and denoise" on one drawn stroke, from
  t = 500 (T/2) in 25 DDIM steps with w = 1.5 (50 network calls, batch 1), warm: median of ``--runs``;
* **bytes**: what opening the page loads, and what its first press loads (bodies as sent);

once with the networks in the page's workers (the page's default: one per core but one, up to
four) and once in the page's own thread (where a browser refuses workers). Targets: at most 4 s warm, at most 6 s from a fresh
page.

On a machine shared with other jobs the wall clock measures the other jobs too. So each run
also records the CPU time of every thread of the browser (from ``/proc``, Linux only): the page's
main thread, its workers, and the rest (the browser compiling WebAssembly in the background,
drawing). The page's critical path is its main thread plus the busiest worker (the main thread
waits while the workers compute, and the workers run side by side), so their sum estimates the
wall-clock time on an idle machine with a core per worker; the load average is recorded before
and after.

Prints a table and writes ``benchmarks/results/browser_sampler.json``; other settings than the
defaults must name their ``--out``. Needs the built book (``make book``).

    .venv/bin/python benchmarks/browser_sampler.py      # about 2 minutes on two cores
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import statistics
import sys
import threading
from pathlib import Path

from machine import changed_options, machine, out_path, write_record  # benchmarks/machine.py

ROOT = Path(__file__).resolve().parents[1]
PAGE = "book/sampler.html"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SETTINGS = {"seed": 0, "steps": 50, "eta": 0, "weight": 1.5}  # DDIM-50 with autoguidance: 100 network calls
TARGETS_S = {"warm": 4.0, "fresh": 6.0}
EDIT_SETTINGS = {"t": 500, "steps": 25, "seed": 0}  # SDEdit from T/2: 50 network calls of batch 1

# Press Generate and wait for the run to end, timed in the page (ms); then the run's own record.
_PRESS_JS = """
async () => {
  const start = performance.now();
  document.querySelector('#ddpm-sampler button[name=generate]').click();
  await new Promise((resolve) => {
    const poll = () => (ddpmSampler.running() ? setTimeout(poll, 5) : resolve());
    setTimeout(poll, 5);
  });
  const run = ddpmSampler.lastRun();
  delete run.samples;
  return {ms: performance.now() - start, run};
}
"""

# Times of single network calls (batch `count`, t = 500), in ms, after `warmup` calls.
_CALLS_JS = """
async ([count, warmup, repeats]) => {
  const x = Array.from({length: count * 1024}, (_, i) => Math.sin(i));
  for (let i = 0; i < warmup; i++) await ddpmSampler.eps('model', x, 500);
  const times = [];
  for (let i = 0; i < repeats; i++) {
    const start = performance.now();
    await ddpmSampler.eps('model', x, 500);
    times.push(performance.now() - start);
  }
  return times;
}
"""

# Press "Noise and denoise" on a drawn stroke (the test hook's x_0: a vertical bar, as a 1); time it (ms).
_EDIT_JS = """
async () => {
  const x0 = Array.from({length: 1024}, (_, i) => (Math.abs((i % 32) - 15.5) < 2 && i >= 6 * 32 && i < 26 * 32 ? 1 : -1));
  ddpmSampler.useImage(x0);
  const start = performance.now();
  document.querySelector('#ddpm-sdedit button[name=denoise]').click();
  await new Promise((resolve) => {
    const poll = () => (ddpmSampler.running() ? setTimeout(poll, 5) : resolve());
    setTimeout(poll, 5);
  });
  const run = ddpmSampler.lastEdit();
  return {ms: performance.now() - start, t: run.t, steps: run.steps};
}
"""

# Bytes of every resource the page has loaded so far (bodies as sent), by URL.
_BYTES_JS = """
() => Object.fromEntries(performance.getEntriesByType('resource').map((e) => [e.name, e.encodedBodySize])
  .concat(performance.getEntriesByType('navigation').map((e) => [e.name, e.encodedBodySize])))
"""


def _browser_threads() -> dict[tuple[int, int], tuple[str, bool, float]]:
    """CPU seconds of every thread of this process's descendants: {(pid, tid): (name, is_renderer_main, seconds)}."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    pids, todo = [], [os.getpid()]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo += children.get(pid, [])
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for pid in pids:
        try:
            renderer = b"--type=renderer" in Path(f"/proc/{pid}/cmdline").read_bytes()
            for tid in os.listdir(f"/proc/{pid}/task"):
                stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
                fields = stat.rsplit(")", 1)[1].split()  # after the name: state, ppid, ...; utime, stime at 11, 12
                name = stat[stat.index("(") + 1:stat.rindex(")")]
                found[pid, int(tid)] = (name, renderer and int(tid) == pid, (int(fields[11]) + int(fields[12])) / tick)
        except OSError:  # a thread or process that ended meanwhile
            continue
    return found


def _cpu_of(before: dict, after: dict) -> dict | None:
    """CPU seconds spent between two snapshots: the page's main thread, its workers, everything; and the estimate."""
    if not after:
        return None
    spent = {key: (name, main, seconds - before.get(key, (name, main, 0.0))[2]) for key, (name, main, seconds) in after.items()}
    main = max((s for name, is_main, s in spent.values() if is_main), default=0.0)
    workers = [s for name, _, s in spent.values() if name == "DedicatedWorker"]
    return {"main_thread_s": round(main, 2), "workers_s": sorted((round(w, 2) for w in workers if w > 0), reverse=True),
            "all_threads_s": round(sum(s for _, _, s in spent.values()), 2),
            "idle_machine_estimate_s": round(main + max(workers, default=0.0), 2)}


def _snapshot() -> dict:
    return _browser_threads() if Path("/proc/self/task").is_dir() else {}


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


class Tab:
    """A fresh browser context on the sampler page; requests leaving the server are blocked and kept."""

    def __init__(self, browser, base_url: str, workers: bool):
        self.blocked, self.errors = [], []
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
            (base_url, "blob:", "data:")) else (self.blocked.append(route.request.url), route.abort("blockedbyclient")))
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(base_url + PAGE, wait_until="load")
        self.page.wait_for_function("() => window.ddpmSampler && !document.querySelector('button[name=generate]').disabled")
        if not workers:
            self.page.evaluate("() => ddpmSampler.useWorkers(0)")
        for name, value in SETTINGS.items():
            self.page.fill(f"#ddpm-sampler form input[name={name}]", str(value))
        for name, value in EDIT_SETTINGS.items():
            self.page.fill(f"#ddpm-sdedit form input[name={name}]", str(value))

    def press(self) -> dict:
        before = _snapshot()
        result = self.page.evaluate(_PRESS_JS)
        result["cpu"] = _cpu_of(before, _snapshot())
        if result["run"] is None or result["run"]["stopped"] or result["run"]["calls"] != 100:
            raise RuntimeError(f"the run did not finish as set: {result}, errors {self.errors}")
        return result

    def noise_and_denoise(self) -> float:
        """Seconds from the press of "Noise and denoise" to the denoised digit."""
        result = self.page.evaluate(_EDIT_JS)
        if (result["t"], result["steps"]) != (EDIT_SETTINGS["t"], EDIT_SETTINGS["steps"]):
            raise RuntimeError(f"the drawing was not denoised as set: {result}, errors {self.errors}")
        return round(result["ms"] / 1000, 3)

    def close(self):
        if self.blocked or self.errors:
            raise RuntimeError(f"blocked requests {self.blocked}, page errors {self.errors}")
        self.context.close()


def measure(browser, base_url: str, workers: bool, runs: int) -> dict:
    """Fresh-page runs, then warm runs and single calls in the last tab."""
    fresh, fresh_cpu, page_bytes, press_bytes, tab = [], [], None, None, None
    for _ in range(runs):
        if tab is not None:
            tab.close()
        tab = Tab(browser, base_url, workers)
        before = tab.page.evaluate(_BYTES_JS)
        result = tab.press()
        after = tab.page.evaluate(_BYTES_JS)
        fresh.append(round(result["ms"] / 1000, 3))
        fresh_cpu.append(result["cpu"])
        page_bytes = sum(before.values())
        press_bytes = sum(size for url, size in after.items() if url not in before)
        where = tab.page.evaluate("() => ddpmSampler.load()")
        load_s = result["run"]["loadSeconds"]
    warm_results = [tab.press() for _ in range(runs)]
    warm = [round(r["ms"] / 1000, 3) for r in warm_results]
    edits = [tab.noise_and_denoise() for _ in range(runs)]
    calls = tab.page.evaluate(_CALLS_JS, [16, 5, 20])
    tab.close()
    return {
        "networks_run_in": where["where"], "threads": where["threads"],
        "network_call_batch16_ms": {"median": round(statistics.median(calls), 1), "fastest": round(min(calls), 1)},
        "warm_run_s": {"median": statistics.median(warm), "runs": warm, "cpu": [r["cpu"] for r in warm_results]},
        "fresh_page_run_s": {"median": statistics.median(fresh), "runs": fresh, "of_which_loading_s_last": round(load_s, 3),
                             "cpu": fresh_cpu},
        "sdedit_warm_s": {"median": statistics.median(edits), "runs": edits},
        "bytes_opening_the_page": page_bytes,
        "bytes_first_press": press_bytes,
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--html", default=str(ROOT / "_build" / "html"), help="the built book (default: _build/html)")
    p.add_argument("--runs", type=int, default=3, help="warm runs and fresh pages, each (default 3)")
    p.add_argument("--out", help="the JSON record (default: benchmarks/results/browser_sampler.json, default settings only)")
    args = p.parse_args(argv)
    out = out_path(p, args, "browser_sampler.json", changed_options(p, args, ignore=("html",)))
    html = Path(args.html)
    if not (html / PAGE).is_file():
        p.error(f"no built page {html / PAGE}: build the book first (`make book`)")
    if not CHROMIUM.is_file():
        p.error(f"{CHROMIUM} not found (apt-get install chromium, or set CHROMIUM)")
    from playwright.sync_api import sync_playwright

    info = machine()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(html)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base_url = f"http://127.0.0.1:{server.server_address[1]}/"
    results = {}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            info["chromium"] = browser.version
            for key, workers in (("workers", True), ("page_thread", False)):
                results[key] = measure(browser, base_url, workers, args.runs)
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    info["load_average_1_5_15_min_at_end"] = [round(v, 2) for v in os.getloadavg()]

    def idle(runs: dict) -> str:
        estimates = [c["idle_machine_estimate_s"] for c in runs["cpu"] if c]
        return f"{statistics.median(estimates):.2f}" if estimates else "-"

    print(f"\n{'networks run in':<20} {'call, batch 16':>15} {'warm run':>9} {'(idle)':>7} {'fresh page':>11} {'(idle)':>7} "
          f"{'opening':>8} {'1st press':>10}")
    print(f"{'':<20} {'median ms':>15} {'s':>9} {'s':>7} {'s':>11} {'s':>7} {'MB':>8} {'MB':>10}")
    for key, r in results.items():
        label = f"{r['threads']} worker{'s' if r['threads'] > 1 else ''}" if r["networks_run_in"] == "workers" else "the page's thread"
        print(f"{label:<20} {r['network_call_batch16_ms']['median']:>15.1f} {r['warm_run_s']['median']:>9.2f} "
              f"{idle(r['warm_run_s']):>7} {r['fresh_page_run_s']['median']:>11.2f} {idle(r['fresh_page_run_s']):>7} "
              f"{r['bytes_opening_the_page'] / 1e6:>8.2f} {r['bytes_first_press'] / 1e6:>10.2f}")
    print("(idle): main thread + busiest worker, in CPU seconds: the wall clock an idle machine would show")
    for key, r in results.items():
        print(f"a drawing noised to t = {EDIT_SETTINGS['t']} and denoised in {EDIT_SETTINGS['steps']} steps "
              f"({2 * EDIT_SETTINGS['steps']} calls, batch 1), warm, networks in {r['networks_run_in']}: "
              f"{r['sdedit_warm_s']['median']:.2f} s")
    print(f"targets: warm <= {TARGETS_S['warm']} s, fresh page <= {TARGETS_S['fresh']} s "
          f"(100 network calls: 16 digits, DDIM-50, w = 1.5); load average {info['load_average_1_5_15_min_at_start']} "
          f"at the start, {info['load_average_1_5_15_min_at_end']} at the end on {info['logical_cores']} cores")
    recorded_argv = list(sys.argv[1:] if argv is None else argv)
    if "--html" in recorded_argv:  # where the built book lies is not a setting
        i = recorded_argv.index("--html")
        del recorded_argv[i:i + 2]
    recorded_argv = [a for a in recorded_argv if not a.startswith("--html=")]
    return write_record(out, "browser_sampler.py", "browser_sampler", recorded_argv, info,
                        settings={**SETTINGS, "digits": 16, "network_calls": 100, "served_by": "http.server",
                                  "sdedit": {**EDIT_SETTINGS, "weight": 1.5, "network_calls": 2 * EDIT_SETTINGS["steps"]}},
                        targets_s=TARGETS_S, results=results)


if __name__ == "__main__":
    main()
