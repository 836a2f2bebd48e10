"""Shared fixtures: tiny CPU data, the shared real datasets (skipped when absent), CLI runners."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TRAINLAB_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """One intra-op thread: on a 2-core machine two threads per process oversubscribe the cores and small
    convolutions get up to 10x slower; one thread is both faster and steadier for tiny test models."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _quiet_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs on the CPU, without a live progress bar."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")


@pytest.fixture(autouse=True)
def _library_messages_stay_per_test():
    """``trainlab.cli.main`` routes library log records to stderr for the process; undo that around each test (also
    after CLI calls in module-scoped fixtures), so a test that checks a library message (with ``caplog``) or that
    the library prints nothing never depends on which CLI test ran before it."""
    import logging

    from trainlab.cli.common import NoticeHandler

    logger = logging.getLogger("trainlab")

    def reset() -> None:
        logger.handlers[:] = [h for h in logger.handlers if not isinstance(h, NoticeHandler)]
        logger.setLevel(logging.NOTSET)

    reset()
    yield
    reset()


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the repository; tests using it skip cleanly when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    """Run ``trainlab ARGS`` in-process; returns (exit code, stdout, stderr)."""
    from trainlab.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def cli_subprocess(*args: str, cwd: Path, **kwargs) -> subprocess.Popen:
    """Start ``python -m trainlab ARGS`` in a fresh process using this checkout's package."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "trainlab", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint, **kwargs)


def _default_sigint() -> None:
    """A background job inherits SIGINT as ignored (as CI may start us); a terminal's foreground job has it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


TINY = ["--epochs", "1", "--set", "callbacks.progress.style=none"]


def interrupted_write(directory: Path, target: str, pid: int | None = None, age_s: float | None = None) -> Path:
    """The temporary file a writer killed mid-write (SIGKILL) leaves beside ``target``, named as
    ``trainlab.atomic.atomic_path`` names it: by default its writer has exited and it is older than the sweep's
    minimum age, so a resume's sweep removes it."""
    from trainlab import atomic

    if pid is None:
        child = subprocess.Popen([sys.executable, "-c", "pass"])
        child.wait()  # exited and reaped: nothing answers to its id
        pid = child.pid
    path = directory / f"{target}.{pid}-0123abcd{atomic.TMP_SUFFIX}"
    path.write_text("half a file")
    stamp = time.time() - (atomic.ORPHAN_AGE_S + 60 if age_s is None else age_s)
    os.utime(path, (stamp, stamp))
    return path
