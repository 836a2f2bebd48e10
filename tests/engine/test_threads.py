"""Automatic CPU thread count: torch's default on a free machine, fewer threads when other processes keep the
cores busy, the user's choice always, and a batch scheduler's core pinning respected."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from trainlab.engine import runtime

CPU = torch.device("cpu")


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch):
    """A fake machine: ``configure(cores, load, default, pinned=None)``; ``load``: other runnable threads."""
    def configure(cores: int, load: float | None, default: int, pinned: int | None = None) -> None:
        monkeypatch.setattr(os, "cpu_count", lambda: cores)
        monkeypatch.setattr(runtime, "other_runnable", lambda: load)
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(pinned or cores)), raising=False)
        monkeypatch.setattr(runtime, "torch_default_threads", lambda: default)
    return configure


@pytest.mark.parametrize("cores, load, default, expected", [
    (2, 0.0, 2, 2),    # idle: torch's default
    (2, 1.0, 2, 1),    # one core taken by another job
    (2, 5.0, 2, 1),    # overloaded: never below one thread
    (16, 10.0, 16, 6),  # 6 cores free
    (16, 10.0, 4, 4),   # torch already uses fewer threads than the free cores
])
def test_threads_drop_to_the_free_cores_only_when_the_machine_is_busy(machine, cores, load, default,
                                                                        expected) -> None:
    machine(cores, load, default)
    threads, notice = runtime.choose_threads(None, CPU)
    assert threads == expected
    if expected < default:
        assert notice and f"({load:g} other runnable thread(s) on {cores} cores)" in notice and "train.threads" in notice
    else:
        assert notice is None


def test_the_users_count_wins_and_pinned_or_accelerator_runs_keep_the_default(machine) -> None:
    machine(cores=2, load=5.0, default=2)
    assert runtime.choose_threads(3, CPU) == (3, None)
    assert runtime.choose_threads(None, torch.device("cuda")) == (2, None)
    machine(cores=64, load=60.0, default=8, pinned=8)  # a scheduler gave this job 8 of 64 cores
    assert runtime.choose_threads(None, CPU) == (8, None)
    machine(cores=2, load=None, default=2)  # no /proc/loadavg (macOS, Windows)
    assert runtime.choose_threads(None, CPU) == (2, None)


def test_other_runnable_reads_linux_run_queue_without_counting_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    readings = iter(["0.50 0.40 0.30 3/120 999\n", "0.50 0.40 0.30 1/120 999\n", "0.50 0.40 0.30 3/120 999\n"])
    monkeypatch.setattr(runtime.Path, "read_text", lambda self: next(readings))
    assert runtime.other_runnable(samples=3, interval=0.0) == 2.0
    monkeypatch.setattr(runtime.Path, "read_text", lambda self: (_ for _ in ()).throw(FileNotFoundError(self)))
    assert runtime.other_runnable() is None


def test_a_busy_machine_run_logs_the_notice_and_records_its_threads(machine, tmp_path: Path, caplog) -> None:
    import json
    import logging

    import trainlab

    before = torch.get_num_threads()
    machine(cores=2, load=3.0, default=2)
    try:
        with caplog.at_level(logging.INFO, logger="trainlab"):
            run = trainlab.train(epochs=1, out=tmp_path, name="busy",
                                 overrides={"model.width": 4, "callbacks.progress.style": "none"})
    finally:
        torch.set_num_threads(before)
    assert "the CPU is busy (3 other runnable thread(s) on 2 cores): training with 1 torch thread(s) " \
        "instead of 2" in caplog.text
    assert json.loads((run.path / "summary.json").read_text())["threads"] == 1
