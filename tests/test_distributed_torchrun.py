"""The real launchers, end to end: ``trainlab train --devices 2`` and ``torchrun … -m trainlab train`` (gloo, CPU).

Each test starts fresh Python processes (torchrun's agent and two ranks), so each costs a few imports of torch:
slow on a busy machine, hence marked slow.  The in-process checks of the same behaviour are in
tests/test_distributed.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = ["--model", "mlp", "--data", "moons", "--set", "data.n=241", "--epochs", "2", "--batch-size", "16",
        "--set", "callbacks.progress.style=none", "--set", "callbacks.plot_curves=null"]
pytestmark = pytest.mark.slow


def _run(args: list[str], cwd: Path, timeout: float = 300, **env: str) -> tuple[subprocess.CompletedProcess, float]:
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "TRAINLAB_DIST_TIMEOUT": "60", **env}
    started = time.monotonic()
    done = subprocess.run([sys.executable, *args], cwd=cwd, env=environment, capture_output=True, text=True,
                          timeout=timeout)
    return done, time.monotonic() - started


def test_devices_2_trains_one_run_through_torchrun(tmp_path: Path) -> None:
    done, _ = _run(["-m", "trainlab", "train", "--devices", "2", *TINY, "--out", "runs", "--name", "two"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("run saved in") == 1  # rank 0 alone prints the result
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["two"]
    summary = json.loads((tmp_path / "runs" / "two" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["status"] == "completed" and summary["batch_size"] == 16


def test_devices_2_refuses_a_batch_the_ranks_cannot_share(tmp_path: Path) -> None:
    args = ["-m", "trainlab", "train", "--devices", "2", *TINY, "--batch-size", "15", "--out", "runs"]
    done, _ = _run(args, tmp_path)
    assert done.returncode != 0
    assert "error: train.batch_size=15 cannot be split evenly over 2 processes; use a multiple of 2" in done.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_torchrun_job_with_a_failing_rank_exits_non_zero_naming_it(tmp_path: Path) -> None:
    args = ["-m", "torch.distributed.run", "--nproc-per-node", "2", "--rdzv-backend", "c10d",
            "--rdzv-endpoint", "localhost:0", "--max-restarts", "0", str(REPO / "tests" / "distributed_fail_entry.py"),
            "train", *TINY, "--out", "runs", "--name", "fails"]
    done, seconds = _run(args, tmp_path, TRAINLAB_TEST_FAIL_RANK="1", TRAINLAB_DIST_TIMEOUT="30")
    assert done.returncode != 0
    assert "rank 1 of 2 stopped: RuntimeError: injected failure at step 3" in done.stderr
    assert "rank      : 1" in done.stderr  # torchrun's own failure summary names the same rank
    summary = json.loads((tmp_path / "runs" / "fails" / "summary.json").read_text())
    assert summary["status"] == "crashed"
    assert seconds < 240
