"""Atomic, code-free checkpoints.

A checkpoint is a directory ``checkpoints/<kind>-<step>/`` holding

* ``model.safetensors`` — the weights (safetensors never executes code on load);
* ``state.pt`` — optimizer, schedule, RNG and callback states: tensors and plain containers only, loaded with
  ``torch.load(weights_only=True)``;
* ``meta.json`` — epoch, step, metrics, versions;
* ``manifest.json`` — written last: size and sha256 of every other file.

It is written into a hidden temporary directory, each file fsynced, then renamed into place, and only then are
older checkpoints of the same kind removed — so a crash at any moment leaves the previous checkpoint intact.
A directory without a valid manifest is never loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
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
        shutil.rmtree(old, ignore_errors=True)
    return final


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
                 for name in (MODEL_FILE, STATE_FILE, META_FILE)}
        (tmp / MANIFEST_FILE).write_text(json.dumps({"files": files}, indent=2))
        for name in (MODEL_FILE, STATE_FILE, META_FILE, MANIFEST_FILE):
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
    """Raise :class:`CheckpointError` unless every file matches the manifest."""
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.is_file():
        raise CheckpointError(f"{path} is incomplete: it has no {MANIFEST_FILE} (an interrupted write?)")
    try:
        files = json.loads(manifest_path.read_text())["files"]
    except (ValueError, KeyError) as err:
        raise CheckpointError(f"{manifest_path} is unreadable: {err}") from None
    for name, expected in files.items():
        file = path / name
        if not file.is_file() or file.stat().st_size != expected["bytes"] or _sha256(file) != expected["sha256"]:
            raise CheckpointError(f"{file} does not match {MANIFEST_FILE}: the checkpoint is truncated or corrupt")


def list_complete(directory: Path, kind: str) -> list[Path]:
    """Checkpoint directories of ``kind`` that have a manifest, oldest first (by step)."""
    if not directory.is_dir():
        return []
    found = [p for p in directory.glob(f"{kind}-*") if p.is_dir() and (p / MANIFEST_FILE).is_file()]
    return sorted(found, key=lambda p: p.name)


def clean_leftovers(directory: Path) -> list[Path]:
    """Remove temporary directories left by interrupted writes; return what was removed."""
    removed = [p for p in directory.glob(f"{TMP_PREFIX}*")] if directory.is_dir() else []
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def latest(directory: Path, kind: str = "last") -> Path | None:
    """The newest complete checkpoint of ``kind``, or None."""
    found = list_complete(directory, kind)
    return found[-1] if found else None


def latest_valid(directory: Path, kind: str = "last") -> Path | None:
    """The newest checkpoint of ``kind`` that matches its manifest; damaged newer ones are skipped with a warning."""
    for path in reversed(list_complete(directory, kind)):
        try:
            verify(path)
        except CheckpointError as err:
            warnings.warn(f"skipping damaged checkpoint: {err}", stacklevel=2)
            continue
        return path
    return None


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
    meta = json.loads((path / META_FILE).read_text())
    return Checkpoint(path=path, model=model, state=state, meta=meta)
