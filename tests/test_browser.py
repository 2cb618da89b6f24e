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

Every page is also read at a phone's size (390 x 844) and a laptop's (1280 x 800), one reused
browser tab per size: nothing makes the page scroll sideways or sticks out of the article,
display equations, code blocks and tables that are wider than their box scroll inside it, no
equation number sits on its equation, there is at most one search field, the sidebar toggles
open and close the navigation (and the page contents), the scrubbers' buttons wear the theme,
and a solution's title opens the solution. The search page shows one search field and
snippets with typeset math, and the bibliography's labels read like the citations.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import threading
from dataclasses import dataclass, field
from html import unescape
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


def _open(browser, base_url: str, path: str, viewport: dict = VIEWPORT):
    """A fresh context and page that block (and record) every request leaving the server."""
    visit = Visit(url=base_url + path)
    context = browser.new_context(viewport=viewport)

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
    # A scrubber in a folded output (hide-output): open the fold as a reader does, by its summary.
    fold = root.locator("xpath=ancestor::details[1]")
    if fold.count() and fold.get_attribute("open") is None:
        fold.locator("xpath=./summary").click()
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


def test_bibliography_labels_read_like_the_citations(built_html):
    """The text cites "[Ho et al., 2020]"; the bibliography labels that entry the same way."""
    references = (built_html / "book" / "references.html").read_text(encoding="utf-8")
    labels = {
        anchor: unescape(label)
        for anchor, label in re.findall(
            r'<div class="citation" id="([^"]+)" role="doc-biblioentry">\s*<span class="label">'
            r'<span class="fn-bracket">\[</span>(.*?)<span class="fn-bracket">\]</span>',
            references,
        )
    }
    assert labels, "no labelled entries found in book/references.html"
    author_year = re.compile(r"^\S.*, (\d{4}[a-z]?|n\.d\.)$")
    assert all(author_year.match(label) for label in labels.values()), f"labels: {sorted(labels.values())}"
    mismatched, cited = [], 0
    for page in PAGES:
        text = (built_html / (page + ".html")).read_text(encoding="utf-8")
        for anchor, citation in re.findall(r'<a class="reference internal" href="[^"]*references\.html#([^"]+)"[^>]*>(.*?)</a>', text):
            if anchor in labels:
                cited += 1
                shown = " ".join(unescape(re.sub(r"<[^>]+>", "", citation)).split())
                if shown != labels[anchor]:
                    mismatched.append(f"{page}: cited as {shown!r}, listed as {labels[anchor]!r}")
    assert cited, "no citation links to book/references.html found"
    assert not mismatched, f"citations and bibliography labels differ:{_listing(mismatched)}"


# --------------------------------------------------------------------------------------
# The layout at a phone's size and a laptop's: one reused browser tab per size
# --------------------------------------------------------------------------------------

SCREENS = {"phone": {"width": 390, "height": 844}, "laptop": {"width": 1280, "height": 800}}

# What sticks out, what is wider than its box without scrolling, which equation numbers sit
# on their equations, how many search fields show, and whether the scrubbers' buttons wear
# the theme's colour. Hidden elements (collapsed solutions, closed dialogs) are skipped.
_LAYOUT_JS = """
() => {
  const article = document.querySelector('.bd-article');
  const width = document.documentElement.clientWidth;
  const shown = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
  const scrolls = (el) => ['auto', 'scroll'].includes(getComputedStyle(el).overflowX);
  const where = (el) => {
    const anchor = el.parentElement && el.parentElement.closest('[id]');
    const own = el.tagName.toLowerCase() + (el.classList.length ? '.' + el.classList[0] : '');
    return anchor ? `${own} in #${anchor.id}` : own;
  };
  const page = document.scrollingElement;
  const overflow = [];
  if (page.scrollWidth > page.clientWidth + 1) {
    overflow.push(`the page scrolls sideways: ${page.scrollWidth} px of content in ${page.clientWidth} px`);
  }
  // Anything that reaches past the article's right edge must sit in a box that scrolls;
  // a box that hides the overflow (overflow: hidden) cuts it off for good. (MathJax's copy
  // of each formula for screen readers is clipped to nothing on purpose: not looked at.)
  if (article) {
    const edge = article.getBoundingClientRect().right + 1;
    const past = [...article.querySelectorAll('*')].filter((el) => el.getBoundingClientRect().right > edge
      && !el.closest('mjx-assistive-mml'));
    // The first box that the element overruns decides: one that scrolls keeps it reachable.
    const reachable = (el) => {
      const right = el.getBoundingClientRect().right;
      for (let box = el.parentElement; box && box !== article; box = box.parentElement) {
        if (getComputedStyle(box).overflowX !== 'visible' && right > box.getBoundingClientRect().right + 1) {
          return scrolls(box) ? 'scrolls' : 'cut';
        }
      }
      return 'loose';
    };
    const bad = past.filter((el) => shown(el)).map((el) => [el, reachable(el)]).filter(([, how]) => how !== 'scrolls');
    const badElements = bad.map(([el]) => el);
    for (const [el, how] of bad.filter(([el]) => !badElements.includes(el.parentElement)).slice(0, 10)) {
      const problem = how === 'cut' ? 'and is cut off by a box that does not scroll' : 'and widens the page';
      overflow.push(`${where(el)} reaches ${Math.round(el.getBoundingClientRect().right)} px, past the article's edge at ${Math.round(edge)} px, ${problem}`);
    }
  }
  // Display equations, code blocks and tables: the box (for a table, the theme's scrolling
  // container around it, or the table itself) stays on the screen, and scrolls if its
  // content is wider than it is.
  const boxes = {
    'display equation': 'div.math mjx-container[display="true"]',
    'code block': '.bd-article pre',
    'table': '.bd-article table',
  };
  const counts = {};
  for (const [kind, selector] of Object.entries(boxes)) {
    counts[kind] = 0;
    for (const el of document.querySelectorAll(selector)) {
      if (!shown(el)) continue;
      const box = (kind === 'table' && el.closest('.pst-scrollable-table-container')) || el;
      if (box.scrollWidth > box.clientWidth + 1) {
        counts[kind] += 1;
        if (!scrolls(box)) overflow.push(`${kind} ${where(el)} is wider than its box (${box.scrollWidth} > ${box.clientWidth} px) and does not scroll`);
      }
      if (box.getBoundingClientRect().right > width + 1) {
        overflow.push(`${kind} ${where(el)} runs past the window's right edge`);
      }
    }
  }
  // An inline formula wider than its line scrolls in it; one that fits does not scroll.
  for (const math of document.querySelectorAll('.bd-article span.math')) {
    const formula = math.querySelector('mjx-container');
    if (!formula || !shown(math)) continue;
    const wide = formula.getBoundingClientRect().width > math.getBoundingClientRect().width + 1;
    if (wide && !scrolls(math)) {
      overflow.push(`inline math ${where(math)} is wider than its line and does not scroll`);
    } else if (!wide && scrolls(math) && math.scrollWidth > math.clientWidth) {
      overflow.push(`inline math ${where(math)} fits its line but scrolls (${math.scrollWidth} > ${math.clientWidth} px)`);
    }
  }
  const overlaps = (a, b) => a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1;
  const eqno = [...document.querySelectorAll('div.math')].filter(shown).filter((math) => {
    const number = math.querySelector('.eqno'), formula = math.querySelector('mjx-container');
    return number && formula && overlaps(number.getBoundingClientRect(), formula.getBoundingClientRect());
  }).map((math) => `${where(math)}: ${math.querySelector('.eqno').textContent.replace('#', '')}`);
  const fields = [...document.querySelectorAll('.search-button-field, form.bd-search')]
    .filter((el) => shown(el) && !el.closest('dialog'));
  const probe = document.createElement('span');
  probe.style.color = 'var(--pst-color-primary)';
  document.body.appendChild(probe);
  const primary = getComputedStyle(probe).color;
  probe.remove();
  const scrubberButtons = [...document.querySelectorAll('.ddpm-scrubber button')]
    .filter((b) => getComputedStyle(b).backgroundColor !== primary || getComputedStyle(b).cursor !== 'pointer')
    .map((b) => `${where(b)}: background ${getComputedStyle(b).backgroundColor}, theme's ${primary}`);
  // Figures keep their text legible: a picture with text (not pixel art shown zoomed) is shown
  // at least 0.8 times the width it was drawn for (book/_static/ddpm-book.js, 5), which needs
  // that width in its style.
  const smallFigures = [...document.querySelectorAll('.bd-article img')].filter(shown)
    .filter((img) => img.style.imageRendering !== 'pixelated' && !img.closest('.bd-header-article, .navbar-brand'))
    .map((img) => [img, parseFloat(img.style.width), img.getBoundingClientRect().width])
    .filter(([, drawn, width]) => !drawn || width < 0.8 * drawn - 1)
    .map(([img, drawn, width]) => drawn
      ? `${where(img)} is shown ${Math.round(width)} px wide, drawn for ${drawn} px`
      : `${where(img)} has no width in its style: the size it was drawn for is unknown`);
  // A figure box with more of its figure beyond a side fades out there (ddpm-book.js, 5), and
  // only there: at the start, a figure wider than its box fades on the right.
  const fading = [];
  for (const box of [...document.querySelectorAll('.ddpm-figure-box')].filter(shown)) {
    const hidden = box.scrollWidth - box.clientWidth;
    const masked = getComputedStyle(box).maskImage;
    const wrong = [];
    if (box.classList.contains('ddpm-more-right') !== (box.scrollLeft < hidden - 1)) wrong.push('the right side');
    if (box.classList.contains('ddpm-more-left') !== (box.scrollLeft > 1)) wrong.push('the left side');
    if ((hidden > 1) !== (masked !== 'none' && !!masked)) wrong.push(`its mask (${masked})`);
    if (wrong.length) fading.push(`${where(box.firstElementChild)}, ${hidden} px hidden: wrong fading of ${wrong.join(', ')}`);
  }
  return {overflow, counts, eqno, searchFields: fields.map(where), scrubberButtons, smallFigures, fading};
}
"""

# Scroll the first figure wider than its box to its end: the right side clears, the left fades.
_SCROLL_FIGURE_JS = """
async () => {
  const box = [...document.querySelectorAll('.ddpm-figure-box')].find((b) => b.scrollWidth > b.clientWidth + 1);
  if (!box) return null;
  box.scrollIntoView();
  box.scrollLeft = box.scrollWidth;
  for (let i = 0; i < 50 && !box.classList.contains('ddpm-more-left'); i++) {
    await new Promise((done) => setTimeout(done, 20));
  }
  const classes = [...box.classList].filter((c) => c.startsWith('ddpm-more-'));
  box.scrollLeft = 0;
  window.scrollTo(0, 0);
  return classes;
}
"""

# The primary sidebar's navigation, or the page's contents, shown on the screen.
_SHOWN_JS = """
(selector) => [...document.querySelectorAll(selector)].some((el) => {
  const r = el.getBoundingClientRect(), style = getComputedStyle(el);
  return r.width > 0 && r.height > 0 && r.right > 0 && r.left < innerWidth
    && style.visibility === 'visible' && +style.opacity > 0.5;
})
"""
NAVIGATION, PAGE_CONTENTS = ".bd-docs-nav", "#pst-page-toc-nav"


@dataclass
class Layout:
    """What one page looked like at one screen size."""

    overflow: list[str]
    counts: dict[str, int]  # boxes wider than they are, which scroll (for the record)
    eqno: list[str]
    search_fields: list[str]
    scrubber_buttons: list[str]
    small_figures: list[str]
    fading: list[str]
    toggles: list[str] = field(default_factory=list)
    solutions: list[str] = field(default_factory=list)


def _wait_shown(page, selector: str, shown: bool) -> bool:
    """Wait (up to 3 s, for the sidebar's transition) until selector is shown (or hidden)."""
    try:
        page.wait_for_function(f"(s) => ({_SHOWN_JS})(s) === {str(shown).lower()}", arg=selector, timeout=3_000)
        return True
    except PlaywrightTimeoutError:
        return False


def _check_toggles(page, wide: bool) -> list[str]:
    """Click the article header's sidebar toggles like a reader; return what went wrong."""
    problems = []
    primary = page.locator(".bd-header-article .primary-toggle")
    if primary.count() != 1 or not primary.is_visible():
        return [f"{primary.count()} primary sidebar toggles in the article header, expected one, visible"]
    if wide:
        # Beside the article: the toggle hides the navigation and shows it again.
        if not _wait_shown(page, NAVIGATION, True):
            problems.append("the navigation is not shown beside the article")
        primary.click()
        if not _wait_shown(page, NAVIGATION, False):
            problems.append("clicking the primary sidebar toggle did not hide the navigation")
        primary.click()
        if not _wait_shown(page, NAVIGATION, True):
            problems.append("clicking the primary sidebar toggle again did not show the navigation")
    else:
        # On a phone: the toggle opens the navigation over the page; Escape closes it.
        if not _wait_shown(page, NAVIGATION, False):
            problems.append("the navigation covers the page before the toggle is clicked")
        primary.click()
        if not _wait_shown(page, NAVIGATION, True):
            problems.append("clicking the primary sidebar toggle did not show the navigation")
        page.keyboard.press("Escape")
        if not _wait_shown(page, NAVIGATION, False):
            problems.append("Escape did not close the navigation")
    secondary = page.locator(".bd-header-article .secondary-toggle")
    if secondary.count() == 1 and secondary.is_visible():
        secondary.click()
        if not _wait_shown(page, PAGE_CONTENTS, True):
            problems.append("clicking the secondary sidebar toggle did not show the page's contents")
        page.keyboard.press("Escape")
        if not _wait_shown(page, PAGE_CONTENTS, False):
            problems.append("Escape did not close the page's contents")
    return problems


def _check_solutions(page) -> list[str]:
    """A solution's title opens the solution (its title holds no link that leaves the spot)."""
    problems = []
    titles = page.locator(".solution.dropdown > .admonition-title")
    linked = page.locator(".solution.dropdown > .admonition-title a[href]").count()
    if linked:
        problems.append(f"{linked} solution titles hold a link; clicking there leaves instead of opening")
    if titles.count():
        url, title = page.url, titles.first
        title.scroll_into_view_if_needed()
        title.click()
        try:
            page.wait_for_function(
                "(t) => { const body = t.nextElementSibling; return !!body && body.getBoundingClientRect().height > 0"
                " && getComputedStyle(body).visibility === 'visible'; }",
                arg=title.element_handle(),
                timeout=3_000,
            )
            opened = True
        except PlaywrightTimeoutError:
            opened = False
        if page.url != url:
            problems.append(f"clicking a solution's title went to {page.url}")
        elif not opened:
            problems.append("clicking a solution's title did not open the solution")
    return problems


def _check_layout(tab, base_url: str, page_path: str, screen: str) -> Layout:
    _, _, page = tab
    page.goto(base_url + page_path + ".html", wait_until="load")
    _wait_for_mathjax(page)
    found = page.evaluate(_LAYOUT_JS)
    layout = Layout(
        overflow=found["overflow"],
        counts=found["counts"],
        eqno=found["eqno"],
        search_fields=found["searchFields"],
        scrubber_buttons=found["scrubberButtons"],
        small_figures=found["smallFigures"],
        fading=found["fading"],
    )
    scrolled = page.evaluate(_SCROLL_FIGURE_JS)
    if scrolled is not None and scrolled != ["ddpm-more-left"]:
        layout.fading.append(f"a figure scrolled to its end fades on {scrolled}, expected ['ddpm-more-left'] only")
    if screen == "laptop":
        layout.solutions = _check_solutions(page)
    layout.toggles = _check_toggles(page, wide=SCREENS[screen]["width"] >= 992)
    return layout


@pytest.fixture(scope="module")
def layout(browser, base_url):
    """layout(screen, page) -> Layout, each page loaded once per screen size, in one tab per size."""
    tabs, cache = {}, {}

    def get(screen: str, page_path: str) -> Layout:
        if (screen, page_path) not in cache:
            if screen not in tabs:
                tabs[screen] = _open(browser, base_url, "", viewport=SCREENS[screen])
            cache[screen, page_path] = _check_layout(tabs[screen], base_url, page_path, screen)
        return cache[screen, page_path]

    yield get
    for _, context, _ in tabs.values():
        context.close()


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("screen", list(SCREENS))
def test_page_fits_the_screen(layout, screen, page):
    """Nothing widens the page; what is wider than its box scrolls in it; numbers beside equations;
    figures at least 0.8 times the width they were drawn for, fading where more of them is hidden."""
    found = layout(screen, page)
    assert not found.overflow, f"{page} at {screen} size:{_listing(found.overflow)}"
    assert not found.eqno, f"{page} at {screen} size: equation numbers drawn over their equations:{_listing(found.eqno)}"
    assert not found.small_figures, f"{page} at {screen} size: figures too small to read:{_listing(found.small_figures)}"
    assert not found.fading, f"{page} at {screen} size: figures that do not show there is more of them:{_listing(found.fading)}"


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("screen", list(SCREENS))
def test_page_controls_work(layout, screen, page):
    """The sidebar toggles, one search field, styled scrubber buttons, solutions that open."""
    found = layout(screen, page)
    problems = found.toggles + found.solutions + found.scrubber_buttons
    if len(found.search_fields) > 1:
        problems.append(f"{len(found.search_fields)} search fields: {found.search_fields}")
    assert not problems, f"{page} at {screen} size:{_listing(problems)}"


@pytest.mark.parametrize("screen", list(SCREENS))
def test_search_page_shows_typeset_snippets(browser, base_url, built_html, screen):
    """The search page has one search field, fits the screen, and its snippets show no raw TeX."""
    visit, context, page = _open(browser, base_url, "search.html?q=variance", viewport=SCREENS[screen])
    try:
        page.goto(visit.url, wait_until="load")
        page.wait_for_function(
            "() => /Search finished/.test((document.querySelector('#search-results') || {}).textContent || '')",
            timeout=15_000,
        )
        # Each snippet is fetched after the list is shown, then typeset.
        page.wait_for_function(
            "() => { const hits = document.querySelectorAll('#search-results li').length;"
            " return hits > 0 && document.querySelectorAll('#search-results li p.context').length === hits"
            " && [...document.querySelectorAll('.ddpm-search-math')].every((m) => m.querySelector('mjx-container')); }",
            timeout=20_000,
        )
        found = page.evaluate(_LAYOUT_JS)
        snippets = page.evaluate("() => [...document.querySelectorAll('#search-results p.context')].map((p) => p.textContent)")
        typeset = page.locator("#search-results p.context mjx-container").count()
    finally:
        context.close()
    raw = [s for s in snippets if re.search(r"\\[()\[\]]|[\ue000\ue001]", s)]
    assert not raw, f"search snippets with raw TeX:{_listing([s[:160] for s in raw])}"
    assert typeset, "no search snippet shows a typeset formula (searching 'variance' should find some)"
    assert len(found["searchFields"]) == 1, f"search fields on the search page: {found['searchFields']}"
    assert not found["overflow"], f"search page at {screen} size:{_listing(found['overflow'])}"
    errors = visit.page_errors + visit.console_errors + visit.http_errors + visit.blocked
    assert not errors, f"search page errors:{_listing(errors)}"
