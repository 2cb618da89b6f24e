"""Small fixes to the HTML that Jupyter Book 1.x writes.

* Sphinx 7.4 writes some inline scripts twice (once with filename None, once with ''), which
  declares the thebe script's constant twice. Drop the repeats.
* Load MathJax on every page, so math in the sidebar (chapter titles) renders on pages
  without math of their own.
* The chapters show ``ddpm_core``'s source (``show_source``), whose docstrings cite the book's
  equations as MyST roles, {eq}`label`, and name code as :func:`name`. In the listings of the
  HTML book the first become the equation's number, linked to it, and the second plain names.
* The Colab launch button opens the chapter's Colab edition, ``colab/<chapter>.ipynb`` (written
  by ``book/colab_edition.py``), instead of the chapter notebook, whose MyST markup Colab
  would show raw.
"""

import re
from pathlib import Path

from docutils import nodes
from sphinx.util import logging

LOGGER = logging.getLogger(__name__)

EQ_ROLE = re.compile(r"\{eq\}`([^`<>]+)`")
CODE_ROLE = re.compile(r":(?:func|class|meth|attr|data|mod):`(~?)([^`<>]+)`")


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in context.get("script_files", []):
        key = (script.filename or "", tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def _equation_link(app, fromdocname: str, label: str) -> str | None:
    """HTML for a link to equation ``label``, numbered as {eq}`label` renders it; None if unknown."""
    env = app.builder.env
    found = env.get_domain("math").equations.get(label)
    if found is None:
        return None
    docname, number = found
    node_id = nodes.make_id(f"equation-{label}")
    if env.config.math_numfig and env.config.numfig:
        numbers = env.toc_fignumbers.get(docname, {}).get("displaymath", {}).get(node_id, ())
        number = ".".join(map(str, numbers))
    uri = app.builder.get_relative_uri(fromdocname, docname) + "#" + node_id
    return f'<a class="reference internal" href="{uri}">({number})</a>'


def _resolve_roles_in_listings(app, doctree, docname):
    """Rewrite the MyST roles inside raw HTML outputs (the highlighted source listings)."""
    for raw in list(doctree.findall(nodes.raw)):
        text = raw.astext()
        if "html" not in raw.get("format", "") or ("{eq}`" not in text and ":`" not in text):
            continue
        text = EQ_ROLE.sub(lambda m: _equation_link(app, docname, m.group(1)) or m.group(0), text)
        text = CODE_ROLE.sub(lambda m: m.group(2).rsplit(".", 1)[-1] if m.group(1) else m.group(2), text)
        raw.replace_self(nodes.raw("", text, format=raw["format"]))


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
    app.connect("doctree-resolved", _resolve_roles_in_listings)
    app.connect("html-page-context", _colab_edition_button, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
