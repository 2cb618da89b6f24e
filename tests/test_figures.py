"""Every figure of the chapters is numbered and captioned, in the book and in the Colab editions.

A figure is a code cell's image or scrubber output. Its caption and name are cell metadata
(``mystnb: figure: {caption, name}``), which myst-nb renders as a numbered figure ("Fig. 2.3");
``book/colab_edition.py`` writes the same number and caption under it in the Colab edition. The
tests check the metadata in the chapters, the numbers in the built book (``make book`` first),
and that the Colab editions number the figures as the book does.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def toc_numbers() -> dict[str, int | None]:
    """docname -> chapter number, as book/colab_edition.py reads _toc.yml (Sphinx's numbering)."""
    spec = importlib.util.spec_from_file_location("colab_edition", ROOT / "book" / "colab_edition.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.toc_pages()


NUMBERS = toc_numbers()
CHAPTERS = [ROOT / f"{doc}.ipynb" for doc in NUMBERS if (ROOT / f"{doc}.ipynb").is_file()]
# Chapters written before their figures were captioned; remove a chapter once its figures have captions.
NOT_YET_CAPTIONED: set[str] = set()


def each_chapter(test):
    """Parametrize a test over the chapters; those not yet captioned are expected to fail."""
    params = [pytest.param(p, id=p.stem, marks=[pytest.mark.xfail(reason="figures not captioned yet", strict=False)]
                           if p.stem in NOT_YET_CAPTIONED else []) for p in CHAPTERS]
    return pytest.mark.parametrize("path", params)(test)
NUMREF = re.compile(r"\{numref\}`(?:[^`<]*<)?([^`>]+)>?`")


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def is_figure(output: dict) -> bool:
    data = output.get("data", {})
    return "image/png" in data or 'class="ddpm-scrubber"' in "".join(data.get("text/html", ""))


def figure_cells(path: Path) -> list[dict]:
    return [c for c in cells(path) if c["cell_type"] == "code" and any(is_figure(o) for o in c.get("outputs", []))]


def caption_of(cell: dict) -> dict:
    return cell.get("metadata", {}).get("mystnb", {}).get("figure", {})


@each_chapter
def test_every_figure_has_a_caption_and_a_name(path):
    missing = ["".join(c["source"]).splitlines()[0] for c in figure_cells(path) if not caption_of(c).get("caption")]
    assert not missing, f"{path.name}: figures without a caption, in the cells starting {missing}"
    for cell in figure_cells(path):
        name = caption_of(cell).get("name", "")
        assert re.fullmatch(r"fig-[a-z0-9-]+", name), f"{path.name}: figure name {name!r}"
        shown = [o for o in cell["outputs"] if o["output_type"] in ("display_data", "execute_result")]
        # myst-nb makes one figure per output, each with the cell's name: one output, one label.
        assert len(shown) == 1, f"{path.name}: the figure {name} has {len(shown)} outputs"


def test_figure_names_are_unique_and_every_numref_finds_one():
    names = [caption_of(c)["name"] for p in CHAPTERS for c in figure_cells(p) if caption_of(c).get("name")]
    assert len(names) == len(set(names))
    text = "\n".join("".join(c["source"]) for p in CHAPTERS for c in cells(p) if c["cell_type"] == "markdown")
    text += "\n".join(caption_of(c).get("caption", "") for p in CHAPTERS for c in figure_cells(p))
    refs = set(NUMREF.findall(text))
    assert refs <= set(names), f"{{numref}} to no figure: {sorted(refs - set(names))}"
    for path in CHAPTERS:  # every chapter points its reader at its figures
        own = {caption_of(c).get("name") for c in figure_cells(path)} - {None}
        assert not own or own & refs, f"{path.name}: no figure is referenced from the text"


def book_figures(page: Path) -> dict[str, str]:
    """anchor -> "N.k" of every numbered figure of a built page."""
    html = page.read_text(encoding="utf-8")
    found = re.findall(r'<figure[^>]*\bid="([^"]+)"[^>]*>.*?<span class="caption-number">Fig\. ([\d.]+) </span>', html, re.S)
    return dict(found)


@each_chapter
def test_the_book_numbers_every_figure(path, built_html):
    figures = book_figures(built_html / "notebooks" / f"{path.stem}.html")
    names = [caption_of(c)["name"] for c in figure_cells(path)]
    assert list(figures) == names, f"{path.name}: the built page's figures are {list(figures)}"
    chapter = NUMBERS[f"notebooks/{path.stem}"]
    assert list(figures.values()) == [f"{chapter}.{k}" for k in range(1, len(names) + 1)]


@each_chapter
def test_colab_edition_numbers_figures_as_the_book(path, built_html):
    edition = ROOT / "colab" / path.name
    markdown = "\n".join("".join(c["source"]) for c in cells(edition) if c["cell_type"] == "markdown")
    shown = dict(re.findall(r'<a id="([^"]+)" name="[^"]+"></a>\n\*Fig\. ([\d.]+)\*', markdown))
    assert shown == book_figures(built_html / "notebooks" / f"{path.stem}.html")
    for number, anchor in re.findall(r"\[Fig\. ([\d.]+)\]\(#([^)]+)\)", markdown):
        assert shown.get(anchor) == number, f"colab/{path.name}: a link 'Fig. {number}' to #{anchor}"
