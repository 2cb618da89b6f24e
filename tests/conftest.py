"""Shared test fixtures (kept small)."""

from pathlib import Path

import pytest
import torch

HTML = Path(__file__).resolve().parents[1] / "_build" / "html"  # where `make book` builds the book


@pytest.fixture
def one_thread():
    """Run a test on one intra-op thread, then restore the previous setting.

    The Monte Carlo tests loop over many small tensor operations; on a small shared machine
    two threads competing with other processes are many times slower than one.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def built_html() -> Path:
    """The built HTML book (test_browser.py, test_colab.py); fails, saying how, if it is missing."""
    if not (HTML / "index.html").is_file():
        pytest.fail(
            f"{HTML} has no built book. Build it first: `make book` (or `make test`, which "
            "builds it before running the tests), or `.venv/bin/jupyter-book build .`",
            pytrace=False,
        )
    return HTML
