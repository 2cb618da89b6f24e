"""Write the Colab edition of every chapter: ``colab/<chapter>.ipynb``.

Colab renders a notebook's Markdown with a plain CommonMark renderer and MathJax, so the
MyST markup of the chapters (roles such as {eq}`label`, directives such as ```{exercise},
equation labels, ``(label)=`` targets, links relative to the repository) would show raw
there. The edition is the chapter with its Markdown cells rewritten into what the HTML book
shows; code cells and their outputs are copied unchanged, except that an output carrying
both MyST (text/markdown, for the book) and HTML (for Jupyter), as the source listings of
``ddpm_core.listing`` do, keeps only its HTML and plain text: Colab would show the MyST raw.

- A labelled equation ``$$ ... $$ (eq-x)`` gets ``\\tag{N}``, N the number the book gives it.
- A code cell whose output is a figure with a caption (cell metadata ``mystnb: figure: {caption,
  name}``, which myst-nb renders as a numbered figure) keeps its output; its "*Fig. N* caption",
  with an anchor for {numref}, opens the Markdown cell that follows it.
- {eq}, {doc}, {ref} and {numref} become links to the HTML book, with the text the book shows
  (the equation's number, the page title, the section heading, "Exercise N.k"); {cite}
  becomes the book's author-year text, linked to the references page.
- Exercises become a bold "Exercise N.k (title)", their solutions a closed ``<details>``;
  admonitions and other directives become ``<blockquote>`` blocks; ``(label)=`` an anchor.
- Links and images relative to the repository point to the book's pages or to the files
  on GitHub.
- An implementation exercise is a code cell tagged ``exercise-solution`` (the solution, folded
  in the book), followed by the cell that checks it. In the edition the solution cell keeps
  its ``def`` line and docstring, and its body becomes ``raise NotImplementedError`` under a
  "# Your code here" comment (tagged ``exercise``); the check cell loses its stored output
  (the verdict on the solution); and a Markdown cell after the check holds the solution in
  a closed ``<details>``.

Numbers follow Sphinx's rule for this book (numfig, math_numfig, numbered parts in
_toc.yml): the chapters of numbered parts are 1, 2, ... in the order of _toc.yml, and the
k-th labelled equation (or exercise, or captioned figure) of chapter c is c.k; on an
unnumbered page it is k. tests/test_colab.py compares them with the built HTML.

    .venv/bin/python book/colab_edition.py           # (re)write colab/*.ipynb
    .venv/bin/python book/colab_edition.py --check   # exit 1, naming them, if any is stale
"""

from __future__ import annotations

import argparse
import ast
import json
import posixpath
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from docutils.nodes import make_id
from pybtex.database import parse_file
from pybtex.plugin import find_plugin

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "colab"
SUFFIXES = (".ipynb", ".md")

FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,}|:{3,})[ \t]*(?P<info>.*)$")
DIRECTIVE = re.compile(r"^\{(?P<name>[\w:.-]+)\}[ \t]*(?P<arg>.*)$")
OPTION = re.compile(r"^:(?P<key>[\w-]+):[ \t]*(?P<value>.*)$")
TARGET = re.compile(
    r"^\((?P<label>[^()\s]+)\)=[ \t]*$(?=\n(?:[ \t]*\n)*#{1,6}[ \t]+(?P<heading>[^\n]*?)[ \t#]*$)?", re.M
)
TITLE = re.compile(r"^#[ \t]+(?P<title>[^\n]*?)[ \t#]*$", re.M)
AMS_ENVS = "align|alignat|flalign|gather|equation|multline"
# Inside $$ ... $$ MathJax and KaTeX take the inner forms of amsmath's environments, and no \label.
AMS_INNER = {"align": "aligned", "flalign": "aligned", "alignat": "alignedat", "gather": "gathered",
             "multline": "gathered"}
INLINE = re.compile(  # scanned left to right, so code spans protect what they contain
    r"\{(?P<role>[\w:.+-]+)\}`(?P<content>[^`]*)`"
    r"|\$\$(?P<tex>.+?)\$\$(?:[ \t]*\((?P<label>[^()\s]+)\)(?=[ \t]*(?:\n|$)))?"
    rf"|^(?P<ams>\\begin\{{(?P<env>{AMS_ENVS})\*?\}}.*?^\\end\{{(?P=env)\*?\}})"
    r"|(?P<ticks>`+).+?(?P=ticks)"
    r"|(?P<bang>!?)\[(?P<text>[^\]]*)\]\((?P<target>[^()\s]+)\)",
    re.S | re.M,
)
ADMONITIONS = {"note", "tip", "hint", "important", "warning", "caution", "attention", "danger", "error",
               "seealso", "admonition"}
CODE_DIRECTIVES = {"code", "code-block", "sourcecode", "code-cell"}
EXERCISE_TAG = "exercise-solution"  # a code cell holding an implementation exercise's solution
SIMPLE_ROLES = {"sub": "<sub>{}</sub>", "sup": "<sup>{}</sup>", "kbd": "<kbd>{}</kbd>", "term": "{}",
                "code": "`{}`", "samp": "`{}`", "file": "`{}`", "command": "`{}`", "program": "`{}`",
                "func": "`{}`", "class": "`{}`", "meth": "`{}`", "mod": "`{}`", "attr": "`{}`"}


@dataclass
class Target:
    """What a {ref} or {numref} to a label shows, and where it leads."""

    doc: str
    anchor: str
    text: str | None  # what {ref} shows: the section heading, "Exercise 1.2", a caption
    name: str = ""  # with number, what {numref} shows: "Exercise" and "1.2", "Fig." and "3.1"
    number: str | None = None


@dataclass
class Book:
    """What the rewriting needs to know about the whole book, collected in a first pass."""

    title: str
    url: str  # the HTML book, ending in "/"
    raw: str  # the raw files of the repository's branch, ending in "/"
    pages: dict[str, int | None]  # docname -> chapter number (None: unnumbered), toc order
    citations: dict[str, tuple[list[str], str]]  # key -> (authors' last names, year)
    titles: dict[str, str] = field(default_factory=dict)
    equations: dict[str, tuple[str, str]] = field(default_factory=dict)  # label -> (doc, number)
    targets: dict[str, Target] = field(default_factory=dict)
    bibliography: str | None = None  # the page with the {bibliography}
    final: bool = False  # second pass: every reference must resolve

    def page_url(self, doc: str, anchor: str = "") -> str:
        return f"{self.url}{doc}.html" + (f"#{anchor}" if anchor else "")


# --------------------------------------------------------------------------------------
# The book: configuration, table of contents, bibliography
# --------------------------------------------------------------------------------------


def load_book() -> Book:
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    repository = config["repository"]
    raw = repository["url"].replace("https://github.com/", "https://raw.githubusercontent.com/")
    return Book(
        title=config["title"],
        url=config["html"]["baseurl"].rstrip("/") + "/",
        raw=f"{raw.rstrip('/')}/{repository['branch']}/",
        pages=toc_pages(),
        citations=citations(config.get("bibtex_bibfiles", [])),
    )


def toc_pages() -> dict[str, int | None]:
    """Every page of _toc.yml in order, with its chapter number (None where unnumbered)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    default = (toc.get("defaults") or {}).get("numbered", False)
    pages, count = {docname(toc["root"]): None}, 0
    for part in toc.get("parts") or [{"chapters": toc.get("chapters", [])}]:
        for chapter in part.get("chapters", []):
            if chapter.get("sections"):
                sys.exit("colab_edition.py: _toc.yml has sections; number them as Sphinx does first")
            numbered = part.get("numbered", default)
            count += bool(numbered)
            pages[docname(chapter["file"])] = count if numbered else None
    return pages


def citations(bibfiles: list[str]) -> dict[str, tuple[list[str], str]]:
    """Each entry's authors as sphinxcontrib-bibtex's author_year style names them (last names)."""
    style = find_plugin("pybtex.style.names", "last")()
    found = {}
    for bibfile in bibfiles:
        for key, entry in parse_file(str(ROOT / bibfile)).entries.items():
            names = [style.format(p, True).format().render_as("text") for p in entry.persons.get("author", [])]
            found[key] = (names, entry.fields.get("year", ""))
    return found


def docname(path: str) -> str:
    for suffix in SUFFIXES:
        path = path.removesuffix(suffix)
    return path


def source(doc: str) -> Path:
    return next(p for p in (ROOT / (doc + s) for s in SUFFIXES) if p.is_file())


def markdown_texts(doc: str) -> list[str]:
    """The Markdown of a page: a notebook's Markdown cells, or the whole .md file."""
    path = source(doc)
    if path.suffix == ".md":
        return [re.sub(r"\A---\n.*?\n---\n", "", path.read_text(encoding="utf-8"), flags=re.S)]
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]


def page_cells(doc: str) -> list[dict]:
    """A page as notebook cells, in order (an .md file is one Markdown cell)."""
    path = source(doc)
    if path.suffix == ".md":
        return [{"cell_type": "markdown", "source": markdown_texts(doc)}]
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def figure_options(cell: dict) -> dict | None:
    """The caption and name myst-nb gives a code cell's figure outputs (cell metadata), or None."""
    options = cell.get("metadata", {}).get("mystnb", {}).get("figure")
    return options if cell["cell_type"] == "code" and isinstance(options, dict) and options.get("caption") else None


# --------------------------------------------------------------------------------------
# One page's Markdown, rewritten
# --------------------------------------------------------------------------------------


class Page:
    """Rewrites the Markdown of one page (its docname), numbering as it goes."""

    def __init__(self, book: Book, doc: str):
        self.book, self.doc, self.counts = book, doc, Counter()

    def number(self, kind: str) -> str:
        self.counts[kind] += 1
        chapter = self.book.pages.get(self.doc)
        return f"{chapter}.{self.counts[kind]}" if chapter else str(self.counts[kind])

    def lookup(self, table: dict, key: str, what: str):
        if key not in table and self.book.final:
            sys.exit(f"colab_edition.py: {self.doc} refers to an unknown {what} {key!r}")
        return table.get(key)

    def markdown(self, text: str) -> str:
        """Markdown without MyST: prose, code fences kept as they are, directives rewritten."""
        lines, blocks, i = text.split("\n"), [], 0
        while i < len(lines):
            fence = FENCE.match(lines[i])
            if not fence:
                j = next((k for k in range(i, len(lines)) if FENCE.match(lines[k])), len(lines))
                blocks.append(self.prose("\n".join(lines[i:j])))
                i = j
                continue
            end = closing_line(lines, i, fence["fence"])
            directive = DIRECTIVE.match(fence["info"])
            if directive:
                body = [line.removeprefix(fence["indent"]) for line in lines[i + 1 : end]]
                block = self.directive(directive["name"], directive["arg"], body)
                blocks.append("\n".join(fence["indent"] + line if line else line for line in block.split("\n")))
            else:
                blocks.append("\n".join(lines[i : end + 1]))
            i = end + 1
        return "\n\n".join(b.strip("\n") for b in blocks if b.strip())

    def prose(self, text: str) -> str:
        if self.doc not in self.book.titles and (title := TITLE.search(text)):
            self.book.titles[self.doc] = title["title"]
        for target in TARGET.finditer(text):
            self.book.targets[target["label"]] = Target(self.doc, make_id(target["label"]), target["heading"])
        text = TARGET.sub(lambda m: anchor(m["label"]), text)
        return INLINE.sub(self.inline, text)

    def inline(self, m: re.Match) -> str:
        if m["role"]:
            return self.role(m["role"], m["content"])
        if m["tex"] is not None:
            return self.display_math(m["tex"], m["label"])
        if m["ams"]:
            return self.display_math("\n" + m["ams"] + "\n", None)
        if m["target"]:
            return f"{m['bang']}[{m['text']}]({self.link(m['target'])})"
        return m[0]  # a code span

    def display_math(self, tex: str, label: str | None) -> str:
        """``$$ tex $$``, with the book's number as ``\\tag`` if labelled; amsmath made MathJax-proof."""
        inner = rf"\\(begin|end)\{{({'|'.join(AMS_INNER)})\*?\}}"
        tex = re.sub(inner, lambda m: rf"\{m[1]}{{{AMS_INNER[m[2]]}}}", tex)
        tex = re.sub(r"\\(begin|end)\{equation\*?\}|\\label\{[^}]*\}|\\nonumber|\\notag", "", tex)
        if label:
            number = self.number("displaymath")
            self.book.equations[label] = (self.doc, number)
            tex = tex.rstrip() + rf" \tag{{{number}}}" + ("\n" if tex.endswith("\n") else "")
        return f"$${tex}$$"

    # ----------------------------------------------------------------------------------
    # Roles
    # ----------------------------------------------------------------------------------

    def role(self, name: str, content: str) -> str:
        text, target = explicit_title(content)
        if name == "eq":
            return self.eq_role(target)
        if name in ("doc", "ref", "numref"):
            return getattr(self, f"{name}_role")(text, target)
        if name.startswith("cite"):
            return self.cite_role(name.partition(":")[2] or "p", content)
        if name == "math":
            return f"${content}$"
        if name == "download":
            return f"[{text or target}]({self.link(target)})"
        if name in SIMPLE_ROLES:
            return SIMPLE_ROLES[name].format(text or target)
        return self.unsupported(f"the role {{{name}}}", content)

    def unsupported(self, what: str, content: str) -> str:
        """Stop where a chapter uses markup this script does not know (pages not written pass)."""
        if self.book.final:
            sys.exit(f"colab_edition.py: {self.doc} uses {what}, which it cannot rewrite yet")
        return content

    def eq_role(self, label: str) -> str:
        found = self.lookup(self.book.equations, label, "equation")
        doc, number = found or (self.doc, "?")
        return f"[({number})]({self.book.page_url(doc, make_id('equation-' + label))})"

    def doc_role(self, text: str | None, target: str) -> str:
        doc = self.resolve(target)
        title = text or self.lookup(self.book.titles, doc, "page")
        return f"[{title}]({self.book.page_url(doc)})"

    def ref_role(self, text: str | None, label: str, numbered: bool = False) -> str:
        target = self.lookup(self.book.targets, label, "label") or Target(self.doc, label, label)
        shown = text or target.text
        if numbered:
            number = target.number or "?"
            shown = (text or "{name} {number}").format(name=target.name, number=number).replace("%s", number)
        if not shown and self.book.final:
            sys.exit(f"colab_edition.py: {self.doc}: the label {label!r} has no heading to show; give a text")
        href = f"#{target.anchor}" if target.doc == self.doc else self.book.page_url(target.doc, target.anchor)
        return f"[{shown}]({href})"

    def numref_role(self, text: str | None, label: str) -> str:
        return self.ref_role(text, label, numbered=True)

    def cite_role(self, kind: str, keys: str) -> str:
        """sphinxcontrib-bibtex's author_year style: [Ho *et al.*, 2020], or Ho *et al.* [2020]."""
        if kind not in ("p", "ps", "t", "ts", "ct", "cts"):
            return self.unsupported(f"{{cite:{kind}}}", keys)
        if self.book.final and not self.book.bibliography:
            sys.exit(f"colab_edition.py: {self.doc} cites, but no page of _toc.yml has the bibliography")
        url, parts = self.book.page_url(self.book.bibliography or self.doc), []
        for key in (k.strip() for k in keys.split(",")):
            names, year = self.lookup(self.book.citations, key, "citation") or ([key], "?")
            authors = author_list(names, full=kind.endswith("s"))
            if kind.startswith("c"):
                authors = authors[:1].upper() + authors[1:]
            parts.append(f"{authors} [[{year}]({url})]" if "t" in kind else f"[{authors}, {year}]({url})")
        return ", ".join(parts) if "t" in kind else f"[{', '.join(parts)}]"

    # ----------------------------------------------------------------------------------
    # Links
    # ----------------------------------------------------------------------------------

    def resolve(self, target: str) -> str:
        """The repository path (for a page: its docname) that a target names from this page."""
        if target.startswith("/"):
            return docname(target.lstrip("/"))
        return docname(posixpath.normpath(posixpath.join(posixpath.dirname(self.doc), target)))

    def link(self, target: str) -> str:
        """A link or image target: pages of the book to the HTML book, files to GitHub."""
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            return target
        path, _, fragment = target.partition("#")
        if not path:
            found = self.book.targets.get(fragment)
            return target if not found or found.doc == self.doc else self.book.page_url(found.doc, found.anchor)
        doc = self.resolve(path)
        if doc in self.book.pages:
            return self.book.page_url(doc, fragment)
        repo_path = posixpath.normpath(posixpath.join(posixpath.dirname(self.doc), path))
        if not (ROOT / repo_path).is_file() and self.book.final:
            sys.exit(f"colab_edition.py: {self.doc} links to {target}, which is no page and no file")
        return self.book.raw + repo_path

    # ----------------------------------------------------------------------------------
    # Directives
    # ----------------------------------------------------------------------------------

    def directive(self, name: str, arg: str, body: list[str]) -> str:
        options, content = directive_options(body)
        if name == "exercise":
            return self.exercise(arg, options, content)
        if name == "solution":
            return self.solution(arg, options, content)
        if name == "math":
            return self.display_math("\n" + content + "\n", options.get("label"))
        if name in ("figure", "image"):
            return self.figure(arg, options, content if name == "figure" else "")
        if name in CODE_DIRECTIVES:
            return f"```{arg}\n{content}\n```"
        if name == "bibliography":
            self.book.bibliography = self.doc
            return ""
        if name in ("toctree", "tableofcontents"):
            return ""
        if name == "raw":
            return content if arg.strip() == "html" else ""
        title = arg if name == "admonition" else "See also" if name == "seealso" else name.capitalize()
        if name in ADMONITIONS - {"admonition"} and arg:
            content = f"{arg}\n{content}"
        return self.boxed(title, options, content)

    def boxed(self, title: str, options: dict, content: str) -> str:
        """An admonition (or any other directive): a block quote, or a closed dropdown."""
        content = self.markdown(content)
        if "dropdown" in str(options.get("class", "")):
            return f"<details>\n<summary>{title}</summary>\n\n{content}\n\n</details>"
        return f"<blockquote>\n\n**{title}**\n\n{content}\n\n</blockquote>"

    def exercise(self, title: str, options: dict, content: str) -> str:
        label = options.get("label", "")
        number = None if "nonumber" in options else self.number("exercise")
        name = f"Exercise {number}" if number else "Exercise"
        if label:
            self.book.targets[label] = Target(self.doc, make_id(label), name, "Exercise", number)
        heading = f"**{name} ({title})**" if title else f"**{name}**"
        return (anchor(label) + "\n" if label else "") + heading + "\n\n" + self.markdown(content)

    def solution(self, exercise: str, options: dict, content: str) -> str:
        target = self.lookup(self.book.targets, exercise, "exercise")
        summary = f"Solution to {target.text}" if target else "Solution"
        label = options.get("label", "")
        start = anchor(label) + "\n\n" if label else ""
        return f"{start}<details>\n<summary>{summary}</summary>\n\n{self.markdown(content)}\n\n</details>"

    def code_figure(self, options: dict) -> str:
        """A captioned code cell's figure: numbered as the book numbers it; its caption, to show below it."""
        number = self.number("figure")
        caption = str(options["caption"])
        if label := options.get("name", ""):
            self.book.targets[label] = Target(self.doc, make_id(label), caption.split("\n")[0], "Fig.", number)
        start = anchor(label) + "\n" if label else ""
        return f"{start}*Fig. {number}* {self.markdown(caption)}"

    def figure(self, path: str, options: dict, caption: str) -> str:
        image = f"![{options.get('alt', '')}]({self.link(path.strip())})"
        if not caption:
            return image
        number = self.number("figure")
        if label := options.get("name", ""):
            self.book.targets[label] = Target(self.doc, make_id(label), caption.split("\n")[0], "Fig.", number)
        start = anchor(label) + "\n" if label else ""
        return f"{start}{image}\n\n*Fig. {number}* {self.markdown(caption)}"


# --------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------


def closing_line(lines: list[str], start: int, fence: str) -> int:
    """The line that closes the fence opened at ``start`` (the last line if none does)."""
    closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
    return next((k for k in range(start + 1, len(lines)) if closing.match(lines[k])), len(lines) - 1)


def directive_options(body: list[str]) -> tuple[dict, str]:
    """A directive's options (``:key: value`` lines or a YAML block) and its content."""
    if body and body[0].strip() == "---":
        end = next(k for k in range(1, len(body)) if body[k].strip() == "---")
        return yaml.safe_load("\n".join(body[1:end])) or {}, "\n".join(body[end + 1 :]).strip("\n")
    options, k = {}, 0
    while k < len(body) and (option := OPTION.match(body[k])):
        options[option["key"]] = option["value"]
        k += 1
    return options, "\n".join(body[k:]).strip("\n")


def explicit_title(content: str) -> tuple[str | None, str]:
    """``text <target>`` as (text, target); a bare target as (None, target)."""
    m = re.fullmatch(r"(?P<text>.*?)\s*<(?P<target>[^<>]+)>", content, re.S)
    return (m["text"], m["target"]) if m and m["text"] else (None, content.strip())


def author_list(names: list[str], full: bool) -> str:
    if len(names) <= 2:
        return " and ".join(names)
    return ", ".join(names[:-1]) + ", and " + names[-1] if full else f"{names[0]} *et al.*"


def anchor(label: str) -> str:
    """An in-notebook link target (``name`` for Colab, ``id`` for Jupyter)."""
    return f'<a id="{make_id(label)}" name="{make_id(label)}"></a>'


# --------------------------------------------------------------------------------------
# The editions
# --------------------------------------------------------------------------------------


def notebook_chapters(book: Book) -> list[str]:
    return [doc for doc in book.pages if source(doc).suffix == ".ipynb"]


def edition(book: Book, doc: str) -> str:
    """The Colab edition of one chapter, as the text of an .ipynb file."""
    notebook = json.loads(source(doc).read_text(encoding="utf-8"))
    notebook["cells"] = with_exercises_open(doc, notebook["cells"])
    page, first, caption = Page(book, doc), True, None
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            drop_myst(output)
        if caption is not None and cell["cell_type"] != "markdown":
            sys.exit(f"colab_edition.py: {doc}: a captioned figure must be followed by a Markdown cell")
        if options := figure_options(cell):
            caption = page.code_figure(options)
        if cell["cell_type"] != "markdown":
            continue
        text = page.markdown("".join(cell["source"]))
        if first:
            text, first = TITLE.sub(lambda m: m[0] + "\n\n" + byline(book, doc), text, count=1), False
        if caption is not None:
            text, caption = caption + "\n\n" + text, None
        cell["source"] = text.splitlines(keepends=True)
    if caption is not None:
        sys.exit(f"colab_edition.py: {doc}: a captioned figure must be followed by a Markdown cell")
    return json.dumps(notebook, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def is_exercise(cell: dict) -> bool:
    return cell["cell_type"] == "code" and EXERCISE_TAG in cell.get("metadata", {}).get("tags", [])


def with_exercises_open(doc: str, cells: list[dict]) -> list[dict]:
    """The cells with each exercise's solution left to write, and shown folded after its check."""
    out = []
    for index, cell in enumerate(cells):
        previous = cells[index - 1] if index else None
        if is_exercise(cell):
            solution = "".join(cell["source"])
            if index + 1 == len(cells) or cells[index + 1]["cell_type"] != "code":
                sys.exit(f"colab_edition.py: {doc}: an {EXERCISE_TAG} cell must be followed by the code cell that checks it")
            cell = {**cell, "execution_count": None, "outputs": [], "source": exercise_stub(solution, doc).splitlines(True),
                    "metadata": {**cell["metadata"], "tags": ["exercise"]}}
        elif previous is not None and is_exercise(previous):  # the check: its verdict was on the solution
            cell = {**cell, "execution_count": None, "outputs": []}
        out.append(cell)
        if previous is not None and is_exercise(previous):
            solution = "".join(previous["source"]).strip("\n")
            text = f"<details>\n<summary>Solution</summary>\n\n```python\n{solution}\n```\n\n</details>"
            out.append({"cell_type": "markdown", "id": f"{previous['id']}-solution", "metadata": {},
                        "source": text.splitlines(True)})
    return out


def exercise_stub(solution: str, doc: str = "") -> str:
    """The solution's first function, up to its docstring, with a body left to write."""
    try:
        function = next(n for n in ast.parse(solution).body if isinstance(n, ast.FunctionDef))
    except (SyntaxError, StopIteration):
        sys.exit(f"colab_edition.py: {doc}: an {EXERCISE_TAG} cell must define a function")
    first = function.body[0]
    has_docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)
    end = first.end_lineno if has_docstring else first.lineno - 1  # the last line kept
    lines = solution.splitlines()
    indent = " " * first.col_offset
    return "\n".join([*lines[:end], f"{indent}# Your code here",
                      f'{indent}raise NotImplementedError("write the body of {function.name}")'])


def drop_myst(output: dict) -> None:
    """Remove an output's text/markdown where it has text/html too (the MyST of a source listing)."""
    data = output.get("data", {})
    if "text/markdown" in data and "text/html" in data:
        del data["text/markdown"]


def byline(book: Book, doc: str) -> str:
    chapter = book.pages[doc]
    which = f"Chapter {chapter} of" if chapter else "From"
    return f"*{which} [{book.title}]({book.url}), Colab edition. [The same page in the book]({book.page_url(doc)}).*"


def editions() -> dict[Path, str]:
    """Every edition by its path: a first pass collects numbers and titles, a second writes."""
    book = load_book()
    for doc in book.pages:
        page = Page(book, doc)
        for cell in page_cells(doc):
            if options := figure_options(cell):
                page.code_figure(options)
            elif cell["cell_type"] == "markdown":
                page.markdown("".join(cell["source"]))
    book.final = True
    return {OUT / f"{Path(doc).name}.ipynb": edition(book, doc) for doc in notebook_chapters(book)}


def stale(expected: dict[Path, str]) -> list[str]:
    """Editions that differ from what the chapters give, are missing, or have no chapter."""
    names = [p.name for p, text in expected.items() if not p.is_file() or p.read_text(encoding="utf-8") != text]
    return names + sorted(p.name for p in OUT.glob("*.ipynb") if p not in expected)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if an edition is stale")
    check, expected = parser.parse_args().check, editions()
    if check:
        outdated = stale(expected)
        if outdated:
            print(f"stale in colab/: {', '.join(outdated)}; run python book/colab_edition.py", file=sys.stderr)
        return 1 if outdated else 0
    OUT.mkdir(exist_ok=True)
    for path in OUT.glob("*.ipynb"):
        if path not in expected:
            path.unlink()
    for path, text in expected.items():
        path.write_text(text, encoding="utf-8")
    print(f"wrote {len(expected)} editions to {OUT.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
