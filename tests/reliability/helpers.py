"""Helpers for the reliability tests: fresh-process runners and the tiny-run settings."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from trainlab.engine.trainer import Trainer

REPO_ROOT = Path(__file__).resolve().parents[2]
QUIET = {"callbacks.progress.style": "none", "callbacks.plot_curves": None, "model.width": 4}
QUIET_ARGS = ["--set", "callbacks.progress.style=none", "--set", "callbacks.plot_curves=null",
              "--set", "model.width=4"]


def run_python(*args: str | Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python ARGS`` in a fresh process with this checkout's trainlab, on one CPU thread."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def trainlab_cli(*args: str | Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m trainlab ARGS`` in a fresh process."""
    return run_python("-m", "trainlab", *args, cwd=cwd, timeout=timeout)


@contextlib.contextmanager
def ctrl_c_after_step(step: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Inside the block, training raises KeyboardInterrupt (a simulated Ctrl-C) right after batch ``step``'s
    callbacks ran, so the run checkpoints and stops as it would for a user."""
    original = Trainer._emit

    def emit(self: Trainer, hook: str) -> None:
        original(self, hook)
        if hook == "on_batch_end" and self.state.step == step:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "_emit", emit)
        yield
