"""Atomic, code-free checkpoints.

A checkpoint is a directory ``checkpoints/<kind>-<step>/`` holding

* ``model.safetensors`` — the weights (safetensors never executes code on load);
* ``state.pt`` — optimizer, schedule, RNG and callback states: tensors and plain containers only, loaded with
  ``torch.load(weights_only=True)``;
* ``meta.json`` — epoch, step, metrics, versions;
* ``manifest.json`` — written last: size and sha256 of every other file.

It is written into a hidden temporary directory, each file fsynced, then renamed into place, and only then are
older checkpoints of the same kind removed — so a crash at any moment leaves the previous checkpoint intact.

A directory is never loaded unless its manifest lists exactly these three files, by plain name, and each one on
disk is a regular file of the recorded size and sha256 (:func:`verify`).  Only real directories named
``<kind>-<digits>`` directly inside the checkpoint directory count as checkpoints of a run: a symlink to
somewhere else, or a name like ``last-latest``, is ignored with a warning (:func:`list_complete`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from trainlab import atomic

MODEL_FILE = "model.safetensors"
STATE_FILE = "state.pt"
META_FILE = "meta.json"
MANIFEST_FILE = "manifest.json"
TMP_PREFIX = ".tmp-"
CONTENT_FILES = (MODEL_FILE, STATE_FILE, META_FILE)  # what the manifest must list: no more, no fewer
MAX_MANIFEST_BYTES = 64 * 1024  # ours is ~0.5 kB; a bigger one is not ours, and is not read into memory
_SHA256 = re.compile(r"[0-9a-f]{64}")
_DAMAGED = "the checkpoint is truncated or corrupt; delete {name} to fall back on the run's other checkpoints"

logger = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete, corrupt or unsafe to load."""


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint."""

    path: Path
    model: dict[str, torch.Tensor]
    state: dict[str, Any]
    meta: dict[str, Any]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def evaluation_weights(ckpt: Checkpoint) -> dict[str, torch.Tensor]:
    """The weights a run is judged by: its EMA average when it kept one, else the trained weights."""
    ema_state = ckpt.state.get("ema")
    return ema_state["weights"] if ema_state else ckpt.model


def _weights_for_safetensors(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses shared or strided storage: give each tensor its own contiguous CPU copy."""
    return {name: t.detach().to("cpu", copy=True).contiguous() for name, t in weights.items()}


def save(directory: Path, kind: str, step: int, model: dict[str, torch.Tensor], state: dict[str, Any],
         meta: dict[str, Any], keep: int = 1) -> Path:
    """Write a checkpoint of ``kind`` (``last``, ``best``, …) atomically and prune older ones of that kind.

    A failed write (disk full, permissions) leaves no temporary files and raises :class:`CheckpointError`
    naming the path; the previous checkpoints are untouched.
    """
    final = directory / f"{kind}-{step:09d}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _write(directory, final, model, state, meta)
    except OSError as err:
        raise CheckpointError(f"cannot write checkpoint {final}: {err.strerror or err}; the previous checkpoint "
                              "is unchanged — free space or fix permissions, then rerun with --resume") from err
    for old in list_complete(directory, kind)[:-keep] if keep > 0 else []:
        _remove(old)
    return final


def _remove(checkpoint_dir: Path) -> None:
    """Delete an old checkpoint so that no moment shows it half deleted: rename it to a temporary name first (one
    atomic step; :func:`clean_leftovers` finishes the job if the process dies), then delete the files."""
    doomed = checkpoint_dir.with_name(f"{TMP_PREFIX}old-{checkpoint_dir.name}")
    try:
        os.rename(checkpoint_dir, doomed)
    except OSError:
        return  # already gone, or not ours to move: leave it
    shutil.rmtree(doomed, ignore_errors=True)


def _write(directory: Path, final: Path, model: dict[str, torch.Tensor], state: dict[str, Any],
           meta: dict[str, Any]) -> None:
    kind = final.name.rsplit("-", 1)[0]
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{kind}-", dir=directory))
    try:
        save_file(_weights_for_safetensors(model), str(tmp / MODEL_FILE))
        with open(tmp / STATE_FILE, "wb") as handle:
            torch.save(state, handle)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
        files = {name: {"bytes": (tmp / name).stat().st_size, "sha256": _sha256(tmp / name)}
                 for name in CONTENT_FILES}
        (tmp / MANIFEST_FILE).write_text(json.dumps({"files": files}, indent=2))
        for name in (*CONTENT_FILES, MANIFEST_FILE):
            atomic.fsync_file(tmp / name)
        atomic.fsync_dir(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
        atomic.fsync_dir(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def verify(path: Path) -> None:
    """Raise :class:`CheckpointError` unless ``path`` is a checkpoint whose files are exactly what its manifest
    records: the manifest lists precisely :data:`CONTENT_FILES` by plain name, and each is a regular file in
    ``path`` with the recorded size and sha256.  A manifest that lists less (or nothing) would vouch for files it
    never checked, and a name like ``../x`` would point outside the checkpoint, so both are refused."""
    expected = _read_manifest(path)
    for name in CONTENT_FILES:
        _check_file(path, name, expected[name])


def _refuse(path: Path, problem: str) -> CheckpointError:
    """One wording for every refusal: which checkpoint, what is wrong, what to do."""
    return CheckpointError(f"checkpoint {path} is refused: {problem}; it was changed after trainlab wrote it — "
                           f"delete {path.name} to fall back on the run's other checkpoints")


def _read_manifest(path: Path) -> dict[str, dict[str, Any]]:
    """The manifest's ``files`` table, checked for shape: exactly the content files, each ``{bytes, sha256}``."""
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.is_file():
        raise CheckpointError(f"{path} is incomplete: it has no {MANIFEST_FILE} (an interrupted write?)")
    if manifest_path.is_symlink():
        raise _refuse(path, f"{MANIFEST_FILE} is a symlink, not the file trainlab wrote")
    size = manifest_path.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise _refuse(path, f"{MANIFEST_FILE} is {size} bytes, more than the {MAX_MANIFEST_BYTES} a manifest can be")
    try:
        manifest = json.loads(manifest_path.read_bytes())
    except (ValueError, RecursionError) as err:  # JSONDecodeError, UnicodeDecodeError; nesting thousands deep
        raise _refuse(path, f"{MANIFEST_FILE} is not valid JSON ({err})") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict):
        raise _refuse(path, f"{MANIFEST_FILE} must be an object with a \"files\" object")
    for name in files:
        if not _plain_name(name):
            raise _refuse(path, f"{MANIFEST_FILE} lists {name!r}, which is not a plain file name in the checkpoint")
    missing = [name for name in CONTENT_FILES if name not in files]
    extra = sorted(set(files) - set(CONTENT_FILES))
    if missing:
        raise _refuse(path, f"{MANIFEST_FILE} does not list {', '.join(missing)}")
    if extra:
        raise _refuse(path, f"{MANIFEST_FILE} lists unexpected {', '.join(extra)} (a checkpoint holds exactly "
                            f"{', '.join(CONTENT_FILES)})")
    for name in CONTENT_FILES:
        _check_entry(path, name, files[name])
    return files


def _plain_name(name: str) -> bool:
    """A bare file name: no directory part, no parent reference, not absolute, on any platform."""
    return bool(name) and "/" not in name and "\\" not in name and name not in (".", "..") and ":" not in name \
        and not os.path.isabs(name)


def _check_entry(path: Path, name: str, entry: Any) -> None:
    """``{"bytes": non-negative int, "sha256": 64 lowercase hex digits}``."""
    size = entry.get("bytes") if isinstance(entry, dict) else None
    digest = entry.get("sha256") if isinstance(entry, dict) else None
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise _refuse(path, f"{MANIFEST_FILE} entry {name!r} needs \"bytes\": a non-negative integer, got {size!r}")
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise _refuse(path, f"{MANIFEST_FILE} entry {name!r} needs \"sha256\": 64 hex digits, got {digest!r}")


def _check_file(path: Path, name: str, expected: dict[str, Any]) -> None:
    """The file exists as a regular file (not a link to elsewhere) of the recorded size, then its hash matches."""
    file = path / name
    try:
        info = file.lstat()
    except FileNotFoundError:
        raise _refuse(path, f"{name} is listed in {MANIFEST_FILE} but missing") from None
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISREG(info.st_mode):
        raise _refuse(path, f"{name} is not a regular file (a symlink or directory)")
    if info.st_size != expected["bytes"]:  # before hashing: a huge recorded or actual size costs nothing
        raise CheckpointError(f"{file} does not match {MANIFEST_FILE} ({info.st_size} bytes, recorded "
                              f"{expected['bytes']}): {_DAMAGED.format(name=path.name)}")
    if _sha256(file) != expected["sha256"]:
        raise CheckpointError(f"{file} does not match {MANIFEST_FILE} (sha256 differs): "
                              f"{_DAMAGED.format(name=path.name)}")


def step_of(path: Path, kind: str) -> int | None:
    """The step in a ``<kind>-<digits>`` directory name, or None for any other name."""
    match = re.fullmatch(rf"{re.escape(kind)}-(\d+)", path.name)
    return int(match.group(1)) if match else None


def list_complete(directory: Path, kind: str) -> list[Path]:
    """Checkpoint directories of ``kind`` that have a manifest, oldest first (by step, as a number).

    Only real directories named ``<kind>-<digits>`` count: a symlink could make a run load another run's (or
    anyone's) weights, and a name like ``last-zzz`` would otherwise sort after every real step.
    """
    found = [(step, p) for p, step in _candidates(directory, kind) if step is not None and not p.is_symlink()
             and (p / MANIFEST_FILE).is_file()]
    return [p for _, p in sorted(found, key=lambda item: (item[0], item[1].name))]


def _candidates(directory: Path, kind: str) -> list[tuple[Path, int | None]]:
    if not directory.is_dir():
        return []
    return [(p, step_of(p, kind)) for p in directory.glob(f"{kind}-*") if p.is_dir()]


def _warn_ignored(directory: Path, kind: str) -> None:
    """Say which directories that look like checkpoints are not treated as such, and why."""
    for path, step in _candidates(directory, kind):
        if path.is_symlink():
            logger.warning("ignoring %s: a checkpoint must be a directory inside %s, not a symlink to %s",
                           path, directory, os.path.realpath(path))
        elif step is None:
            logger.warning("ignoring %s: not a checkpoint name (%s-<step digits>)", path, kind)


def clean_leftovers(directory: Path) -> list[Path]:
    """Remove temporary directories left by interrupted writes; return what was removed."""
    removed = [p for p in directory.glob(f"{TMP_PREFIX}*")] if directory.is_dir() else []
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def latest(directory: Path, kind: str = "last") -> Path | None:
    """The newest complete checkpoint of ``kind``, or None (not verified: :func:`load` verifies)."""
    _warn_ignored(directory, kind)
    found = list_complete(directory, kind)
    return found[-1] if found else None


def newest_first(directory: Path, kind: str = "last") -> list[Path]:
    """Complete checkpoints of ``kind``, newest first: the order to try them in when resuming."""
    _warn_ignored(directory, kind)
    return list_complete(directory, kind)[::-1]


def latest_valid(directory: Path, kind: str = "last") -> Path | None:
    """The newest checkpoint of ``kind`` that matches its manifest and has a readable meta.json; damaged newer
    ones are skipped with a warning naming the problem."""
    for path in newest_first(directory, kind):
        try:
            verify(path)
            read_meta(path)
        except CheckpointError as err:
            logger.warning("skipping damaged checkpoint: %s", err)
            continue
        return path
    return None


def read_meta(path: Path) -> dict[str, Any]:
    """``meta.json`` as a dict; anything else is a damaged checkpoint."""
    try:
        meta = json.loads((path / META_FILE).read_bytes())
    except (OSError, ValueError, RecursionError) as err:
        raise _refuse(path, f"{META_FILE} is not readable JSON ({err})") from None
    if not isinstance(meta, dict):
        raise _refuse(path, f"{META_FILE} must hold a JSON object, not {type(meta).__name__}")
    return meta


def load(path: Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Verify and load a checkpoint directory; never unpickles code."""
    verify(path)
    try:
        model = load_file(str(path / MODEL_FILE), device=str(map_location))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path / MODEL_FILE} is not a valid safetensors file: {err}") from None
    try:
        state = torch.load(path / STATE_FILE, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError or others for unsafe/corrupt files
        raise CheckpointError(f"{path / STATE_FILE} cannot be loaded safely: {err}") from None
    if not isinstance(state, dict):
        raise _refuse(path, f"{STATE_FILE} must hold a dict of trainer state, not {type(state).__name__}")
    meta = read_meta(path)
    return Checkpoint(path=path, model=model, state=state, meta=meta)
