"""Library code shown in the chapters, so that what the reader sees is what runs.

The docstrings of ``ddpm_core`` cite the book's equations with the MyST role ``{eq}`` and name
code with Sphinx roles such as ``:func:``. A listing writes each cited equation as a marker,
[1], [2], ..., and each named piece of code as its plain name, and says under the code which
equation each marker stands for:

* the book renders the ``text/markdown`` output as MyST (``_config.yml`` prefers it there), so
  the markers are explained with ``{eq}`` roles, which become the equations' numbers, linked;
* Jupyter and Colab show the ``text/html`` output: the same code, highlighted, with the
  equations' labels written out.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from html import escape

EQ_ROLE = re.compile(r"\{eq\}`([^`]+)`")
CODE_ROLE = re.compile(r":(?:func|class|meth|attr|data|mod):`(~?)([^`]+)`")


@dataclass(frozen=True)
class Listing:
    """Source code whose equation roles are markers: marker [k] stands for ``cited[k - 1]``."""

    code: str
    cited: tuple[str, ...]

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, str]:
        return {"text/markdown": self.markdown(), "text/html": self.html(), "text/plain": self.plain()}

    def markdown(self) -> str:
        """MyST for the book: a fenced block, then the cited equations as {eq} roles."""
        fence = "````" if "```" in self.code else "```"
        block = f"{fence}python\n{self.code.rstrip()}\n{fence}"
        cited = self.cited_line(lambda label: f"{{eq}}`{label}`")
        return f"{block}\n\n{cited}" if cited else block

    def html(self) -> str:
        """For Jupyter and Colab: the code highlighted with inline styles, then the labels."""
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonLexer

        code = highlight(self.code, PythonLexer(), HtmlFormatter(noclasses=True))
        cited = self.cited_line(lambda label: f"<code>{escape(label)}</code>")
        return f"{code}<p>{cited}</p>" if cited else code

    def plain(self) -> str:
        cited = self.cited_line(str)
        return f"{self.code.rstrip()}\n\n{cited}" if cited else self.code.rstrip()

    def cited_line(self, show) -> str:
        """'Equations cited: [1] ..., [2] ...', each label as ``show`` writes it; '' if none is cited."""
        markers = [f"[{k}] {show(label)}" for k, label in enumerate(self.cited, 1)]
        return "Equations cited: " + ", ".join(markers) if markers else ""


def listing(source: str) -> Listing:
    """``source`` with {eq} roles as markers, one per distinct label in order, and code roles as names.

    A code role with ``~`` (``:func:`~a.b.name```) shows its last part, ``name``; without, its
    whole text.
    """
    cited: list[str] = []

    def marker(match: re.Match) -> str:
        if match[1] not in cited:
            cited.append(match[1])
        return f"[{cited.index(match[1]) + 1}]"

    code = EQ_ROLE.sub(marker, source)
    code = CODE_ROLE.sub(lambda m: m[2].rsplit(".", 1)[-1] if m[1] else m[2], code)
    return Listing(code, tuple(cited))


def show_source(obj) -> Listing:
    """Display the source code of a ``ddpm_core`` function or class, highlighted.

    The chapters show library code this way instead of copying it, so what the reader sees
    is what runs.
    """
    return listing(inspect.getsource(obj))
