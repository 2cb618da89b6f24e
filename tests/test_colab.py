"""The Colab editions of the chapters (``colab/*.ipynb``) read as cleanly as the HTML book.

``book/colab_edition.py`` writes them from the chapters. The tests check that the committed
editions are what it writes now, with the chapters' code cells and outputs; that their
Markdown, rendered by a plain CommonMark renderer (as Colab's is), shows no MyST markup; that
every link leads somewhere (a page and anchor of the built book, a file of this repository,
an anchor of the same notebook); that equation and exercise numbers are the built book's;
that solutions are folded away; that the exercises in code are left to write, with their
solutions folded after the check; and that the launch buttons and README's badges open the
editions.

`make test` builds the book first; to run this file alone, build it yourself:

    .venv/bin/jupyter-book build . --path-output .
    .venv/bin/python -m pytest tests/test_colab.py
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SCRIPT = ROOT / "book" / "colab_edition.py"


def load_script():
    spec = importlib.util.spec_from_file_location("colab_edition", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


colab_edition = load_script()
BOOK = colab_edition.load_book()  # configuration and _toc.yml only; no page is read yet
CHAPTERS = colab_edition.notebook_chapters(BOOK)
COMMONMARK = MarkdownIt("commonmark")

# MyST markup that must not survive, looked for in the rendered HTML with code emptied.
LEFTOVERS = {
    "role": re.compile(r"\{[\w:.+-]+\}(?:<code>|`)"),
    "directive fence": re.compile(r'class="language-\{|`{3,}\{|:{3,}\{'),
    "(label)= target": re.compile(r"^(?:<p>)?\([^()\s]+\)=\s*(?:</p>)?$", re.M),
    "equation label": re.compile(r"\$\$[ \t]*\([^()\s]+\)"),
    "directive option": re.compile(r"^(?:<p>)?:[\w-]+:[ \t]", re.M),
}


def edition(doc: str) -> dict:
    return json.loads((colab_edition.OUT / f"{Path(doc).name}.ipynb").read_text(encoding="utf-8"))


def markdown_cells(notebook: dict) -> list[str]:
    return ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown"]


def rendered(doc: str) -> list[str]:
    return [COMMONMARK.render(text) for text in markdown_cells(edition(doc))]


def without_code(html: str) -> str:
    return re.sub(r"(<code[^>]*>).*?(</code>)", r"\1\2", html, flags=re.S)


class _Links(HTMLParser):
    """The href and src of every element, and every id and name (link targets)."""

    def __init__(self):
        super().__init__()
        self.links, self.anchors = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.links += [attrs[k] for k in ("href", "src") if attrs.get(k)]
        self.anchors |= {attrs[k] for k in ("id", "name") if attrs.get(k)}


def links_and_anchors(html: str) -> tuple[list[str], set[str]]:
    parser = _Links()
    parser.feed(html)
    return parser.links, parser.anchors


def book_page(url: str) -> Path:
    """The file of the built book that a link to the published book names."""
    path = url.removeprefix(BOOK.url).split("#")[0]
    return HTML / (path or "index.html")


def html_ids(path: Path) -> set[str]:
    return set(re.findall(r'\bid="([^"]+)"', path.read_text(encoding="utf-8")))


# --------------------------------------------------------------------------------------
# The committed editions are what the chapters give now
# --------------------------------------------------------------------------------------


def test_editions_are_up_to_date():
    stale = colab_edition.stale(colab_edition.editions())
    assert not stale, f"stale Colab editions {stale}: run `.venv/bin/python book/colab_edition.py` and commit colab/"


def test_check_option_agrees():
    result = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_check_names_a_stale_edition(tmp_path, monkeypatch):
    expected = {tmp_path / path.name: text for path, text in colab_edition.editions().items()}
    for path, text in expected.items():
        path.write_text(text, encoding="utf-8")
    monkeypatch.setattr(colab_edition, "OUT", tmp_path)
    assert colab_edition.stale(expected) == []
    changed = next(iter(expected))
    changed.write_text(expected[changed].replace("\\tag{", "\\tag{9"), encoding="utf-8")
    (tmp_path / "99_removed.ipynb").write_text("{}\n", encoding="utf-8")
    assert colab_edition.stale(expected) == [changed.name, "99_removed.ipynb"]


def chapter_with_exercises_open(doc: str) -> dict:
    """The chapter as its edition should have it: each exercise's solution cell and check cell
    as the edition writes them (tested below), and the solution's Markdown cell after the check."""
    chapter = json.loads(colab_edition.source(doc).read_text(encoding="utf-8"))
    copy = {c["id"]: c for c in edition(doc)["cells"]}
    cells = []
    for index, cell in enumerate(chapter["cells"]):
        after_exercise = index > 0 and colab_edition.is_exercise(chapter["cells"][index - 1])
        cells.append(copy[cell["id"]] if colab_edition.is_exercise(cell) or after_exercise else cell)
        if after_exercise:
            cells.append(copy[chapter["cells"][index - 1]["id"] + "-solution"])
    return {**chapter, "cells": cells}


@pytest.mark.parametrize("doc", CHAPTERS)
def test_code_cells_are_the_chapters(doc):
    """Code cells and outputs are copied, less the MyST that a source listing carries beside its HTML
    (and less the exercises' solutions, see test_exercises_are_left_to_write)."""
    chapter = chapter_with_exercises_open(doc)
    copy = edition(doc)
    assert copy["metadata"] == chapter["metadata"]
    assert [c["cell_type"] for c in copy["cells"]] == [c["cell_type"] for c in chapter["cells"]]
    code_cells = [c for c in chapter["cells"] if c["cell_type"] != "markdown"]
    for data in (o.get("data", {}) for c in code_cells for o in c.get("outputs", [])):
        if "text/html" in data:
            data.pop("text/markdown", None)
    assert [c for c in copy["cells"] if c["cell_type"] != "markdown"] == code_cells, (
        f"colab/{Path(doc).name}.ipynb: code cells or outputs differ from the chapter's"
    )


@pytest.mark.parametrize("doc", CHAPTERS)
def test_outputs_show_no_myst(doc):
    """Colab shows an output's HTML, or renders its Markdown itself: no role may be left in either."""
    role = re.compile(r"\{[\w:.+-]+\}`|:(?:func|class|meth|attr|data|mod):`")
    found = [
        f"cell {index}, {mime}: {m.group(0)}"
        for index, cell in enumerate(edition(doc)["cells"])
        for output in cell.get("outputs", [])
        for mime, text in output.get("data", {}).items()
        if mime in ("text/html", "text/markdown", "text/plain")
        for m in role.finditer("".join(text))
    ]
    assert not found, f"colab/{Path(doc).name}.ipynb: outputs show roles raw:\n  " + "\n  ".join(found)


# --------------------------------------------------------------------------------------
# No MyST markup is left
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("doc", CHAPTERS)
def test_no_myst_markup_left(doc):
    found = []
    for index, html in enumerate(rendered(doc)):
        html = without_code(html)
        for name, pattern in LEFTOVERS.items():
            found += [f"cell {index}: {name}: {m.group(0)!r}" for m in pattern.finditer(html)]
    assert not found, f"colab/{Path(doc).name}.ipynb shows MyST markup raw:\n  " + "\n  ".join(found)


def test_leftover_patterns_find_myst_markup():
    """The patterns above catch each kind of markup (so an empty result is meaningful)."""
    myst = "See {eq}`eq-a`.\n\n(sec-a)=\n## A\n\n$$\nx\n$$ (eq-a)\n\n```{note}\nHi\n```\n\n:::{tip}\n:class: x\n:::\n"
    html = without_code(COMMONMARK.render(myst))
    assert all(pattern.search(html) for pattern in LEFTOVERS.values())


# --------------------------------------------------------------------------------------
# Every link leads somewhere
# --------------------------------------------------------------------------------------


def link_problem(url: str, anchors: set[str], chapter_source: str) -> str | None:
    """Why a link of an edition leads nowhere, or None if it is fine."""
    fragment = url.partition("#")[2]
    if url.startswith("#"):
        return None if fragment in anchors else "no such anchor in this notebook"
    if url.startswith(BOOK.url):
        page = book_page(url)
        if not page.is_file():
            return f"{page.relative_to(ROOT)} was not built"
        return None if not fragment or fragment in html_ids(page) else f"no id {fragment!r} in {page.name}"
    if url.startswith(BOOK.raw):
        return None if (ROOT / url.removeprefix(BOOK.raw)).is_file() else "no such file in the repository"
    if re.match(r"https?://", url):  # external: the chapter itself must name it
        return None if url in chapter_source else "an external link the chapter does not have"
    return "a relative link, which leads nowhere on Colab"


@pytest.mark.parametrize("doc", CHAPTERS)
def test_every_link_resolves(doc, built_html):
    chapter_source = colab_edition.source(doc).read_text(encoding="utf-8")
    html = "\n".join(rendered(doc))
    links, anchors = links_and_anchors(html)
    problems = [f"{url}: {why}" for url in links if (why := link_problem(url, anchors, chapter_source))]
    assert links, f"colab/{Path(doc).name}.ipynb has no link at all"
    assert not problems, f"colab/{Path(doc).name}.ipynb links that lead nowhere:\n  " + "\n  ".join(problems)


# --------------------------------------------------------------------------------------
# Numbers are the book's
# --------------------------------------------------------------------------------------

EQNO = re.compile(r'<span class="eqno">\(([^)]*)\)<a class="headerlink" href="#([^"]+)"')
EXERCISE_NO = re.compile(
    r'id="([^"]+)"[^>]*>\s*<p class="admonition-title">\s*<span class="caption-number">Exercise ([\d.]+)'
)
EQ_LINK = re.compile(r"\[\(([^)\]]*)\)\]\(([^)\s]+)\)")
EXERCISE_LINK = re.compile(r"\[Exercise ([\d.]+)\]\(([^)\s]+)\)")


def numbers_in_html(page: Path, pattern: re.Pattern) -> dict[str, str]:
    """anchor -> number, in the order of the page."""
    found = pattern.findall(page.read_text(encoding="utf-8"))
    return {anchor: number for number, anchor in found} if pattern is EQNO else dict(found)


def target_page(url: str, doc: str) -> Path:
    return HTML / f"{doc}.html" if url.startswith("#") else book_page(url)


@pytest.mark.parametrize("doc", CHAPTERS)
def test_equation_numbers_are_the_books(doc, built_html):
    markdown = "\n".join(markdown_cells(edition(doc)))
    in_book = list(numbers_in_html(HTML / f"{doc}.html", EQNO).values())
    tags = re.findall(r"\\tag\{([^}]*)\}", markdown)
    assert tags == in_book, f"{doc}: the edition's equation tags {tags} are not the book's {in_book}"
    wrong = []
    for number, url in EQ_LINK.findall(markdown):
        anchor = url.partition("#")[2]
        expected = numbers_in_html(target_page(url, doc), EQNO).get(anchor)
        if number != expected:
            wrong.append(f"({number}) links {url}, which the book numbers {expected}")
    assert not wrong, f"{doc}:\n  " + "\n  ".join(wrong)


@pytest.mark.parametrize("doc", CHAPTERS)
def test_exercise_numbers_are_the_books(doc, built_html):
    markdown = "\n".join(markdown_cells(edition(doc)))
    in_book = list(numbers_in_html(HTML / f"{doc}.html", EXERCISE_NO).values())
    headings = re.findall(r"^\*\*Exercise ([\d.]+)", markdown, re.M)
    assert headings == in_book, f"{doc}: the edition's exercises {headings} are not the book's {in_book}"
    wrong = []
    for number, url in EXERCISE_LINK.findall(markdown):
        expected = numbers_in_html(target_page(url, doc), EXERCISE_NO).get(url.partition("#")[2])
        if number != expected:
            wrong.append(f"Exercise {number} links {url}, which the book numbers {expected}")
    assert not wrong, f"{doc}:\n  " + "\n  ".join(wrong)


# --------------------------------------------------------------------------------------
# Solutions are folded away
# --------------------------------------------------------------------------------------

SOLUTION_DIRECTIVE = re.compile(r"^[ \t]*(?:`{3,}|:{3,})\{solution\}", re.M)
DETAILS = re.compile(r"<details>\s*<summary>Solution[^<]*</summary>(.*?)</details>", re.S)


def exercise_cells(doc: str) -> list[dict]:
    cells = json.loads(colab_edition.source(doc).read_text(encoding="utf-8"))["cells"]
    return [c for c in cells if colab_edition.is_exercise(c)]


@pytest.mark.parametrize("doc", CHAPTERS)
def test_solutions_are_inside_details(doc):
    solutions = sum(len(SOLUTION_DIRECTIVE.findall(t)) for t in colab_edition.markdown_texts(doc))
    solutions += len(exercise_cells(doc))  # the implementation exercises' code
    html = "\n".join(rendered(doc))
    folded = DETAILS.findall(html)
    assert len(folded) == solutions == html.count("<summary>Solution"), (
        f"{doc}: {solutions} solutions, {len(folded)} of them in <details>, "
        f"{html.count('<summary>Solution')} summaries"
    )
    rendered_inside = all("<p>" in body or '<pre><code class="language-python">' in body for body in folded)
    assert rendered_inside, f"{doc}: a solution's Markdown is not rendered inside <details>"


# --------------------------------------------------------------------------------------
# Implementation exercises are left to write, their solutions folded after the check
# --------------------------------------------------------------------------------------


def test_the_implementation_exercises_are_there():
    """Every chapter from 2 on has at least one (they are numbered 01_, 02_, ...)."""
    missing = [doc for doc in CHAPTERS if Path(doc).name[:2] >= "02" and not exercise_cells(doc)]
    assert not missing, f"chapters without an implementation exercise: {missing}"


@pytest.mark.parametrize("doc", [d for d in CHAPTERS if exercise_cells(d)])
def test_exercises_are_left_to_write(doc):
    chapter = json.loads(colab_edition.source(doc).read_text(encoding="utf-8"))["cells"]
    copy = edition(doc)["cells"]
    for solution in exercise_cells(doc):
        index = next(k for k, c in enumerate(copy) if c["id"] == solution["id"])
        stub, check, folded = copy[index : index + 3]
        assert "hide-input" in solution["metadata"]["tags"], f"{doc}: the book must fold the solution"
        assert stub["source"] and "".join(stub["source"]) == colab_edition.exercise_stub("".join(solution["source"]))
        assert stub["metadata"]["tags"] == ["exercise"] and stub["outputs"] == [] and stub["execution_count"] is None
        in_chapter = next(k for k, c in enumerate(chapter) if c["id"] == solution["id"])
        assert check["id"] == chapter[in_chapter + 1]["id"] and check["outputs"] == [], (
            f"{doc}: the check after {solution['id']} must keep no verdict on the solution"
        )
        assert "check_" in "".join(check["source"]), f"{doc}: the cell after {solution['id']} must call a check"
        text = "".join(folded["source"])
        assert folded["cell_type"] == "markdown" and text.startswith("<details>\n<summary>Solution</summary>")
        assert "```python\n" + "".join(solution["source"]).strip("\n") + "\n```" in text


def test_exercise_stub_keeps_the_signature_and_docstring():
    solution = (
        "def my_step(\n    x: float,\n    y: float = 1.0,\n) -> float:\n"
        '    """Add.\n\n    Args:\n        x: one.\n    """\n    z = x + y\n    return z\n'
    )
    stub = colab_edition.exercise_stub(solution)
    assert stub == (
        "def my_step(\n    x: float,\n    y: float = 1.0,\n) -> float:\n"
        '    """Add.\n\n    Args:\n        x: one.\n    """\n'
        "    # Your code here\n"
        '    raise NotImplementedError("write the body of my_step")'
    )
    namespace = {}
    exec(stub, namespace)
    with pytest.raises(NotImplementedError):
        namespace["my_step"](1.0)
    no_docstring = colab_edition.exercise_stub("import math\n\ndef f(x):\n    return math.sqrt(x)\n")
    assert no_docstring == 'import math\n\ndef f(x):\n    # Your code here\n    raise NotImplementedError("write the body of f")'


def test_an_exercise_cell_without_a_function_is_refused():
    with pytest.raises(SystemExit, match="must define a function"):
        colab_edition.exercise_stub("x = 1\n", "notebooks/xx")


def test_an_exercise_without_its_check_is_refused():
    cells = [{"cell_type": "code", "id": "a", "metadata": {"tags": ["exercise-solution"]}, "source": ["def f():\n", "    pass\n"],
              "outputs": [], "execution_count": 1},
             {"cell_type": "markdown", "id": "b", "metadata": {}, "source": ["text"]}]
    with pytest.raises(SystemExit, match="must be followed by the code cell that checks it"):
        colab_edition.with_exercises_open("notebooks/xx", cells)


# --------------------------------------------------------------------------------------
# Forms the chapters do not use today are rewritten too
# --------------------------------------------------------------------------------------


def test_other_myst_forms():
    book = colab_edition.Book(
        title="T", url="https://example.org/b/", raw="https://raw.example.org/r/main/",
        pages={"notebooks/ch": 2, "book/refs": None},
        citations={"a": (["Ho", "Jain", "Abbeel"], "2020"), "b": (["Song"], "2021")},
        bibliography="book/refs", final=True,
    )
    page = colab_edition.Page(book, "notebooks/ch")
    text = (
        "```{math}\n:label: eq-m\nx = 1\n```\n\n:::{note}\nSee {eq}`eq-m` and {cite:t}`a,b`.\n\n$$\ny\n$$\n:::\n\n"
        "```{tip} Quick\nbody\n```\n\n```{admonition} Why?\n:class: dropdown\nBecause.\n```\n\n"
        "$$\n\\begin{alignat*}{2}\nc &= d\n\\end{alignat*}\n$$ (eq-n)\n\n"
        "\\begin{align}\na &= b\n\\end{align}\n\n![digits](../book/images/chain.png) {math}`z` {cite:p}`b`"
    )
    out = page.markdown(text)
    html = without_code(COMMONMARK.render(out))
    assert not [name for name, pattern in LEFTOVERS.items() if pattern.search(html)], out
    assert "x = 1 \\tag{2.1}" in out and "[(2.1)](https://example.org/b/notebooks/ch.html#equation-eq-m)" in out
    assert "Ho *et al.* [[2020](https://example.org/b/book/refs.html)], Song [[2021]" in out
    assert "[[Song, 2021](https://example.org/b/book/refs.html)]" in out
    assert "<blockquote>\n\n**Note**" in out and "**Tip**\n\nQuick\nbody" in out
    assert "<details>\n<summary>Why?</summary>" in out
    assert "$$\n\\begin{aligned}\na &= b\n\\end{aligned}\n$$" in out
    assert "\\begin{alignedat}{2}\nc &= d\n\\end{alignedat} \\tag{2.2}\n$$" in out
    assert "![digits](https://raw.example.org/r/main/book/images/chain.png) $z$" in out


# --------------------------------------------------------------------------------------
# The launch buttons and README's badges open the editions
# --------------------------------------------------------------------------------------


def colab_links() -> dict[str, str]:
    """chapter name -> the Colab URL of its edition, from _config.yml."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    github = config["repository"]["url"].removeprefix("https://github.com/").strip("/")
    start = f"{config['launch_buttons']['colab_url'].rstrip('/')}/github/{github}/blob/{config['repository']['branch']}"
    return {Path(doc).name: f"{start}/colab/{Path(doc).name}.ipynb" for doc in CHAPTERS}


@pytest.mark.parametrize("doc", CHAPTERS)
def test_launch_button_opens_the_edition(doc, built_html):
    page = (HTML / f"{doc}.html").read_text(encoding="utf-8")
    buttons = re.findall(r'href="(https://colab\.research\.google\.com/[^"]+)"', page)
    assert buttons == [colab_links()[Path(doc).name]], f"{doc}: the Colab button links {buttons}"


def test_readme_badges_open_the_editions():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [url for url in colab_links().values() if url not in readme]
    assert not missing, f"README.md has no Colab badge for: {missing}"
    for url in colab_links().values():
        assert (colab_edition.OUT / url.rsplit("/", 1)[1]).is_file()
