"""Checkpoints: atomic writes, manifests, corruption detection, safe loading."""

from __future__ import annotations

import json
import os
import pickle
import re
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


def test_latest_valid_falls_back_past_a_damaged_newest(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    save(tmp_path, 1, 1.0, keep=2)
    newest = save(tmp_path, 2, 2.0, keep=2)
    (newest / checkpoint.MODEL_FILE).write_bytes(b"garbage")
    assert checkpoint.latest_valid(tmp_path).name == "last-000000001"
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert caplog.records[0].getMessage().startswith(f"skipping damaged checkpoint: {newest / checkpoint.MODEL_FILE}")


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
    manifest.write_text(json.dumps({"files": files}))
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        checkpoint.load(path)
    assert not marker.exists()


def rewrite_manifest(path: Path, manifest: object) -> None:
    (path / checkpoint.MANIFEST_FILE).write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))


def entry(file: Path) -> dict[str, object]:
    return {"bytes": file.stat().st_size, "sha256": checkpoint._sha256(file)}


def consistent_manifest(path: Path) -> None:
    """Re-record every file as it now is: only the content itself is hostile, the manifest agrees with it."""
    rewrite_manifest(path, {"files": {name: entry(path / name) for name in checkpoint.CONTENT_FILES}})


def test_a_manifest_that_lists_nothing_does_not_vouch_for_swapped_weights(tmp_path: Path) -> None:
    path = save(tmp_path, 1, 1.0)
    swapped = save(tmp_path / "other", 1, 666.0)
    (path / checkpoint.MODEL_FILE).write_bytes((swapped / checkpoint.MODEL_FILE).read_bytes())
    rewrite_manifest(path, {"files": {}})
    with pytest.raises(CheckpointError, match=rf"checkpoint {path} is refused: manifest.json does not list "
                                              "model.safetensors, state.pt, meta.json"):
        checkpoint.load(path)


def test_a_manifest_entry_outside_the_checkpoint_is_never_followed(tmp_path: Path) -> None:
    path = save(tmp_path / "checkpoints", 1, 1.0)
    outside = tmp_path / "x"
    outside.write_bytes(b"anything")
    files = {name: entry(path / name) for name in checkpoint.CONTENT_FILES}
    rewrite_manifest(path, {"files": {**files, "../../x": entry(outside)}})
    with pytest.raises(CheckpointError, match=r"lists '\.\./\.\./x', which is not a plain file name"):
        checkpoint.verify(path)


GOOD = {"bytes": 3, "sha256": "0" * 64}


@pytest.mark.parametrize("manifest, problem", [
    ("{not json", "manifest.json is not valid JSON"),
    ([1, 2], 'must be an object with a "files" object'),
    ({"entries": {}}, 'must be an object with a "files" object'),
    ({"files": ["model.safetensors"]}, 'must be an object with a "files" object'),
    ({"files": {"/etc/passwd": GOOD}}, "lists '/etc/passwd', which is not a plain file name"),
    ({"files": {"..\\state.pt": GOOD}}, r"which is not a plain file name"),
    ({"files": {"..": GOOD}}, r"lists '\.\.', which is not a plain file name"),
    ({"files": {"model.safetensors": GOOD, "meta.json": GOOD}}, "does not list state.pt"),
    ({"files": {n: GOOD for n in ("model.safetensors", "state.pt", "meta.json", "extra.bin")}},
     "lists unexpected extra.bin"),
    ({"files": {n: {"bytes": "3", "sha256": "0" * 64} for n in checkpoint.CONTENT_FILES}},
     "'model.safetensors' needs \"bytes\": a non-negative integer, got '3'"),
    ({"files": {n: {"bytes": True, "sha256": "0" * 64} for n in checkpoint.CONTENT_FILES}}, "got True"),
    ({"files": {n: {"bytes": -1, "sha256": "0" * 64} for n in checkpoint.CONTENT_FILES}}, "got -1"),
    ({"files": {n: {"bytes": 3} for n in checkpoint.CONTENT_FILES}}, 'needs "sha256": 64 hex digits, got None'),
    ({"files": {n: 7 for n in checkpoint.CONTENT_FILES}}, 'needs "bytes"'),
    pytest.param("[" * 10_000 + "]" * 10_000, "manifest.json is not valid JSON", id="nested-10000-deep"),
])
def test_a_malformed_manifest_is_refused_naming_the_checkpoint_and_problem(tmp_path: Path, manifest: object,
                                                                           problem: str) -> None:
    path = save(tmp_path, 1, 1.0)
    rewrite_manifest(path, manifest)
    with pytest.raises(CheckpointError) as err:
        checkpoint.load(path)
    assert str(err.value).startswith(f"checkpoint {path} is refused: ")
    assert re.search(problem, str(err.value)), str(err.value)


def test_a_listed_file_missing_on_disk_is_refused(tmp_path: Path) -> None:
    path = save(tmp_path, 1, 1.0)
    (path / checkpoint.STATE_FILE).unlink()
    with pytest.raises(CheckpointError, match="state.pt is listed in manifest.json but missing"):
        checkpoint.verify(path)


def test_a_huge_recorded_size_is_refused_without_hashing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save(tmp_path, 1, 1.0)
    manifest = json.loads((path / checkpoint.MANIFEST_FILE).read_text())
    manifest["files"][checkpoint.MODEL_FILE]["bytes"] = 10 ** 30
    rewrite_manifest(path, manifest)
    monkeypatch.setattr(checkpoint, "_sha256", lambda file: pytest.fail(f"hashed {file}"))
    with pytest.raises(CheckpointError, match=r"model.safetensors does not match manifest.json \(\d+ bytes, recorded "
                                              r"1000000000000000000000000000000\)"):
        checkpoint.verify(path)


def test_an_oversized_manifest_is_refused_unread(tmp_path: Path) -> None:
    path = save(tmp_path, 1, 1.0)
    (path / checkpoint.MANIFEST_FILE).write_text(" " * (checkpoint.MAX_MANIFEST_BYTES + 1) + "{}")
    with pytest.raises(CheckpointError, match=rf"manifest.json is {checkpoint.MAX_MANIFEST_BYTES + 3} bytes, more"):
        checkpoint.verify(path)


@pytest.mark.parametrize("name, problem", [(checkpoint.STATE_FILE, "state.pt is not a regular file"),
                                           (checkpoint.MANIFEST_FILE, "manifest.json is a symlink")])
def test_a_checkpoint_file_that_is_a_symlink_is_refused(tmp_path: Path, name: str, problem: str) -> None:
    path = save(tmp_path / "a", 1, 1.0)
    elsewhere = tmp_path / "elsewhere"
    (path / name).rename(elsewhere)
    (path / name).symlink_to(elsewhere)  # same bytes, so size and hash would match
    with pytest.raises(CheckpointError, match=problem):
        checkpoint.verify(path)


@pytest.mark.parametrize("meta", [b"{oops", b"\xff\xfe", b"[1, 2]",
                                  pytest.param(b"[" * 10_000 + b"]" * 10_000, id="nested-10000-deep")])
def test_a_meta_file_that_is_not_a_json_object_is_refused(tmp_path: Path, meta: bytes) -> None:
    path = save(tmp_path, 1, 1.0)
    (path / checkpoint.META_FILE).write_bytes(meta)
    consistent_manifest(path)
    with pytest.raises(CheckpointError, match=rf"checkpoint {path} is refused: meta.json (is not readable JSON|must "
                                              "hold a JSON object)"):
        checkpoint.load(path)
    assert checkpoint.latest_valid(tmp_path) is None


def test_only_real_directories_named_kind_and_step_count_newest_by_number(tmp_path: Path,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    real = [save(tmp_path / "ckpt", step, float(step), keep=5) for step in (999_999_999, 1_000_000_000)]
    other = save(tmp_path / "other-run", 5, 5.0)
    ckpt = tmp_path / "ckpt"
    (ckpt / "last-zzz").mkdir()
    for name in checkpoint.CONTENT_FILES + (checkpoint.MANIFEST_FILE,):  # a complete, valid copy, foreign name
        (ckpt / "last-zzz" / name).write_bytes((other / name).read_bytes())
    (ckpt / "last-999999999999").symlink_to(other, target_is_directory=True)
    assert checkpoint.list_complete(ckpt, "last") == real  # 10 digits after 9, by number
    assert checkpoint.latest_valid(ckpt) == real[-1]
    messages = sorted(r.getMessage() for r in caplog.records)
    symlinked = f"a checkpoint must be a directory inside {ckpt}, not a symlink to {other}"
    assert messages == [f"ignoring {ckpt / 'last-999999999999'}: {symlinked}",
                        f"ignoring {ckpt / 'last-zzz'}: not a checkpoint name (last-<step digits>)"]
    save(ckpt, 1_000_000_001, 1.0, keep=1)  # pruning never touches what it does not count as a checkpoint
    assert (ckpt / "last-zzz").is_dir() and (other / checkpoint.MANIFEST_FILE).is_file()
    assert [p.name for p in checkpoint.list_complete(ckpt, "last")] == ["last-1000000001"]


def test_pruning_never_shows_a_half_deleted_checkpoint(tmp_path: Path, monkeypatch) -> None:
    """Old checkpoints leave by an atomic rename before their files are deleted, so a kill during the deletion
    leaves only a temporary directory (cleaned on resume), never a manifest without its files."""
    import shutil as shutil_mod

    save(tmp_path, 1, 1.0)
    seen_during_delete = []
    real_rmtree = shutil_mod.rmtree

    def watching_rmtree(path, *args, **kwargs):
        seen_during_delete.append([p.name for p in checkpoint.list_complete(tmp_path, "last")])
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(checkpoint.shutil, "rmtree", watching_rmtree)
    save(tmp_path, 2, 2.0)
    assert seen_during_delete == [["last-000000002"]]
    assert [p.name for p in tmp_path.iterdir()] == ["last-000000002"]
