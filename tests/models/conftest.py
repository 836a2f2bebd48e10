"""One intra-op thread for model tests: on a shared 2-core machine, two threads per process oversubscribe the
cores and small convolutions get ~10x slower; one thread is both faster and steadier here."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
