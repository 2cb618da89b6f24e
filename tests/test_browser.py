"""The built HTML book works for a reader: every page, opened in a real (headless) browser.

`make test` builds the book first; to run this file alone, build it yourself:

    .venv/bin/jupyter-book build .
    .venv/bin/python -m pytest tests/test_browser.py

The pages are served from ``_build/html`` by a local HTTP server. Every request that leaves
that server is blocked and counted as a failure: the book must work without a network (math
comes from the MathJax copy inside the book, the scrubbers are inline JavaScript).

For every page of ``_toc.yml`` the tests check that the math is typeset (no raw TeX left in
the text), every image loads, the console stays free of errors, every scrubber follows its
slider, the keyboard and its play button, and the sidebar and prev/next links lead through
the book in the order of the table of contents. A full-page screenshot of each page is
saved in ``test-artifacts/screenshots/`` for a human to look at.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlsplit

import pytest
import yaml
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 900}
SOURCE_SUFFIXES = (".ipynb", ".md", ".rst")

# Text a reader must never see outside code: TeX that MathJax did not typeset.
RAW_TEX = re.compile(
    r"\$\$"  # display-math delimiters
    r"|\\[()\[\]]"  # \( \) \[ \] delimiters that Sphinx writes around math
    r"|\\[A-Za-z]+"  # any TeX command: \frac, \begin, \alpha, ...
    r"|\$[^\s$][^$\n]{0,200}?\$"  # an inline $...$ pair left unparsed
)


# --------------------------------------------------------------------------------------
# The pages of the book, in reading order, from _toc.yml
# --------------------------------------------------------------------------------------


def toc_pages() -> list[str]:
    """Every document of ``_toc.yml`` in reading order, as paths without suffix ("book/intro")."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    pages = [_strip_suffix(toc["root"])]

    def walk(entries: list[dict]) -> None:
        for entry in entries or []:
            if "file" in entry:
                pages.append(_strip_suffix(entry["file"]))
            elif "glob" in entry:
                matches = sorted(p for s in SOURCE_SUFFIXES for p in ROOT.glob(entry["glob"] + s))
                pages.extend(str(p.relative_to(ROOT).with_suffix("")) for p in matches)
            for key in ("sections", "chapters", "parts"):
                walk(entry.get(key, []))

    for key in ("parts", "chapters", "sections"):
        walk(toc.get(key, []))
    return pages


def _strip_suffix(path: str) -> str:
    for suffix in SOURCE_SUFFIXES:
        if path.endswith(suffix):
            return path[: -len(suffix)]
    return path


def source_of(page: str) -> Path | None:
    """The source file (notebook or Markdown) of a toc page, or None if there is none."""
    for suffix in SOURCE_SUFFIXES:
        if (ROOT / (page + suffix)).exists():
            return ROOT / (page + suffix)
    return None


def scrubbers_in_source(page: str) -> int:
    """How many scrubbers the stored outputs of a chapter notebook contain (0 for Markdown)."""
    source = source_of(page)
    if source is None or source.suffix != ".ipynb":
        return 0
    notebook = json.loads(source.read_text(encoding="utf-8"))
    count = 0
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            html = output.get("data", {}).get("text/html", "")
            html = "".join(html) if isinstance(html, list) else html
            count += html.count('class="ddpm-scrubber"')
    return count


PAGES = toc_pages()


# --------------------------------------------------------------------------------------
# Server, browser, and one visit per page (shared by the tests below)
# --------------------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


@pytest.fixture(scope="module")
def base_url(built_html: Path):
    handler = functools.partial(_QuietHandler, directory=str(built_html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} not found. The browser test uses Debian's chromium: `make test` installs "
            "it, or run `apt-get install chromium` (set CHROMIUM=/path/to/chromium to use another).",
            pytrace=False,
        )
    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()
    playwright.stop()


@dataclass
class Visit:
    """What one visit of a page saw."""

    url: str
    blocked: list[str] = field(default_factory=list)  # requests that tried to leave the server
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    http_errors: list[str] = field(default_factory=list)
    math_elements: int = 0
    typeset: int = 0  # mjx-container elements
    untypeset: list[str] = field(default_factory=list)  # math elements MathJax left alone
    tex_errors: list[str] = field(default_factory=list)  # mjx-merror: TeX MathJax could not parse
    raw_tex: list[str] = field(default_factory=list)
    broken_images: list[str] = field(default_factory=list)
    scrubbers: int = 0
    scrubber_problems: list[str] = field(default_factory=list)
    sidebar: list[str] = field(default_factory=list)  # absolute URLs, without fragment
    prev: str | None = None
    next: str | None = None
    links: list[str] = field(default_factory=list)  # absolute URLs of every <a href>
    screenshot: Path | None = None


def _open(browser, base_url: str, path: str):
    """A fresh context and page that block (and record) every request leaving the server."""
    visit = Visit(url=base_url + path)
    context = browser.new_context(viewport=VIEWPORT)

    def route(route):
        if route.request.url.startswith(base_url):
            route.continue_()
        else:
            visit.blocked.append(route.request.url)
            route.abort("blockedbyclient")

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda msg: msg.type == "error" and visit.console_errors.append(msg.text))
    page.on("pageerror", lambda error: visit.page_errors.append(str(error)))
    page.on("response", lambda r: r.status >= 400 and visit.http_errors.append(f"{r.status} {r.url}"))
    return visit, context, page


def _wait_for_mathjax(page) -> None:
    """Wait until MathJax (if the page loads it) has typeset the whole page."""
    if not page.evaluate("() => !!document.querySelector('script[src*=\"mathjax\"]')"):
        return
    page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=30_000)
    page.evaluate("() => MathJax.startup.promise.then(() => true)")


_LOAD_IMAGES_JS = """
async () => {
  const broken = [];
  await Promise.all([...document.images].map(async (img) => {
    img.loading = 'eager';
    try { await img.decode(); } catch (e) { }
    if (!img.complete || img.naturalWidth === 0) broken.push(img.currentSrc || img.src);
  }));
  return broken.map((src) => src.length > 120 ? src.slice(0, 120) + '...' : src);
}
"""

_MATH_JS = """
() => {
  const maths = [...document.querySelectorAll('.math')];
  const where = (el) => {
    const anchor = el.closest('[id]');
    return (anchor ? `${anchor.tagName.toLowerCase()}#${anchor.id}: ` : '') + el.textContent.slice(0, 80);
  };
  if (!window.MathJax || !MathJax.startup || !MathJax.startup.document) {
    return {math: maths.length, typeset: 0, untypeset: maths.map(where), errors: []};
  }
  return {
    math: maths.length,
    typeset: document.querySelectorAll('mjx-container').length,
    untypeset: maths.filter((m) => !m.querySelector('mjx-container')).map(where),
    // TeX MathJax could not parse: an <merror>, or an undefined macro, which MathJax shows
    // in red instead of failing (its 'noundefined' package).
    errors: [...MathJax.startup.document.math]
      .filter((item) => /<merror|mathcolor="red"/.test(MathJax.startup.toMML(item.root)))
      .map((item) => item.math.trim().replace(/\\s+/g, " ").slice(0, 100)),
  };
}
"""

# The text a reader sees, as (where, text) per text node; code and math elements are left
# out (math has its own check). Hidden text counts too, so that collapsed dropdowns (exercise
# solutions) and the print-only header are checked, and so does the title in the browser tab.
_PROSE_JS = """
() => {
  const skip = 'pre, code, kbd, samp, script, style, noscript, template, textarea, '
             + 'mjx-container, .math, .highlight, .ddpm-scrubber-data';
  const where = (el) => {
    const anchor = el.closest('[id]');
    const own = el.tagName.toLowerCase() + (el.classList.length ? '.' + el.classList[0] : '');
    return anchor && anchor !== el ? `${anchor.tagName.toLowerCase()}#${anchor.id} ${own}` : own;
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const found = [['title (browser tab)', document.title]];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!el || el.closest(skip) || !node.textContent.trim()) continue;
    found.push([where(el), node.textContent.replace(/\\s+/g, ' ')]);
  }
  return found;
}
"""

_NAV_JS = """
() => ({
  sidebar: [...document.querySelectorAll('.bd-docs-nav a[href]')].map((a) => a.href.split('#')[0]),
  prev: (document.querySelector('.prev-next-area a.left-prev') || {}).href || null,
  next: (document.querySelector('.prev-next-area a.right-next') || {}).href || null,
  links: [...document.querySelectorAll('a[href]')].map((a) => a.href),
})
"""

_SCRUBBER_STATE_JS = """
(root) => {
  const data = JSON.parse(root.querySelector('.ddpm-scrubber-data').textContent);
  const img = root.querySelector('img');
  return {
    frame: root.getAttribute('data-frame'),
    max: +root.querySelector('input[type=range]').max,
    src: img.getAttribute('src'),
    label: root.querySelector('.ddpm-scrubber-label').textContent,
    images: data.images,
    labels: data.labels,
  };
}
"""


def _check_scrubber(page, index: int) -> list[str]:
    """Drive one scrubber like a reader would; return what went wrong."""
    problems: list[str] = []
    name = f"scrubber {index + 1}"
    root = page.locator("div.ddpm-scrubber").nth(index)
    root.scroll_into_view_if_needed()
    start = root.evaluate(_SCRUBBER_STATE_JS)
    n = len(start["images"])
    if n != start["max"] + 1 or len(start["labels"]) != n:
        return [f"{name}: slider max {start['max']} does not fit {n} frames / {len(start['labels'])} labels"]
    if n < 2:
        return [f"{name}: only {n} frame, nothing to scrub"]
    first = int(start["frame"])
    if start["src"] != "data:image/png;base64," + start["images"][first] or start["label"] != start["labels"][first]:
        problems.append(f"{name}: the picture or label shown first is not frame {first}")

    # Moving the slider away from the first frame changes picture, label and data-frame.
    other = n - 1 if first != n - 1 else 0
    moved = _scrub(root, other)
    if moved["src"] == start["src"]:
        problems.append(f"{name}: picture did not change when the slider moved from {first} to {other}")
    if moved["label"] == start["label"]:
        problems.append(f"{name}: label stayed {start['label']!r} when the slider moved from {first} to {other}")

    # Every frame: the right picture (and it decodes), the right label, data-frame = value.
    for value in range(n):
        state = _scrub(root, value)
        expected_src = "data:image/png;base64," + start["images"][value]
        if state["frame"] != str(value):
            problems.append(f"{name}: data-frame is {state['frame']!r} after moving the slider to {value}")
        if state["src"] != expected_src or not state["decoded"]:
            problems.append(f"{name}: frame {value} is not shown or does not decode as an image")
        if state["label"] != start["labels"][value]:
            problems.append(f"{name}: label {state['label']!r} at frame {value}, expected {start['labels'][value]!r}")

    # The keyboard moves the slider too (the browser fires 'input' itself).
    _scrub(root, 0)
    slider = root.locator("input[type=range]")
    slider.focus()
    page.keyboard.press("ArrowRight")
    if root.get_attribute("data-frame") != "1":
        problems.append(f"{name}: ArrowRight on the slider did not move to frame 1")

    # Play advances the frames; pressing it again pauses.
    _scrub(root, 0)
    button = root.locator("button")
    button.click()
    try:
        page.wait_for_function(
            "(root) => root.getAttribute('data-frame') !== '0'", arg=root.element_handle(), timeout=3_000
        )
    except PlaywrightTimeoutError:
        problems.append(f"{name}: play did not advance from frame 0 within 3 s")
    if "pause" not in button.text_content():
        problems.append(f"{name}: while playing the button reads {button.text_content()!r}, not pause")
    button.click()
    if "play" not in button.text_content():
        problems.append(f"{name}: after pausing the button reads {button.text_content()!r}, not play")
    return problems


def _scrub(root, value: int) -> dict:
    return root.evaluate(
        """async (root, value) => {
          const slider = root.querySelector('input[type=range]');
          slider.value = value;
          slider.dispatchEvent(new Event('input', {bubbles: true}));
          const img = root.querySelector('img');
          let decoded = true;
          try { await img.decode(); } catch (e) { decoded = false; }
          return {frame: root.getAttribute('data-frame'), src: img.getAttribute('src'),
                  label: root.querySelector('.ddpm-scrubber-label').textContent,
                  decoded: decoded && img.naturalWidth > 0};
        }""",
        value,
    )


def _visit_page(browser, base_url: str, page_path: str) -> Visit:
    visit, context, page = _open(browser, base_url, page_path + ".html")
    try:
        page.goto(visit.url, wait_until="load")
        _wait_for_mathjax(page)
        visit.broken_images = page.evaluate(_LOAD_IMAGES_JS)

        math = page.evaluate(_MATH_JS)
        visit.math_elements, visit.typeset = math["math"], math["typeset"]
        visit.untypeset, visit.tex_errors = math["untypeset"], math["errors"]

        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        visit.screenshot = SCREENSHOTS / (page_path.replace("/", "__") + ".png")
        page.screenshot(path=str(visit.screenshot), full_page=True, animations="disabled")

        for where, text in page.evaluate(_PROSE_JS):
            matches = list(RAW_TEX.finditer(text))
            if matches:
                context_text = text[max(0, matches[0].start() - 40) : matches[-1].end() + 40].strip()
                tokens = ", ".join(dict.fromkeys(m.group() for m in matches))
                visit.raw_tex.append(f"{tokens} in <{where}>: ...{context_text[:200]}...")

        nav = page.evaluate(_NAV_JS)
        visit.sidebar, visit.prev, visit.next, visit.links = nav["sidebar"], nav["prev"], nav["next"], nav["links"]

        visit.scrubbers = page.locator("div.ddpm-scrubber").count()
        for index in range(visit.scrubbers):
            visit.scrubber_problems += _check_scrubber(page, index)
    finally:
        context.close()
    return visit


@pytest.fixture(scope="module")
def visit(browser, base_url):
    """visit(page) -> Visit, each page loaded once and shared by all the tests below."""
    cache: dict[str, Visit] = {}

    def get(page_path: str) -> Visit:
        if not (HTML / (page_path + ".html")).is_file():
            pytest.fail(f"{page_path} is in _toc.yml but {page_path}.html was not built", pytrace=False)
        if page_path not in cache:
            cache[page_path] = _visit_page(browser, base_url, page_path)
        return cache[page_path]

    return get


def _listing(items: list[str], limit: int = 10) -> str:
    shown = "\n  ".join(items[:limit])
    more = f"\n  ... and {len(items) - limit} more" if len(items) > limit else ""
    return "\n  " + shown + more


# --------------------------------------------------------------------------------------
# The tests
# --------------------------------------------------------------------------------------


def test_toc_lists_the_book():
    """The table of contents holds the intro, at least one chapter, notation, errata, references."""
    for required in ("book/notation", "book/errata", "book/references"):
        assert required in PAGES, f"{required} is missing from _toc.yml"
    assert any(p.startswith("notebooks/") for p in PAGES), "no chapter notebook in _toc.yml"
    assert len(PAGES) == len(set(PAGES)), "a page is listed twice in _toc.yml"


def test_build_is_current(built_html):
    """Every toc page was built, and after its source last changed (otherwise: rebuild)."""
    missing = [p for p in PAGES if not (built_html / (p + ".html")).is_file()]
    assert not missing, f"pages of _toc.yml with no HTML, rebuild the book:{_listing(missing)}"
    stale = [
        p for p in PAGES
        if source_of(p) is not None and source_of(p).stat().st_mtime > (built_html / (p + ".html")).stat().st_mtime
    ]
    assert not stale, f"sources changed after the last build, rebuild the book:{_listing(stale)}"


def test_source_listings_cite_equations_by_number(built_html):
    """The docstrings that the chapters show cite equations as {eq}`label` and code as
    :func:`name`; the book's listings (ddpm_core.listing) show markers [1], [2], ... and plain
    names instead, and under the code the equation each marker stands for: its number, linked."""
    chapters = [p for p in PAGES if p.startswith("notebooks/")]
    raw_roles, linked = [], 0
    for page in chapters:
        html = (built_html / (page + ".html")).read_text(encoding="utf-8")
        raw_roles += [f"{page}: {m.group(0)}" for m in re.finditer(r"\{eq\}`[^`]*`|:(?:func|class|meth|attr|data|mod):`[^`]*`", html)]
        for cited in re.findall(r"<p>Equations cited: (.*?)</p>", html, re.S):
            linked += len(re.findall(r'\[\d+\] <a class="reference internal" href="[^"]*#equation-[^"]+">\(\d+\.\d+\)</a>', cited))
    assert not raw_roles, f"roles left unrendered in the HTML:{_listing(raw_roles)}"
    assert linked >= 10, f"only {linked} linked equation numbers under the source listings"


@pytest.mark.parametrize("page", PAGES)
def test_page_needs_no_network(visit, page):
    blocked = visit(page).blocked
    assert not blocked, f"{page} tried to load from outside the book (blocked):{_listing(blocked)}"


@pytest.mark.parametrize("page", PAGES)
def test_page_has_no_console_errors(visit, page):
    v = visit(page)
    errors = [f"page error: {e}" for e in v.page_errors]
    errors += [f"console error: {e}" for e in v.console_errors]
    errors += [f"HTTP {e}" for e in v.http_errors]
    assert not errors, f"{page}:{_listing(errors)}"


@pytest.mark.parametrize("page", PAGES)
def test_page_math_is_typeset(visit, page):
    v = visit(page)
    assert not v.untypeset, f"{page}: math MathJax did not typeset:{_listing(v.untypeset)}"
    assert not v.tex_errors, f"{page}: TeX errors in typeset math:{_listing(v.tex_errors)}"
    assert not v.raw_tex, f"{page}: raw TeX in the text a reader sees:{_listing(v.raw_tex)}"
    if v.math_elements:
        assert v.typeset >= v.math_elements, f"{page}: {v.math_elements} math elements, {v.typeset} typeset"


def test_chapters_have_math(visit):
    """The chapters are about equations: every chapter page shows typeset math."""
    chapters = [p for p in PAGES if p.startswith("notebooks/")]
    without = [p for p in chapters if visit(p).typeset == 0]
    assert not without, f"chapters without any typeset math:{_listing(without)}"


@pytest.mark.parametrize("page", PAGES)
def test_page_images_load(visit, page):
    broken = visit(page).broken_images
    assert not broken, f"{page}: images that did not load:{_listing(broken)}"


@pytest.mark.parametrize("page", PAGES)
def test_page_scrubbers_respond(visit, page):
    """Each scrubber follows its slider, the keyboard and its play button."""
    expected = scrubbers_in_source(page)
    v = visit(page)
    assert v.scrubbers == expected, f"{page}: the notebook stores {expected} scrubbers, the page shows {v.scrubbers}"
    if expected == 0:
        pytest.skip("no scrubber on this page")
    assert not v.scrubber_problems, f"{page}:{_listing(v.scrubber_problems, 20)}"


@pytest.mark.parametrize("page", PAGES)
def test_page_navigation(visit, base_url, page):
    """The sidebar lists every page (notation and errata among them); prev/next follow the toc."""
    v = visit(page)
    in_sidebar = set(v.sidebar)
    missing = [p for p in PAGES if base_url + p + ".html" not in in_sidebar]
    assert not missing, f"{page}: the sidebar does not link to:{_listing(missing)}"
    index = PAGES.index(page)
    expected_prev = base_url + PAGES[index - 1] + ".html" if index > 0 else None
    expected_next = base_url + PAGES[index + 1] + ".html" if index + 1 < len(PAGES) else None
    assert v.prev == expected_prev, f"{page}: 'previous' link is {v.prev}, expected {expected_prev}"
    assert v.next == expected_next, f"{page}: 'next' link is {v.next}, expected {expected_next}"


@pytest.mark.parametrize("page", PAGES)
def test_page_internal_links_resolve(visit, base_url, page):
    """Every link inside the book points to a built file, and to an anchor that exists there."""
    broken = []
    for link in sorted(set(visit(page).links)):
        if not link.startswith(base_url):
            continue
        url, fragment = urldefrag(link)
        path = unquote(urlsplit(url).path).lstrip("/")
        target = HTML / path
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            broken.append(f"{link} (no such file)")
        elif fragment and target.suffix == ".html":
            ids = _ids_of(target)
            if unquote(fragment) not in ids:
                broken.append(f"{link} (no id {fragment!r} on that page)")
    assert not broken, f"{page}: broken links:{_listing(broken)}"


@functools.lru_cache(maxsize=None)
def _ids_of(html_file: Path) -> frozenset[str]:
    text = html_file.read_text(encoding="utf-8", errors="replace")
    return frozenset(re.findall(r'\bid="([^"]+)"', text))


def test_search_finds_the_chapters(browser, base_url, built_html):
    """The search page exists and, without a network, finds the forward-process chapter."""
    assert (built_html / "search.html").is_file(), "search.html was not built"
    visit, context, page = _open(browser, base_url, "search.html?q=diffusion")
    try:
        page.goto(visit.url, wait_until="load")
        page.wait_for_function(
            "() => /Search finished/.test((document.querySelector('#search-results') || {}).textContent || '')",
            timeout=15_000,
        )
        hits = page.evaluate(
            "() => [...document.querySelectorAll('#search-results li a')].map((a) => a.href.split('#')[0])"
        )
    finally:
        context.close()
    assert not visit.blocked, f"search tried to use the network:{_listing(visit.blocked)}"
    errors = visit.page_errors + visit.console_errors + visit.http_errors
    assert not errors, f"search page errors:{_listing(errors)}"
    chapters = [base_url + p + ".html" for p in PAGES if p.startswith("notebooks/")]
    assert any(hit in chapters for hit in hits), f"searching 'diffusion' found no chapter; hits: {hits}"
