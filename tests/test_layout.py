"""The package's shape: one idea per module, functions that fit on a screen, and sampling,
evaluation and the theory chapters independent of the training code."""

import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ddpm_core"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60  # of code, the docstring not counted


def code_lines(node: ast.FunctionDef) -> int:
    first = node.body[0]
    has_docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
    start = first.end_lineno + 1 if has_docstring and len(node.body) > 1 else first.lineno
    return node.end_lineno - start + 1


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_are_short(path):
    assert len(path.read_text().splitlines()) <= MAX_MODULE_LINES


@pytest.mark.parametrize("path", [p for p in MODULES if "source_code" not in p.parts],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_functions_fit_on_a_screen(path):
    # The source's code (ddpm_core/source_code/) is an exhibit, kept as the source wrote it.
    tree = ast.parse(path.read_text())
    long = [(n.name, code_lines(n)) for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and code_lines(n) > MAX_FUNCTION_LINES]
    assert long == []


def test_the_package_imports_without_lazy_tricks():
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "__getattr__" not in names
    assert "importlib" not in (PACKAGE / "__init__.py").read_text()


def test_no_library_module_imports_the_source_code():
    users = [p.relative_to(PACKAGE) for p in MODULES if "source_code" not in p.parts and "source_code" in p.read_text()]
    assert users == []


def chapter_code(name: str) -> str:
    nb = json.loads((ROOT / "notebooks" / name).read_text())
    return "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")


@pytest.mark.parametrize("chapter", ["01_probability.ipynb", "02_forward_process.ipynb", "03_posterior.ipynb",
                                     "04_reverse_process.ipynb"])
def test_theory_chapters_import_nothing_from_training(chapter):
    assert "ddpm_core.train" not in chapter_code(chapter)


def test_the_loss_chapter_takes_only_its_experiment_from_training():
    # Chapter 5 trains two small networks (L1 against L2); its model comes from ddpm_core.weights.
    lines = [ln for ln in chapter_code("05_loss.ipynb").splitlines() if ln.startswith("from ddpm_core.train")]
    assert lines == ["from ddpm_core.train import TrainConfig, train  # for the L1-versus-L2 experiment below"]
