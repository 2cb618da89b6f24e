"""Small fixes to the HTML that Jupyter Book 1.x writes.

* Sphinx 7.4 writes some inline scripts twice (once with filename None, once with ''), which
  declares the thebe script's constant twice. Drop the repeats.
* Load MathJax on every page, so math in the sidebar (chapter titles) renders on pages
  without math of their own.
* The Colab launch button opens the chapter's Colab edition, ``colab/<chapter>.ipynb`` (written
  by ``book/colab_edition.py``), instead of the chapter notebook, whose MyST markup Colab
  would show raw.
"""

from pathlib import Path

from sphinx.util import logging

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


def setup(app):
    app.set_html_assets_policy("always")
    app.connect("html-page-context", _dedupe_scripts)
    app.connect("html-page-context", _colab_edition_button, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
