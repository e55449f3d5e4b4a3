"""Shared pytest fixtures."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a module: the agents' networks are tiny, so it is as fast, it is immune to OpenMP
    oversubscription on busy CI cores, and runs compared bit for bit must share the thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
