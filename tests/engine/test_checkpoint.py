"""Checkpoints: atomic writes, manifests, corruption detection, safe loading."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from trainlab.engine import checkpoint
from trainlab.engine.checkpoint import CheckpointError


def save(directory: Path, step: int, value: float, kind: str = "last", keep: int = 1) -> Path:
    weights = {"w": torch.full((3,), value)}
    return checkpoint.save(directory, kind, step, weights, {"step": step, "nested": {"t": torch.ones(2)}},
                           {"step": step}, keep=keep)


def test_round_trip_and_pruning(tmp_path: Path) -> None:
    save(tmp_path, 1, 1.0)
    path = save(tmp_path, 2, 2.0)
    assert [p.name for p in checkpoint.list_complete(tmp_path, "last")] == ["last-000000002"]
    loaded = checkpoint.load(path)
    assert torch.equal(loaded.model["w"], torch.full((3,), 2.0))
    assert loaded.state["step"] == 2 and torch.equal(loaded.state["nested"]["t"], torch.ones(2))
    assert loaded.meta == {"step": 2}


def test_keep_several(tmp_path: Path) -> None:
    for step in range(1, 5):
        save(tmp_path, step, float(step), keep=2)
    assert [p.name for p in checkpoint.list_complete(tmp_path, "last")] == ["last-000000003", "last-000000004"]


def test_failure_during_write_keeps_previous_and_leaves_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save(tmp_path, 1, 1.0)

    def broken_save(obj, handle, *args, **kwargs):
        handle.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", broken_save)
    with pytest.raises(CheckpointError, match="cannot write checkpoint .*last-000000002: No space left on device"):
        save(tmp_path, 2, 2.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last-000000001"]
    assert torch.equal(checkpoint.load(checkpoint.latest(tmp_path)).model["w"], torch.full((3,), 1.0))


def test_latest_valid_falls_back_past_a_damaged_newest(tmp_path: Path) -> None:
    save(tmp_path, 1, 1.0, keep=2)
    newest = save(tmp_path, 2, 2.0, keep=2)
    (newest / checkpoint.MODEL_FILE).write_bytes(b"garbage")
    with pytest.warns(UserWarning, match=f"skipping damaged checkpoint: {newest / checkpoint.MODEL_FILE}"):
        assert checkpoint.latest_valid(tmp_path).name == "last-000000001"


def test_directory_without_manifest_is_ignored_and_leftovers_cleaned(tmp_path: Path) -> None:
    save(tmp_path, 1, 1.0)
    (tmp_path / "last-000000009").mkdir()  # a half-written directory from a crash
    (tmp_path / ".tmp-last-abc").mkdir()
    assert checkpoint.latest(tmp_path).name == "last-000000001"
    assert [p.name for p in checkpoint.clean_leftovers(tmp_path)] == [".tmp-last-abc"]
    with pytest.raises(CheckpointError, match="has no manifest.json"):
        checkpoint.load(tmp_path / "last-000000009")


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupt_file_is_detected(tmp_path: Path, damage: str) -> None:
    path = save(tmp_path, 1, 1.0)
    target = path / checkpoint.MODEL_FILE
    data = bytearray(target.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        checkpoint.load(path)


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_state_file_with_code_is_refused(tmp_path: Path) -> None:
    path = save(tmp_path, 1, 1.0)
    marker = tmp_path / "pwned"
    (path / checkpoint.STATE_FILE).write_bytes(pickle.dumps({"x": _Exploit(marker)}))
    manifest = path / checkpoint.MANIFEST_FILE
    manifest.unlink()  # rebuild a consistent manifest so only the pickle itself is hostile
    files = {name: {"bytes": (path / name).stat().st_size, "sha256": checkpoint._sha256(path / name)}
             for name in (checkpoint.MODEL_FILE, checkpoint.STATE_FILE, checkpoint.META_FILE)}
    import json

    manifest.write_text(json.dumps({"files": files}))
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        checkpoint.load(path)
    assert not marker.exists()
