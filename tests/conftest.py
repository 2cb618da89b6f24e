"""Shared test fixtures (kept small)."""

import pytest
import torch


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
