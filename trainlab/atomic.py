"""Crash-safe file writing: the one way trainlab writes a file that someone may read later.

Every file goes to a temporary name beside its target, is flushed and fsynced, and is then renamed over the
target (and the directory fsynced), so a reader — or a resume after a crash or power loss — sees either the old
complete file or the new complete file, never a half-written one.  JSON is written strict (every parser reads
it: non-finite floats are spelled as strings, :data:`NON_FINITE`), and data frames as CSV, the same way.  It sits in the bottom layer because both the
checkpoint format (``engine``) and the run directory (``rundir``) write through it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import numbers
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any, Iterator

logger = logging.getLogger(__name__)

TMP_SUFFIX = ".tmp"
# A writer's temporary name (see atomic_path): the target's name, the writer's process id, a random part.
_TMP_NAME = re.compile(rf"^.+\.(\d+)-[0-9a-f]{{8}}{re.escape(TMP_SUFFIX)}$")
ORPHAN_AGE_S = 600.0


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (a no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Flush a file another library wrote (safetensors, matplotlib, pandas) to the disk."""
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s new content to; on success it is fsynced and renamed onto
    ``path``; on any error the temporary file is removed and ``path`` is left as it was.

    The temporary name is the writer's own (process id and a random part): two writers of one file — search
    workers finishing together both rewrite ``trials.csv`` — each rename a complete file, the last one wins, and
    neither renames or deletes the other's half-written one."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{secrets.token_hex(4)}{TMP_SUFFIX}")
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def sweep_orphans(directory: Path, min_age_s: float = ORPHAN_AGE_S) -> list[Path]:
    """Remove the temporary files of writers killed mid-write (SIGKILL, power loss: :func:`atomic_path` had no
    chance to) under ``directory``; return what was removed.

    Why the two conditions: a file is an orphan only if its writer's process no longer exists on this machine
    *and* it has not changed for ``min_age_s`` seconds, so neither a live writer here nor one on another machine
    sharing the directory (whose process id means nothing here) loses a file it is still writing.  Not on Windows,
    where probing a process id with signal 0 would interrupt it.
    """
    if os.name == "nt" or not directory.is_dir():
        return []
    now, removed = time.time(), []
    for path in directory.rglob(f"*{TMP_SUFFIX}"):
        match = _TMP_NAME.match(path.name)
        if match and path.is_file() and not _process_exists(int(match[1])) and now - path.stat().st_mtime >= min_age_s:
            path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        logger.info("removed %d temporary file(s) left by interrupted writes in %s", len(removed), directory)
    return removed


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process, or an id out of range: keep the file
    return True


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically and durably."""
    write_bytes(path, text.encode("utf-8"))


# How write_json spells the floats strict JSON has no literal for; read_summary reads them back.
NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def write_json(path: Path, data: Any) -> None:
    """Write strict JSON atomically and durably (temporary file, fsync, rename).

    Non-finite floats become ``"NaN"``, ``"Infinity"`` or ``"-Infinity"`` (:data:`NON_FINITE`), so every
    JSON parser accepts the file; ``allow_nan=False`` makes any value that slipped through an error here, not
    a file other programs cannot read.
    """
    write_text(path, json.dumps(finite_json(data), indent=2, default=str, allow_nan=False))


def finite_json(value: Any) -> Any:
    """``value`` with every non-finite float, in nested dicts, lists and tuples, replaced by its string spelling.

    Other real numbers that are not integers (numpy's float32 too, which ``json`` cannot write) become floats.
    """
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        value = float(value)
        return value if math.isfinite(value) else "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, dict):
        return {key: finite_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(item) for item in value]
    return value


def restore_non_finite(value: Any) -> Any:
    """Undo :func:`finite_json`: ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` become floats again, at any depth."""
    if isinstance(value, str):
        return NON_FINITE.get(value, value)
    if isinstance(value, dict):
        return {key: restore_non_finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [restore_non_finite(item) for item in value]
    return value


def write_csv(path: Path, frame: Any) -> None:
    """Write a pandas data frame as CSV (no index) atomically and durably."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
