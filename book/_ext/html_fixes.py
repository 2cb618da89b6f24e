"""Small fixes to the HTML that Jupyter Book 1.x writes.

* Sphinx 7.4 writes some inline scripts twice (once with filename None, once with ''), which
  declares the thebe script's constant twice. Drop the repeats.
* Load MathJax on every page, so math in the sidebar (chapter titles) renders on pages
  without math of their own.
* The Colab launch button opens the chapter's Colab edition, ``colab/<chapter>.ipynb`` (written
  by ``book/colab_edition.py``), instead of the chapter notebook, whose MyST markup Colab
  would show raw.
* A solution shown as a dropdown has a title that opens it: sphinx-exercise links the
  exercise's name in the title, and a click on that link left the page instead of opening
  the solution. The title keeps the words, without the link (the exercise is just above).
* Printed output that is not laid out in columns wraps on a narrow screen instead of running
  off to the right (class ``ddpm-wrap``, styled in ``book/_static/ddpm-book.css``); columns of
  numbers keep their lines and scroll in their box. Columns: two or more lines with a run of
  spaces between words.
"""

import re
from pathlib import Path

from docutils import nodes
from sphinx.util import logging
from sphinx_exercise.nodes import solution_node

LOGGER = logging.getLogger(__name__)


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in context.get("script_files", []):
        key = (script.filename or "", tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def _colab_edition_button(app, pagename, templatename, context, doctree):
    """Point the Colab launch button at ``colab/<name>.ipynb`` where that edition exists.

    sphinx-book-theme's ``add_launch_buttons`` (html-page-context, priority 501) links
    ``<colab_url>/github/<org>/<repo>/blob/<branch>/<path_to_book><pagename>.ipynb``; this
    handler runs after it and swaps the last part for the edition's path.
    """
    edition, chapter = f"colab/{Path(pagename).name}.ipynb", f"{pagename}.ipynb"
    if not (Path(app.srcdir) / edition).is_file():
        return
    groups = [g for g in context.get("header_buttons", []) if g.get("label") == "launch-buttons"]
    for button in (b for g in groups for b in g.get("buttons", []) if b.get("text") == "Colab"):
        if button["url"].endswith(chapter):
            button["url"] = button["url"].removesuffix(chapter) + edition
        else:
            LOGGER.warning(f"the Colab button of {pagename} links {button['url']}, not {chapter}")


def _unlink_solution_titles(app, doctree, docname):
    """Drop the link from the title of every solution shown as a dropdown (keep its text)."""
    for solution in doctree.findall(solution_node):
        title = solution.children[0] if solution.children else None
        if "dropdown" not in solution.get("classes", []) or not isinstance(title, nodes.title):
            continue
        for reference in list(title.findall(nodes.reference)):
            reference.replace_self(nodes.inline("", "", *reference.children))


# Two or more lines with a run of spaces between words: a table whose columns line up.
_COLUMNS = re.compile(r"\S {2,}\S")


def _wrap_prose_outputs(app, doctree, docname):
    """Mark printed output (stdout, stderr) that wraps without harm: no two lines in columns."""
    for block in doctree.findall(nodes.literal_block):
        classes = set(block.get("classes", []))
        if "output" in classes and classes & {"stream", "stderr"}:
            if sum(bool(_COLUMNS.search(line)) for line in block.astext().splitlines()) < 2:
                block["classes"].append("ddpm-wrap")


def setup(app):
    app.set_html_assets_policy("always")
    app.connect("html-page-context", _dedupe_scripts)
    app.connect("html-page-context", _colab_edition_button, priority=600)
    app.connect("doctree-resolved", _unlink_solution_titles)
    app.connect("doctree-resolved", _wrap_prose_outputs)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
