"""Small fixes to the HTML that Jupyter Book 1.x writes, so pages load without console errors.

Sphinx 7.4 writes some inline scripts twice (once with filename None, once with ''), which
declares the thebe script's constant twice. Drop the repeats. Load MathJax on every page, so
math in the sidebar (chapter titles) renders on pages without math of their own.
"""


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in context.get("script_files", []):
        key = (script.filename or "", tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.set_html_assets_policy("always")
    app.connect("html-page-context", _dedupe_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
