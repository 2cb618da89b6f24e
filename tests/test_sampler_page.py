"""The page "Sampling in your browser" (book/sampler.md) samples what ddpm_core samples.

Headless Chromium opens the built page twice, from file:// and over HTTP (Python's
http.server), with every request that leaves the book blocked and counted as a failure.

* **The same digits.** Python writes a JSON fixture: for a seed, the x_T and the per-step z that
  ``ddim_sample_loop`` draws from ``torch.Generator().manual_seed(seed)``, and the x_0 it
  returns, for eta = 0 and eta = 1, with and without autoguidance. The page's test hook
  (``ddpmSampler.useNoise``) hands that noise to its next run; the run is started with the
  page's own controls, and its x_0 must equal ddpm_core's to 1e-3. Once more with the networks
  in the page's own thread instead of workers, and with four workers that split the batch. The
  page's DDIM timesteps equal
  ``ddim_timesteps`` for every number of steps, and one network call equals PyTorch's.
* **The controls.** Seed, steps, eta and the guidance weight each change what they should;
  steps outside 1..T (and other bad input) give a message on the page and run nothing; the
  progress bar counts the steps; Stop stops; the chain's slider and digit follow the run.
* **Draw, noise, denoise (SDEdit).** Python writes a second fixture: two held-out MNIST digits
  x_0, the eps of the forward step and each step's z; x_t is ``q_sample`` (eq-forward-closed-form)
  and the denoised x_0 comes from ``ddim_mean_variance`` stepped over ``ddim_timesteps(t, S)``
  with eta = 0 and w = 1.5 (with t = T that loop is ``ddim_sample_loop``, checked). The page,
  handed that x_0 and noise (``ddpmSampler.useImage``, ``useNoise``), must give both to 1e-3.
  Strokes drawn with the mouse become a digit-like image that the button noises and denoises
  into a digit resembling it; a finger's strokes on a phone-sized page draw too, without
  scrolling it; an empty box (after Clear) and t or steps out of range give a message and run
  nothing; t, the seed and the chain's slider do what they say.
* **Loaded on demand, and only here.** Until the first press the page loads only its small
  files; no other page of the book loads the sampler's files.

The tests need the built book (``make book``) and skip, saying so, without it. Point
DDPM_BUILT_HTML at another build folder to test that one.
"""

from __future__ import annotations

import functools
import http.server
import json
import math
import os
import re
import threading
from pathlib import Path

import pytest
import torch

from ddpm_core.data import load_mnist_5k
from ddpm_core.ddim import ddim_mean_variance, ddim_sample_loop, ddim_timesteps
from ddpm_core.forward import q_sample
from ddpm_core.guidance import Autoguided
from ddpm_core.weights import PRETRAINED_GUIDE, load_pretrained

ROOT = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("DDPM_BUILT_HTML", ROOT / "_build" / "html"))
PAGE = "book/sampler.html"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
TOLERANCE = 1e-3
LOADED_ON_PRESS = ("model.onnx.js", "guide.onnx.js", "ort.wasm.min.js.js", "ort-wasm-simd.wasm.js")

# (eta, w): deterministic DDIM and DDPM-like noise, each without and with autoguidance
CASES = [(0.0, 1.0), (0.0, 1.5), (1.0, 1.0), (1.0, 1.5)]
FIXTURE_DIGITS, FIXTURE_STEPS = 4, 10
# Draw, noise, denoise: (t, steps), the page's default and every step from a small t
EDIT_CASES = [(400, 10), (37, 37)]
EDIT_ETA, EDIT_WEIGHT = 0.0, 1.5  # what the page uses

if not (HTML / PAGE).is_file():
    pytest.skip(f"no built page {HTML / PAGE}: build the book first (`make book`)", allow_module_level=True)
if not CHROMIUM.is_file():
    pytest.skip(f"{CHROMIUM} not found (apt-get install chromium, or set CHROMIUM)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the page is driven with Playwright (requirements.txt)")


# --------------------------------------------------------------------------------------
# The fixture: ddim_sample_loop's noise and its result, from Python
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def networks():
    model, schedule = load_pretrained()
    guide, _ = load_pretrained(PRETRAINED_GUIDE)
    return model, guide, schedule


@pytest.fixture(scope="module")
def fixture_file(networks, tmp_path_factory) -> Path:
    """JSON: per case, the seed, eta, w, x_T, each step's z and ddim_sample_loop's x_0 (flat lists)."""
    model, guide, schedule = networks
    shape = (FIXTURE_DIGITS, 1, 32, 32)
    cases = []
    for seed, (eta, w) in enumerate(CASES):
        net = model if w == 1.0 else Autoguided(model, guide, w)
        expected = ddim_sample_loop(schedule, net, shape, FIXTURE_STEPS, eta=eta,
                                    generator=torch.Generator().manual_seed(seed))
        # The same generator's numbers, in the order the loop draws them: x_T, then one z per step.
        g = torch.Generator().manual_seed(seed)
        noise = [torch.randn(shape, generator=g) for _ in range(FIXTURE_STEPS + 1)]
        # That order is the loop's: starting from that x_T with the generator past it gives its result.
        g = torch.Generator().manual_seed(seed)
        torch.randn(shape, generator=g)
        again = ddim_sample_loop(schedule, net, shape, FIXTURE_STEPS, eta=eta, generator=g, x_T=noise[0])
        assert torch.equal(again, expected)
        cases.append({"seed": seed, "eta": eta, "w": w, "steps": FIXTURE_STEPS,
                      "noise": [n.flatten().tolist() for n in noise], "expected": expected.flatten().tolist()})
    path = tmp_path_factory.mktemp("sampler") / "ddim_fixture.json"
    path.write_text(json.dumps({"T": schedule.T, "cases": cases}))
    return path


@torch.no_grad()
def sdedit_reference(schedule, net, x0: torch.Tensor, t: int, steps: int, noise: list[torch.Tensor]):
    """x_t = q_sample(x_0, t, eps = noise[0]), then DDIM from x_t over ddim_timesteps(t, steps) with
    noise[k + 1] as step k's z, each step ddim_mean_variance's, as ddim_sample_loop takes them."""
    x_t = q_sample(schedule, x0, t, noise=noise[0])
    x = x_t
    timesteps = ddim_timesteps(t, steps)
    for k, (t_k, s) in enumerate(zip(timesteps, timesteps[1:] + [0])):
        step = ddim_mean_variance(schedule, net, x, t_k, s, eta=EDIT_ETA)
        x = step.mean + step.variance.sqrt() * noise[k + 1]
    return x_t, x


@pytest.fixture(scope="module")
def edit_fixture_file(networks, tmp_path_factory) -> Path:
    """JSON: per case, t, steps, x_0 (two held-out digits), the noise, and ddpm_core's x_t and x_0."""
    model, guide, schedule = networks
    net = Autoguided(model, guide, EDIT_WEIGHT)
    images, _ = load_mnist_5k("test")
    x0 = images[[0, 60]]  # (2, 1, 32, 32), a 0 and a 1 never trained on
    # The reference loop is ddim_sample_loop's: from t = T and the same x_T, the same x_0.
    g = torch.Generator().manual_seed(9)
    noise = [torch.randn(x0.shape, generator=g) for _ in range(4)]
    x_T, x_ref = sdedit_reference(schedule, net, x0, schedule.T, 3, noise)
    x_loop = ddim_sample_loop(schedule, net, tuple(x0.shape), 3, eta=EDIT_ETA, x_T=x_T,
                              generator=torch.Generator().manual_seed(0))
    assert torch.allclose(x_ref, x_loop, atol=1e-6)
    cases = []
    for seed, (t, steps) in enumerate(EDIT_CASES):
        g = torch.Generator().manual_seed(seed)
        noise = [torch.randn(x0.shape, generator=g) for _ in range(steps + 1)]  # eps, then one z per step
        x_t, expected = sdedit_reference(schedule, net, x0, t, steps, noise)
        cases.append({"t": t, "steps": steps, "x0": x0.flatten().tolist(), "noise": [n.flatten().tolist() for n in noise],
                      "x_t": x_t.flatten().tolist(), "expected": expected.flatten().tolist()})
    path = tmp_path_factory.mktemp("sdedit") / "sdedit_fixture.json"
    path.write_text(json.dumps({"T": schedule.T, "cases": cases}))
    return path


# --------------------------------------------------------------------------------------
# The browser, the two ways to open the page, and every request leaving the book blocked
# --------------------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


@pytest.fixture(scope="module")
def base_urls():
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"file": HTML.resolve().as_uri() + "/", "http": f"http://127.0.0.1:{server.server_address[1]}/"}
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class SamplerPage:
    """One tab on the sampler page; records requests, blocked requests and errors."""

    def __init__(self, browser, base_url: str, path: str = PAGE, **context):
        self.base_url = base_url
        self.requests, self.blocked, self.errors = [], [], []
        self.context = browser.new_context(**{"viewport": {"width": 1280, "height": 900}, **context})
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(f"console: {m.text}"))
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.goto(base_url + path, wait_until="load")

    def _route(self, route):
        url = route.request.url
        if url.startswith((self.base_url, "blob:", "data:")):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort("blockedbyclient")

    def ready(self):
        self.page.wait_for_function("() => window.ddpmSampler && !document.querySelector('button[name=generate]').disabled")

    def set_controls(self, **values):
        for name, value in values.items():
            self.page.fill(f"#ddpm-sampler form input[name={name}]", str(value))

    def generate(self, timeout_ms: int = 120_000) -> dict | None:
        """Press Generate and wait until the run ends; the run, as the test hook reports it."""
        before = self.page.evaluate("() => ddpmSampler.lastRun()")
        self.page.click("button[name=generate]")
        self.page.wait_for_function("() => !ddpmSampler.running()", timeout=timeout_ms)
        after = self.page.evaluate("() => ddpmSampler.lastRun()")
        return None if after == before else after

    def text(self, selector: str, section: str = "#ddpm-sampler") -> str:
        return self.page.inner_text(f"{section} {selector}")

    def error(self, section: str = "#ddpm-sampler") -> str:
        shown = self.page.is_visible(f"{section} .ddpm-sampler-error")
        return self.text(".ddpm-sampler-error", section) if shown else ""

    # Draw a digit, noise it, denoise it

    def set_edit_controls(self, **values):
        for name, value in values.items():
            self.page.fill(f"#ddpm-sdedit form input[name={name}]", str(value))

    def denoise(self, timeout_ms: int = 120_000) -> dict | None:
        """Press "Noise and denoise" and wait until the run ends; the run, as the test hook reports it."""
        before = self.page.evaluate("() => ddpmSampler.lastEdit() && ddpmSampler.lastEdit().number")
        self.page.click("#ddpm-sdedit button[name=denoise]")
        self.page.wait_for_function("() => !ddpmSampler.running()", timeout=timeout_ms)
        after = self.page.evaluate("() => ddpmSampler.lastEdit()")
        return None if after is None or after["number"] == before else after

    def draw(self, strokes: list[list[tuple[float, float]]]):
        """Draw with the mouse on the pad; points as fractions of its width and height."""
        pad = self.page.locator("#ddpm-sdedit canvas.ddpm-sdedit-pad")
        pad.scroll_into_view_if_needed()
        box = pad.bounding_box()
        at = lambda u, v: (box["x"] + u * box["width"], box["y"] + v * box["height"])  # noqa: E731
        for stroke in strokes:
            self.page.mouse.move(*at(*stroke[0]))
            self.page.mouse.down()
            for point in stroke[1:]:
                self.page.mouse.move(*at(*point), steps=5)
            self.page.mouse.up()

    def outside(self) -> list[str]:
        """Requests that left the book (blob: and data: URLs are made by the page itself)."""
        return self.blocked + [u for u in self.requests if not u.startswith((self.base_url, "blob:", "data:"))]


@pytest.fixture(scope="module", params=["file", "http"])
def sampler(request, browser, base_urls):
    tab = SamplerPage(browser, base_urls[request.param])
    tab.ready()
    yield tab
    problems = tab.errors + [f"left the book: {u}" for u in tab.outside()]
    tab.context.close()
    assert not problems, f"the sampler page over {request.param}: {problems}"


# --------------------------------------------------------------------------------------
# The same digits as ddpm_core
# --------------------------------------------------------------------------------------


def _largest_gap(page: SamplerPage, case: dict) -> tuple[float, dict]:
    page.page.evaluate("(noise) => ddpmSampler.useNoise(noise)", case["noise"])
    page.set_controls(steps=case["steps"], eta=case["eta"], weight=case["w"])
    run = page.generate()
    assert run is not None and not run["stopped"], f"the run did not finish: {page.error()}"
    samples, expected = torch.tensor(run["samples"]), torch.tensor(case["expected"])
    assert samples.shape == expected.shape
    return float((samples - expected).abs().max()), run


@pytest.mark.parametrize("case_index", range(len(CASES)), ids=[f"eta{e:g}-w{w:g}" for e, w in CASES])
def test_samples_equal_ddpm_core(sampler, fixture_file, case_index):
    """With ddim_sample_loop's noise, the page's x_0 equals ddpm_core's to 1e-3."""
    case = json.loads(fixture_file.read_text())["cases"][case_index]
    gap, run = _largest_gap(sampler, case)
    assert run["calls"] == case["steps"] * (1 if case["w"] == 1.0 else 2)
    assert gap < TOLERANCE, f"eta {case['eta']}, w {case['w']}: the page and ddim_sample_loop differ by {gap:.2e}"


@pytest.mark.parametrize("workers", [0, 4], ids=["in-the-page", "4-workers"])
def test_samples_equal_ddpm_core_with_other_workers(browser, base_urls, fixture_file, workers):
    """Where workers are refused the networks run in the page itself; with 4 workers each network
    call is split into slices of the batch. The same digits either way."""
    tab = SamplerPage(browser, base_urls["file"])
    try:
        tab.ready()
        tab.page.evaluate("(n) => ddpmSampler.useWorkers(n)", workers)
        loaded = tab.page.evaluate("() => ddpmSampler.load()")
        assert (loaded["where"], loaded["threads"]) == (("page", 1) if workers == 0 else ("workers", workers))
        for case in json.loads(fixture_file.read_text())["cases"][2:]:  # eta = 1, without and with guidance
            gap, _ = _largest_gap(tab, case)
            assert gap < TOLERANCE, f"{workers} workers, w {case['w']}: the page and ddim_sample_loop differ by {gap:.2e}"
        assert not tab.errors and not tab.outside()
    finally:
        tab.context.close()


def test_timesteps_equal_ddim_timesteps(sampler, networks):
    """The page's DDIM subsequence is ddim_timesteps(T, S) for every S in 1..T (Python rounds halves to even)."""
    T = networks[2].T
    page_steps = sampler.page.evaluate("(T) => Array.from({length: T}, (_, i) => ddpmSampler.timesteps(i + 1))", T)
    different = [S for S in range(1, T + 1) if page_steps[S - 1] != ddim_timesteps(T, S)]
    assert not different, f"the page's timesteps differ from ddim_timesteps for S in {different[:10]}"


def test_one_network_call_equals_pytorch(sampler, networks):
    """eps of the model and of the guide, in the browser, equal PyTorch's to 1e-4."""
    model, guide, _ = networks
    g = torch.Generator().manual_seed(7)
    x = torch.randn(3, 1, 32, 32, generator=g)
    for which, net in (("model", model), ("guide", guide)):
        for t in (1, 500, 1000):
            eps = sampler.page.evaluate("([which, x, t]) => ddpmSampler.eps(which, x, t)", [which, x.flatten().tolist(), t])
            with torch.no_grad():
                expected = net(x, torch.full((3,), t))
            gap = float((torch.tensor(eps).reshape(3, 1, 32, 32) - expected).abs().max())
            assert gap < 1e-4, f"{which} at t = {t}: the browser and PyTorch differ by {gap:.2e}"


# --------------------------------------------------------------------------------------
# The controls
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("control, value, message", [
    ("steps", "0", "DDIM steps must be a whole number from 1 to 1000, got \"0\"."),
    ("steps", "1001", "DDIM steps must be a whole number from 1 to 1000, got \"1001\"."),
    ("steps", "2.5", "DDIM steps must be a whole number from 1 to 1000, got \"2.5\"."),
    ("steps", "", "DDIM steps must be a whole number from 1 to 1000, got nothing."),
    ("eta", "-0.5", "eta must be a number of at least 0, got \"-0.5\"."),
    ("weight", "0.5", "The guidance weight w must be a number of at least 1, got \"0.5\"."),
    ("seed", "-1", "Seed must be a whole number from 0 to 4294967295, got \"-1\"."),
])
def test_bad_input_says_what_is_allowed(sampler, control, value, message):
    """Bad input shows a message naming the control and what it accepts, and runs nothing."""
    sampler.set_controls(seed=0, steps=2, eta=0, weight=1)
    sampler.set_controls(**{control: value})
    assert sampler.generate() is None, "a run started from bad input"
    assert sampler.error() == message
    sampler.set_controls(seed=0, steps=1, eta=0, weight=1)
    assert sampler.generate() is not None
    assert sampler.error() == "", "the message stayed after good input"


def test_seed_steps_eta_and_weight_do_what_they_say(sampler):
    def run(**values):
        sampler.set_controls(**values)
        result = sampler.generate()
        assert result is not None, sampler.error()
        return result

    a = run(seed=3, steps=4, eta=0, weight=1)
    assert (a["seed"], a["steps"], a["eta"], a["weight"], a["count"], a["calls"]) == (3, 4, 0, 1, 16, 4)
    assert run(seed=3, steps=4, eta=0, weight=1)["samples"] == a["samples"], "the same seed gave other digits"
    assert run(seed=4, steps=4, eta=0, weight=1)["samples"] != a["samples"], "another seed gave the same digits"
    assert run(seed=3, steps=4, eta=1, weight=1)["samples"] != a["samples"], "eta = 1 changed nothing"
    guided = run(seed=3, steps=4, eta=0, weight=2)
    assert guided["calls"] == 8 and guided["samples"] != a["samples"], "w = 2 did not run the guide"
    three = run(seed=3, steps=3, eta=0, weight=1)
    assert three["steps"] == 3 and three["samples"] != a["samples"]
    assert sampler.page.evaluate("() => [document.querySelector('#ddpm-sampler progress').max,"
                                 " document.querySelector('#ddpm-sampler progress').value]") == [3, 3]
    assert "16 digits in 3 steps" in sampler.text(".ddpm-sampler-status")


def test_progress_and_stop(sampler):
    """The progress bar counts the steps as they come; Stop ends the run after the current one."""
    sampler.set_controls(seed=0, steps=400, eta=0, weight=1.5)
    sampler.page.click("button[name=generate]")
    sampler.page.wait_for_function("() => document.querySelector('#ddpm-sampler progress').value >= 2")
    assert sampler.page.is_enabled("button[name=stop]") and not sampler.page.is_enabled("button[name=generate]")
    sampler.page.click("button[name=stop]")
    sampler.page.wait_for_function("() => !ddpmSampler.running()", timeout=60_000)
    run = sampler.page.evaluate("() => ddpmSampler.lastRun()")
    assert run["stopped"] and 2 <= run["steps"] < 400 and run["plannedSteps"] == 400
    assert sampler.text(".ddpm-sampler-status").startswith(f"Stopped after step {run['steps']} of 400")
    assert not sampler.page.is_enabled("button[name=stop]") and sampler.page.is_enabled("button[name=generate]")


def test_chain_slider_and_digit(sampler):
    """After a run the slider walks the chain of one digit: x_t beside x0_hat; a click on the grid picks the digit."""
    sampler.set_controls(seed=1, steps=5, eta=0, weight=1)
    assert sampler.generate() is not None
    picture = ("(selector) => Array.from(document.querySelector(selector).getContext('2d')"
               ".getImageData(0, 0, 32, 32).data).join(',')")
    slider = "#ddpm-sampler .ddpm-sampler-chain input[type=range]"
    assert sampler.page.is_visible(slider) and sampler.page.get_attribute(slider, "max") == "5"

    def show(step: int) -> tuple[str, str, str]:
        sampler.page.eval_on_selector(slider, "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }", str(step))
        return (sampler.text(".ddpm-sampler-chain-label"), sampler.page.evaluate(picture, "#ddpm-sampler canvas.ddpm-sampler-xt"),
                sampler.page.evaluate(picture, "#ddpm-sampler canvas.ddpm-sampler-x0"))

    start, middle, end = show(0), show(2), show(5)
    assert start[0].startswith("Digit 1, before the first step") and "t = 1000" in start[0]
    assert middle[0].startswith("Digit 1, after step 2 of 5")
    assert end[0].startswith("Digit 1, after the last step: the sample x0")
    assert start[1] != middle[1] != end[1], "x_t did not change along the chain"
    assert end[1] == end[2], "after the last step x_0 and the last x0_hat differ"

    grid = sampler.page.locator("#ddpm-sampler canvas.ddpm-sampler-grid")
    box = grid.bounding_box()
    grid.click(position={"x": box["width"] * 0.6, "y": box["height"] * 0.9})  # third column, fourth row
    assert sampler.page.input_value("#ddpm-sampler .ddpm-sampler-chain input[name=digit]") == "15"
    assert sampler.text(".ddpm-sampler-chain-label").startswith("Digit 15,")


# --------------------------------------------------------------------------------------
# Draw a digit, noise it, denoise it
# --------------------------------------------------------------------------------------

# A zero drawn as an ellipse, as fractions of the pad
ZERO = [[(0.5 + 0.2 * math.cos(a * math.pi / 12), 0.5 + 0.3 * math.sin(a * math.pi / 12)) for a in range(25)]]
PICTURE = ("(selector) => Array.from(document.querySelector(selector).getContext('2d')"
           ".getImageData(0, 0, 32, 32).data).filter((_, i) => i % 4 === 0)")


@pytest.mark.parametrize("case_index", range(len(EDIT_CASES)), ids=[f"t{t}-steps{s}" for t, s in EDIT_CASES])
def test_noise_and_denoise_equal_ddpm_core(sampler, edit_fixture_file, case_index):
    """Given x_0 and the noise, the page's x_t is q_sample's and its denoised x_0 is ddpm_core's DDIM from t, to 1e-3."""
    case = json.loads(edit_fixture_file.read_text())["cases"][case_index]
    sampler.page.evaluate("([x0, noise]) => { ddpmSampler.useImage(x0); ddpmSampler.useNoise(noise); }",
                          [case["x0"], case["noise"]])
    sampler.set_edit_controls(t=case["t"], steps=case["steps"], seed=0)
    run = sampler.denoise()
    assert run is not None, f"nothing ran: {sampler.error('#ddpm-sdedit')}"
    assert (run["t"], run["steps"], run["count"]) == (case["t"], case["steps"], 2)
    assert run["timesteps"] == ddim_timesteps(case["t"], case["steps"]) + [0]
    for name, ours, theirs in (("x_t", run["xt"], case["x_t"]), ("x_0", run["samples"], case["expected"])):
        gap = float((torch.tensor(ours) - torch.tensor(theirs)).abs().max())
        assert gap < TOLERANCE, f"t = {case['t']}, {case['steps']} steps: the page's {name} and ddpm_core's differ by {gap:.2e}"


def test_draw_noise_and_denoise(sampler):
    """Strokes drawn with the mouse give a digit-like x_0; the button noises it and denoises it into a
    digit like it; the slider walks the chain; t and the seed change x_t; Clear empties the box."""
    sampler.page.click("#ddpm-sdedit button[name=clear]")
    sampler.draw(ZERO)
    drawing = torch.tensor(sampler.page.evaluate("() => ddpmSampler.drawing()")).reshape(32, 32)
    ink = drawing > 0
    rows, cols = ink.any(1).nonzero().flatten(), ink.any(0).nonzero().flatten()
    # As MNIST's digits: the ink's longer side about 20 pixels, centred in 32 x 32
    assert 18 <= int(rows[-1] - rows[0]) + 1 <= 21 and abs(float(rows[0] + rows[-1]) / 2 - 15.5) <= 1
    assert abs(float(cols[0] + cols[-1]) / 2 - 15.5) <= 1 and float(drawing.max()) > 0.9
    shown = torch.tensor(sampler.page.evaluate(PICTURE, "#ddpm-sdedit canvas.ddpm-sdedit-x0"), dtype=torch.float32)
    assert float((shown / 127.5 - 1 - drawing.flatten()).abs().max()) < 0.01, "x_0 on the page is not the drawing"

    sampler.set_edit_controls(t=400, steps=10, seed=0)
    run = sampler.denoise()
    assert run is not None, sampler.error("#ddpm-sdedit")
    assert sampler.error("#ddpm-sdedit") == ""
    x0, xt, result = (torch.tensor(run[k]) for k in ("x0", "xt", "samples"))
    assert torch.allclose(x0, drawing.flatten())
    # A digit, not noise: mostly background, and close to the drawing (correlation)
    assert float((result < -0.9).float().mean()) > 0.6, "the result is not a digit on a black background"
    assert float(torch.corrcoef(torch.stack([result, x0]))[0, 1]) > 0.6, "the result does not resemble the drawing"
    assert float(torch.corrcoef(torch.stack([xt, x0]))[0, 1]) < 0.6, "x_t at t = 400 is hardly noised"
    shown = torch.tensor(sampler.page.evaluate(PICTURE, "#ddpm-sdedit canvas.ddpm-sdedit-result"), dtype=torch.float32)
    assert float((shown / 127.5 - 1 - result.clamp(-1, 1)).abs().max()) < 0.01, "the page does not show the result"
    assert sampler.text(".ddpm-sdedit-xt-caption", "#ddpm-sdedit") == "xt, t = 400"

    slider = "#ddpm-sdedit .ddpm-sampler-chain input[type=range]"
    assert sampler.page.is_visible(slider) and sampler.page.get_attribute(slider, "max") == "10"
    sampler.page.eval_on_selector(slider, "(el) => { el.value = '0'; el.dispatchEvent(new Event('input')); }")
    label = sampler.text(".ddpm-sampler-chain-label", "#ddpm-sdedit")
    assert label.startswith("Before the first step: xt at t = 400, the noised drawing"), label
    chain_xt = sampler.page.evaluate(PICTURE, "#ddpm-sdedit canvas.ddpm-sampler-xt")
    assert chain_xt == sampler.page.evaluate(PICTURE, "#ddpm-sdedit canvas.ddpm-sdedit-xt"), "the chain does not start at x_t"

    # t and the seed change x_t (and the seed alone only eps)
    sampler.set_edit_controls(seed=1)
    other_seed = sampler.denoise()
    assert other_seed is not None and other_seed["xt"] != run["xt"] and other_seed["x0"] == run["x0"]
    sampler.set_edit_controls(t=200, seed=0)
    lower = sampler.denoise()
    assert lower is not None and lower["t"] == 200 and lower["timesteps"][0] == 200
    assert float(torch.corrcoef(torch.stack([torch.tensor(lower["xt"]), x0]))[0, 1]) > 0.6

    # Clear empties the box: pressing the button then says so, and runs nothing
    sampler.page.click("#ddpm-sdedit button[name=clear]")
    assert sampler.page.evaluate("() => ddpmSampler.drawing()") is None
    assert sampler.denoise() is None, "a run started from an empty drawing"
    assert sampler.error("#ddpm-sdedit") == "Draw a digit in the box first: it is empty, so there is nothing to noise."
    sampler.draw(ZERO)
    assert sampler.denoise() is not None and sampler.error("#ddpm-sdedit") == ""


@pytest.mark.parametrize("control, value, message", [
    ("t", "0", "t must be a whole number from 1 to 1000, got \"0\"."),
    ("t", "1001", "t must be a whole number from 1 to 1000, got \"1001\"."),
    ("t", "", "t must be a whole number from 1 to 1000, got nothing."),
    ("steps", "401", "DDIM steps must be a whole number from 1 to 400, got \"401\"."),
    ("seed", "1.5", "Seed must be a whole number from 0 to 4294967295, got \"1.5\"."),
])
def test_noise_and_denoise_bad_input(sampler, control, value, message):
    """t outside 1..T, steps outside 1..t, a bad seed: a message, and nothing runs."""
    sampler.page.click("#ddpm-sdedit button[name=clear]")
    sampler.draw(ZERO)
    sampler.set_edit_controls(t=400, steps=2, seed=0)
    sampler.set_edit_controls(**{control: value})
    assert sampler.denoise() is None, "a run started from bad input"
    assert sampler.error("#ddpm-sdedit") == message
    sampler.set_edit_controls(t=400, steps=1, seed=0)
    assert sampler.denoise() is not None
    assert sampler.error("#ddpm-sdedit") == "", "the message stayed after good input"


def test_drawing_with_a_finger_on_a_phone(browser, base_urls):
    """At a phone's width (390 px) the pad fits, and a finger's stroke draws on it instead of scrolling the page."""
    tab = SamplerPage(browser, base_urls["file"], viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    try:
        tab.ready()
        pad = tab.page.locator("#ddpm-sdedit canvas.ddpm-sdedit-pad")
        pad.scroll_into_view_if_needed()
        box = pad.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390, f"the pad does not fit a phone: {box}"
        form = tab.page.locator("#ddpm-sdedit form").bounding_box()
        assert form["x"] + form["width"] <= 390, "the controls do not fit a phone"
        scrolled = tab.page.evaluate("() => window.scrollY")
        touch = tab.context.new_cdp_session(tab.page)
        points = [(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * (0.2 + 0.06 * i)) for i in range(11)]
        touch.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": points[0][0], "y": points[0][1]}]})
        for x, y in points[1:]:
            touch.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
        touch.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        drawing = tab.page.evaluate("() => ddpmSampler.drawing()")
        assert drawing is not None and max(drawing) > 0.9, "the finger drew nothing"
        assert tab.page.evaluate("() => window.scrollY") == scrolled, "the finger scrolled the page instead of drawing"
        assert not tab.errors and not tab.outside()
    finally:
        tab.context.close()


# --------------------------------------------------------------------------------------
# Loaded on demand, and only by this page
# --------------------------------------------------------------------------------------


def test_runtime_loads_on_the_first_press_only(browser, base_urls):
    tab = SamplerPage(browser, base_urls["http"])
    try:
        tab.ready()
        loaded = lambda: {name for name in LOADED_ON_PRESS if any(u.endswith("/" + name) for u in tab.requests)}  # noqa: E731
        assert loaded() == set(), "the runtime loaded before any press"
        assert "The first press loads" in tab.text(".ddpm-sampler-loads")
        tab.set_controls(steps=1, weight=1)
        assert tab.generate() is not None
        assert loaded() == set(LOADED_ON_PRESS)
        assert not tab.errors and not tab.outside()
    finally:
        tab.context.close()


def test_no_other_page_loads_the_sampler():
    others = [p for p in HTML.rglob("*.html") if p != HTML / PAGE]
    assert others, "no other pages were built"
    names = [re.compile(rf"(?<![\w.-]){re.escape(name)}(?![\w.-])") for name in LOADED_ON_PRESS + ("sampler.js",)]
    naming = [str(p.relative_to(HTML)) for p in others
              if any(name.search(p.read_text(encoding="utf-8", errors="replace")) for name in names)]
    assert not naming, f"pages other than {PAGE} name the sampler's files: {naming}"
