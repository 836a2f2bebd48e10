"""Kill fuzz: SIGKILL a run that checkpoints every step, at random moments, 12 times; resume must always work.

(Each kill costs a process start, about 5 s on the 2-core CI machine: 12 keeps the slow suite inside CI's budget.)
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO_ROOT

from trainlab.engine import checkpoint

# Runs the CLI with every checkpoint file write slowed down, so kills often land inside a write.
SLOW_WRITER = """
import sys, time
import trainlab.atomic as atomic
original = atomic.fsync_file
def slow(path):
    time.sleep(0.005)
    original(path)
atomic.fsync_file = slow
from trainlab.cli import main
sys.exit(main(sys.argv[1:]))
"""

KILLS = 12
TRAIN = ["train", "--epochs", "60", "--name", "fuzz", "--set", "callbacks.checkpoint.every_steps=1",
         "--set", "callbacks.checkpoint.keep=2", "--set", "model.width=4", "--set", "callbacks.progress.style=none"]


def start(tmp_path: Path, args: list[str]) -> subprocess.Popen:
    script = tmp_path / "slow_writer.py"
    script.write_text(SLOW_WRITER)
    env = {"PYTHONPATH": str(REPO_ROOT), "CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin"}
    return subprocess.Popen([sys.executable, str(script), *args], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def newest_step(ckpt_dir: Path) -> int:
    complete = checkpoint.list_complete(ckpt_dir, "last")
    return int(complete[-1].name.split("-")[1]) if complete else -1


def wait_for_progress(ckpt_dir: Path, proc: subprocess.Popen, after: int, timeout: float = 180) -> None:
    """Block until the process has written a checkpoint newer than step ``after``."""
    deadline = time.time() + timeout
    while newest_step(ckpt_dir) <= after:
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline, "no new checkpoint appeared"
        time.sleep(0.01)


@pytest.mark.slow
def test_sigkill_never_leaves_an_unloadable_checkpoint(tmp_path: Path) -> None:
    rng = random.Random(0)
    ckpt_dir = tmp_path / "runs" / "fuzz" / "checkpoints"
    proc = start(tmp_path, TRAIN)
    wait_for_progress(ckpt_dir, proc, after=-1)
    proc.kill()
    proc.wait()
    steps_seen = []
    for _ in range(KILLS):
        complete = checkpoint.list_complete(ckpt_dir, "last")
        assert complete, "every kill must leave at least one complete checkpoint"
        for path in complete:
            checkpoint.load(path)  # verifies the manifest and loads safely
        newest = checkpoint.latest_valid(ckpt_dir, "last")
        assert newest == complete[-1]
        steps_seen.append(int(newest.name.split("-")[1]))
        proc = start(tmp_path, ["train", "--resume", "runs/fuzz"])
        wait_for_progress(ckpt_dir, proc, after=steps_seen[-1])
        time.sleep(rng.uniform(0.0, 0.3))  # a random moment in training; writes are slowed, so often inside one
        proc.kill()
        proc.wait()
    assert steps_seen == sorted(steps_seen), "resume must never go back to an older checkpoint"
    assert steps_seen[-1] > steps_seen[0], "training made progress across the kills"
    summary = json.loads((tmp_path / "runs" / "fuzz" / "summary.json").read_text())
    finish = start(tmp_path, ["train", "--resume", "runs/fuzz", "--epochs", str(summary["epochs_completed"] + 1)])
    _, err = finish.communicate(timeout=300)
    assert finish.returncode == 0, err
    assert not list(ckpt_dir.glob(".tmp-*")), "leftovers of interrupted writes are cleaned up on resume"
