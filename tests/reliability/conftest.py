"""Fixtures for the reliability tests: one CPU thread (fast and reproducible on busy machines), tiny runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.reliability.helpers import QUIET


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """Intra-op threads only slow these tiny models down, and a fixed count keeps float sums identical."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished one-epoch digits run (best and last checkpoints)."""
    import trainlab

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("runs")
    path = trainlab.train(epochs=1, out=out, name="tiny", overrides=QUIET).path
    torch.set_num_threads(previous)
    return path
