"""The book's structure and configuration hold together (fast, no browser, no build).

- The repository URL lives in one place (``_config.yml``); every chapter's Colab setup cell
  installs the release of ddpm_core it was run with (the tag v<version>) from exactly that URL,
  and all setup cells are identical.
- ``_toc.yml`` and ``notebooks/`` agree; chapters are committed executed, without errors.
- Every equation label that ddpm_core cites is defined in the book, and defined once.
- The pins that keep the book building: Jupyter Book 1.x, stored outputs, offline MathJax.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SOURCE_SUFFIXES = (".ipynb", ".md", ".rst")
# Folders that hold no source of the book (build outputs, environments, data).
NOT_SOURCE = {
    ".git", ".venv", "_build", "data", "runs", "test-artifacts", "__pycache__", ".ipynb_checkpoints", ".jupyter_cache",
}


def load_config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))


def load_notebook(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def cell_source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def code_cells(notebook: dict) -> list[dict]:
    return [c for c in notebook["cells"] if c["cell_type"] == "code"]


def toc_files() -> list[str]:
    """Every ``file`` entry of ``_toc.yml`` (and its root), as written there."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            for key in ("sections", "chapters", "parts"):
                walk(entry.get(key, []))

    for key in ("parts", "chapters", "sections"):
        walk(toc.get(key, []))
    return files


def resolve(toc_file: str) -> Path | None:
    """The source file a toc entry names (the suffix may be left out), or None."""
    candidates = [ROOT / toc_file] + [ROOT / (toc_file + s) for s in SOURCE_SUFFIXES]
    return next((p for p in candidates if p.is_file()), None)


def source_files() -> list[Path]:
    """Every file of the repository except build outputs, environments and data."""
    files = []
    for folder, subfolders, names in os.walk(ROOT):
        subfolders[:] = [d for d in subfolders if d not in NOT_SOURCE and not d.endswith(".egg-info")]
        files += [Path(folder) / name for name in names]
    return files


def nb_id(path: Path) -> str:
    return path.stem


# --------------------------------------------------------------------------------------
# (a) One repository URL; identical Colab setup cells that install from it
# --------------------------------------------------------------------------------------


def test_config_names_the_repository():
    repository = load_config().get("repository", {})
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", repository.get("url", "")), (
        f"_config.yml repository.url must be https://github.com/<owner>/<repo>, got {repository.get('url')!r}"
    )
    assert repository.get("branch"), "_config.yml repository.branch is missing"


def test_repository_url_is_defined_only_in_config():
    """Moving the repository means editing _config.yml (and re-running the chapters) only."""
    url = load_config()["repository"]["url"]
    needle = url.split("://", 1)[1].lower()  # github.com/owner/repo
    elsewhere = []
    for path in source_files():
        relative = path.relative_to(ROOT)
        if relative == Path("_config.yml"):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if path.suffix == ".ipynb":  # the setup cell may name it; test_setup_cell_* check that copy
            notebook = json.loads(text)
            cells = notebook["cells"]
            setup = code_cells(notebook)[:1]
            text = "\n".join(cell_source(c) for c in cells if c not in setup)
            text += "\n".join(json.dumps(c.get("outputs", [])) for c in cells)
        if needle in text.lower():
            elsewhere.append(str(relative))
    assert not elsewhere, f"the repository URL {url} is written outside _config.yml in: {elsewhere}"


def setup_cell(path: Path) -> dict:
    cells = code_cells(load_notebook(path))
    assert cells, f"{path.name} has no code cell"
    return cells[0]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=nb_id)
def test_setup_cell_installs_from_the_config_repository(path):
    config = load_config()["repository"]
    cell = setup_cell(path)
    source = cell_source(cell)
    assert "remove-cell" in cell.get("metadata", {}).get("tags", []), (
        f"{path.name}: the first code cell (Colab setup) must be tagged remove-cell"
    )
    assert '"google.colab" in sys.modules' in source, f"{path.name}: the setup cell must act only on Colab"
    expected = f"git+{config['url']}@v{{DDPM_CORE}}"  # the release tag of the version below
    installs = re.findall(r"git\+[^\s\"'@]+@[^\s\"']+", source)
    assert installs == [expected], (
        f"{path.name}: the setup cell must install from exactly {expected} (from _config.yml), found {installs}"
    )
    pinned = re.findall(r'DDPM_CORE = "([^"]+)"', source)
    assert pinned == [package_version()], (
        f"{path.name}: the setup cell must install the ddpm_core the chapter was run with, "
        f"{package_version()}, found {pinned}"
    )
    assert "dependency conflicts" in source, f"{path.name}: the setup cell must fail when pip reports a conflict"


def package_version() -> str:
    """ddpm_core's version, which pyproject.toml and ddpm_core.__version__ must agree on."""
    import ddpm_core

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert declared == ddpm_core.__version__, (
        f"pyproject.toml says version {declared}, ddpm_core.__version__ is {ddpm_core.__version__}"
    )
    return declared


def test_setup_cells_are_identical():
    variants: dict[str, list[str]] = {}
    for path in NOTEBOOKS:
        variants.setdefault(cell_source(setup_cell(path)), []).append(path.name)
    groups = "\n".join(f"  {names}" for names in variants.values())
    assert len(variants) <= 1, f"the chapters' setup cells are not identical; groups of equal cells:\n{groups}"


# --------------------------------------------------------------------------------------
# (b) _toc.yml and the files agree
# --------------------------------------------------------------------------------------


def test_every_toc_entry_exists():
    missing = [f for f in toc_files() if resolve(f) is None]
    assert not missing, f"_toc.yml lists files that do not exist: {missing}"


def test_every_notebook_is_in_the_toc():
    listed = {resolve(f) for f in toc_files()}
    unlisted = [p.name for p in NOTEBOOKS if p not in listed]
    assert not unlisted, f"notebooks missing from _toc.yml (the book would not show them): {unlisted}"


def test_toc_lists_each_file_once():
    counts = Counter(str(resolve(f) or f) for f in toc_files())
    twice = [f for f, n in counts.items() if n > 1]
    assert not twice, f"_toc.yml lists these more than once: {twice}"


# --------------------------------------------------------------------------------------
# (c) Chapters are committed executed, top to bottom, without errors
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", NOTEBOOKS, ids=nb_id)
def test_notebook_is_committed_executed(path):
    """The book shows stored outputs (execute_notebooks: off), so they must be there."""
    notebook = load_notebook(path)
    counts, problems = [], []
    for index, cell in enumerate(code_cells(notebook)):
        if not cell_source(cell).strip():
            continue
        if cell.get("execution_count") is None:
            problems.append(f"code cell {index} was not executed")
        else:
            counts.append(cell["execution_count"])
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                problems.append(f"code cell {index} stores an error: {output.get('ename')}: {output.get('evalue')}")
    if counts != sorted(set(counts)):
        problems.append(f"execution counts {counts} are not increasing: re-run the notebook top to bottom")
    assert not problems, f"{path.name}:\n  " + "\n  ".join(problems)


# --------------------------------------------------------------------------------------
# (d) Equation labels cited by ddpm_core exist, and each is defined once
# --------------------------------------------------------------------------------------

# `$$ ... $$ (label)` (MyST dollarmath with a label) and `:label:` in a {math} directive.
DOLLAR_LABEL = re.compile(r"\$\$[ \t]*\(([^)\s]+)\)")
MATH_DIRECTIVE = re.compile(r"^[ \t]*(?:`{3,}|:{3,})\{math\}[^\n]*\n((?:[ \t]*:[\w-]+:[^\n]*\n)*)", re.MULTILINE)
LABEL_OPTION = re.compile(r":label:[ \t]*(\S+)")
CITED = re.compile(r"\{eq\}`([^`<]+?)`|\{eq\}`[^`]*<([^>`]+)>`")


def book_texts() -> dict[str, str]:
    """The Markdown of every page of the book: notebooks' Markdown cells and book/*.md."""
    texts = {}
    for path in NOTEBOOKS:
        cells = load_notebook(path)["cells"]
        texts[str(path.relative_to(ROOT))] = "\n".join(cell_source(c) for c in cells if c["cell_type"] == "markdown")
    for path in sorted((ROOT / "book").glob("*.md")):
        texts[str(path.relative_to(ROOT))] = path.read_text(encoding="utf-8")
    return texts


def equation_labels() -> list[tuple[str, str]]:
    """(label, file) for every equation label defined in the book, duplicates kept."""
    found = []
    for name, text in book_texts().items():
        found += [(label, name) for label in DOLLAR_LABEL.findall(text)]
        for options in MATH_DIRECTIVE.findall(text):
            found += [(label, name) for label in LABEL_OPTION.findall(options)]
    return found


def test_label_patterns_find_the_forms_the_book_uses():
    """The two label forms are recognised (so an empty result below means a real gap)."""
    text = "$$\nx = 1\n$$ (eq-a)\n\n```{math}\n:label: eq-b\n:nowrap:\ny = 2\n```\n"
    found = DOLLAR_LABEL.findall(text) + [l for o in MATH_DIRECTIVE.findall(text) for l in LABEL_OPTION.findall(o)]
    assert found == ["eq-a", "eq-b"]
    cited = ["".join(m) for m in CITED.findall("see {eq}`eq-a` and {eq}`(1) <eq-b>`")]
    assert cited == ["eq-a", "eq-b"]


def test_equation_labels_are_defined_once():
    counts = Counter(label for label, _ in equation_labels())
    where = {}
    for label, name in equation_labels():
        where.setdefault(label, []).append(name)
    twice = {label: where[label] for label, n in counts.items() if n > 1}
    assert not twice, f"equation labels defined more than once: {twice}"


def test_equations_cited_by_ddpm_core_are_defined():
    defined = {label for label, _ in equation_labels()}
    missing = {}
    for path in sorted((ROOT / "ddpm_core").glob("*.py")):
        for match in CITED.finditer(path.read_text(encoding="utf-8")):
            label = match.group(1) or match.group(2)
            if label not in defined:
                missing.setdefault(label, set()).add(path.name)
    listing = "\n  ".join(f"{label} (cited in {', '.join(sorted(files))})" for label, files in sorted(missing.items()))
    assert not missing, f"ddpm_core cites equation labels no page defines:\n  {listing}"


# --------------------------------------------------------------------------------------
# (e) The pins that keep the book building as designed
# --------------------------------------------------------------------------------------


def test_config_pins():
    config = load_config()
    assert config["repository"]["branch"] == "main", "repository.branch must be main (the launch buttons open it)"
    assert config["execute"]["execute_notebooks"] == "off", (
        "the book must render the committed outputs (execute_notebooks: off)"
    )
    extensions = config.get("sphinx", {}).get("extra_extensions", [])
    assert "sphinx-mathjax-offline" in extensions, (
        "sphinx-mathjax-offline must be in sphinx.extra_extensions (math rendered offline)"
    )


def test_requirements_pin_jupyter_book_1():
    lines = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    specs = [Requirement(line.split("#")[0].strip()) for line in lines if line.split("#")[0].strip()]
    jupyter_book = [r for r in specs if r.name.lower().replace("_", "-") == "jupyter-book"]
    assert len(jupyter_book) == 1, "requirements.txt must list jupyter-book exactly once"
    specifier = jupyter_book[0].specifier
    assert not specifier.contains("2.0.0", prereleases=True), (
        f"jupyter-book{specifier} admits 2.x, which ignores _config.yml"
    )
    assert specifier.contains("1.0.4"), f"jupyter-book{specifier} does not admit 1.0.4"


# --------------------------------------------------------------------------------------
# (f) The training chapter asks Colab for a GPU
# --------------------------------------------------------------------------------------


def test_training_chapter_requests_a_gpu():
    chapters = sorted((ROOT / "notebooks").glob("07_*train*.ipynb"))
    if not chapters:
        pytest.skip("the training chapter (notebooks/07_training*.ipynb) does not exist yet")
    for path in chapters:
        metadata = load_notebook(path)["metadata"]
        gpu = metadata.get("accelerator") == "GPU" or "gpuType" in metadata.get("colab", {})
        assert gpu, f'{path.name}: set notebook metadata "accelerator": "GPU" so that Colab opens it on a GPU runtime'


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapters_store_no_widget_state(path):
    """A stored widget view or widget state makes the book load the ipywidgets scripts from a CDN.

    The live explorers' cells are committed without outputs (``make notebooks`` runs
    ``book/strip_widget_state.py`` after executing the chapters).
    """
    import importlib.util

    spec = importlib.util.spec_from_file_location("strip_widget_state", ROOT / "book" / "strip_widget_state.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert not module.holds_widgets(load_notebook(path))
