"""The run directory: where a run's config, data description, metrics, checkpoints and summary live."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import time
from pathlib import Path
from typing import Any, Iterator

import torch

from trainlab.config import RunConfig, dump_yaml

CONFIG_FILE = "config.yaml"
DATA_FILE = "data.json"
SUMMARY_FILE = "summary.json"
METRICS_FILE = "metrics.csv"
CHECKPOINT_DIR = "checkpoints"
LOCK_FILE = ".lock"


class RunDirError(RuntimeError):
    """A run directory is missing, unreadable or not writable."""


def default_name(cfg: RunConfig) -> str:
    """``<model>-<data>-<YYYYmmdd-HHMMSS>``."""
    return f"{cfg.model.name}-{cfg.data.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def create(cfg: RunConfig) -> Path:
    """Make a fresh directory ``<out>/<name>``; an existing name gets a ``-2``, ``-3``… suffix, never reused."""
    out = Path(cfg.train.out)
    name = cfg.train.name or default_name(cfg)
    if not re.fullmatch(r"[\w.\-]+", name):
        raise RunDirError(f"run name '{name}' may only use letters, digits, '.', '_' and '-'")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunDirError(f"cannot create output directory {out}: {err.strerror}; choose another with --out") from None
    if not os.access(out, os.W_OK):
        raise RunDirError(f"output directory {out} is not writable; choose another with --out")
    for suffix in ("", *(f"-{i}" for i in range(2, 10_000))):
        path = out / f"{name}{suffix}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RunDirError(f"too many runs named {name} in {out}")


@contextlib.contextmanager
def exclusive(run_dir: Path) -> Iterator[None]:
    """Hold the run directory for one training process: a second ``train --resume`` of the same run while the
    first still trains would interleave checkpoints and metrics, so it is refused, naming the holder's PID.

    An advisory ``flock`` on ``.lock``: the operating system drops it when the holder exits, however it exits, so
    a killed run never leaves a stale lock.  Where ``fcntl`` does not exist (Windows) runs are not locked.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(run_dir / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise RunDirError(f"{run_dir} is in use by another training process (pid {holder}); wait for it to "
                              "finish or stop it (Ctrl-C saves a checkpoint), then resume") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    if not path.is_file():
        raise RunDirError(f"{path} is missing: is {path.parent} a trainlab run directory?")
    return json.loads(path.read_text())


def save_config(run_dir: Path, cfg: RunConfig) -> None:
    dump_yaml(cfg, run_dir / CONFIG_FILE)


def versions() -> dict[str, str]:
    from trainlab import __version__

    return {"trainlab": __version__, "torch": torch.__version__, "python": platform.python_version()}


def require_run(path: str | Path) -> Path:
    """The path as a run directory, or a clear error naming what is missing."""
    run_dir = Path(path)
    if not (run_dir / CONFIG_FILE).is_file():
        raise RunDirError(f"{run_dir} is not a trainlab run directory (no {CONFIG_FILE}); list runs with `trainlab runs`")
    return run_dir


def find_runs(root: str | Path) -> list[Path]:
    """Run directories directly under ``root`` (those holding a config.yaml), sorted by name."""
    root = Path(root)
    return sorted(p for p in root.iterdir() if (p / CONFIG_FILE).is_file()) if root.is_dir() else []


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def check_version(run_dir: Path) -> None:
    """Refuse a run directory written by a newer trainlab, whose files this version may misread."""
    from trainlab import __version__

    path = run_dir / SUMMARY_FILE
    written_by = json.loads(path.read_text()).get("versions", {}).get("trainlab") if path.is_file() else None
    if written_by and _version_tuple(written_by) > _version_tuple(__version__):
        raise RunDirError(f"{run_dir} was written by trainlab {written_by}, newer than this trainlab {__version__}; "
                          "upgrade trainlab to use it")

