"""The source listings of the chapters (ddpm_core.listing.show_source).

The book renders a listing's text/markdown as MyST: a fenced code block whose docstrings cite
equations by markers [1], [2], ..., then a line of {eq} roles that Sphinx numbers and links.
Jupyter and Colab show its text/html (or text/plain): the same code, and no MyST at all.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from IPython.core.formatters import DisplayFormatter
from markdown_it import MarkdownIt
from myst_nb.core.render import get_mime_priority

import ddpm_core
from ddpm_core.listing import listing, show_source

ROOT = Path(__file__).resolve().parents[1]
ANY_ROLE = re.compile(r"\{[\w:.+-]+\}`|:[\w:.+-]+:`")


def cites_two_equations(x):
    """Uses {eq}`eq-a`, then {eq}`eq-b`, then {eq}`eq-a` again.

    Calls :func:`~ddpm_core.losses.simple_loss` on a :class:`NoiseSchedule`, see
    :meth:`ddpm_core.NoiseSchedule.named`.
    """
    return x


def cites_nothing(x):
    """Returns ``x`` unchanged."""
    return x


def shown(obj) -> dict[str, str]:
    """The mime bundle Jupyter gets for ``show_source(obj)``."""
    data, _ = DisplayFormatter().format(show_source(obj))
    return data


def test_jupyter_gets_markdown_html_and_plain_text():
    assert sorted(shown(cites_two_equations)) == ["text/html", "text/markdown", "text/plain"]


def test_markdown_is_one_python_block_of_the_cleaned_source():
    markdown = shown(cites_two_equations)["text/markdown"]
    fences = [t for t in MarkdownIt("commonmark").parse(markdown) if t.type == "fence"]
    assert [f.info for f in fences] == ["python"]
    assert fences[0].content == show_source(cites_two_equations).code
    assert fences[0].content.startswith("def cites_two_equations(x):\n")
    assert fences[0].content.endswith("return x\n")


def test_equation_roles_become_one_marker_per_label_in_order():
    code = show_source(cites_two_equations).code
    assert "Uses [1], then [2], then [1] again." in code
    assert show_source(cites_two_equations).cited == ("eq-a", "eq-b")


def test_code_roles_become_plain_names():
    code = show_source(cites_two_equations).code
    assert "Calls simple_loss on a NoiseSchedule, see\n    ddpm_core.NoiseSchedule.named." in code


def test_markdown_ends_with_the_cited_equations_as_myst_roles():
    markdown = shown(cites_two_equations)["text/markdown"]
    assert markdown.endswith("```\n\nEquations cited: [1] {eq}`eq-a`, [2] {eq}`eq-b`")
    assert markdown.count("{eq}") == 2, "roles only in the cited line, none in the code"


def test_html_and_plain_text_show_no_myst():
    data = shown(cites_two_equations)
    for mime in ("text/html", "text/plain"):
        assert not ANY_ROLE.search(data[mime]), f"{mime} shows a role raw"
        assert "[1]" in data[mime] and "eq-a" in data[mime] and "eq-b" in data[mime]
    assert data["text/plain"].endswith("Equations cited: [1] eq-a, [2] eq-b")
    assert '<span style="color: #008000; font-weight: bold">def</span>' in data["text/html"], "highlighted"


def test_no_roles_no_cited_line():
    data = shown(cites_nothing)
    assert show_source(cites_nothing).cited == ()
    assert all("Equations cited" not in text for text in data.values())
    assert data["text/markdown"].endswith("```")


def test_a_docstring_fence_does_not_close_the_block():
    markdown = listing('def f():\n    """Example:\n\n    ```\n    f()\n    ```\n    """\n').markdown()
    fences = [t for t in MarkdownIt("commonmark").parse(markdown) if t.type == "fence"]
    assert len(fences) == 1 and "    ```\n    f()\n    ```" in fences[0].content


def test_every_role_in_ddpm_core_is_understood():
    """No role form the listing does not know survives (e.g. an {eq} with a title, :py:func:)."""
    left = {
        f"{path.name}: {m.group(0)}"
        for path in sorted(Path(ddpm_core.__file__).parent.glob("*.py"))
        if path.name != "listing.py"  # its own docstring names the roles in prose
        for m in ANY_ROLE.finditer(listing(path.read_text(encoding="utf-8")).code)
    }
    assert not left, f"roles a listing would show raw: {sorted(left)}"


def test_book_renders_the_markdown_as_myst_before_html():
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))["sphinx"]["config"]
    assert config["nb_render_markdown_format"] == "myst"
    order = get_mime_priority("html", [tuple(o) for o in config["nb_mime_priority_overrides"]])
    shown_first = [
        "application/vnd.jupyter.widget-view+json", "application/javascript", "text/markdown", "text/html",
        "image/png", "text/plain",
    ]
    assert sorted(shown_first, key=order.index) == shown_first, "only text/markdown moved, to before text/html"
