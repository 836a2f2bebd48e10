"""The run directory's owner: atomic writes, the summary schema, and the names every other module uses."""

from __future__ import annotations

import ast
import json
import math
import os
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import interrupted_write
from trainlab import atomic, rundir

PACKAGE = Path(__file__).resolve().parents[1] / "trainlab"


def test_an_atomic_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    atomic.write_text(path, "old")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic.atomic_path(path) as tmp:
            tmp.write_text("half of the new")
            raise RuntimeError("disk on fire")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_an_atomic_write_replaces_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "trials.csv"
    atomic.write_text(path, "a much longer old content\n" * 10)
    rundir.write_csv(path, pd.DataFrame({"trial": [0, 1], "val_loss": [0.5, 0.25]}))
    assert path.read_text() == "trial,val_loss\n0,0.5\n1,0.25\n"


def test_two_writers_of_one_file_each_write_their_own_temporary(tmp_path: Path) -> None:
    """Two search workers finishing together both rewrite trials.csv: with one shared temporary name, the first
    rename took the other's file away and its write failed (FileNotFoundError in a two-worker search)."""
    path = tmp_path / "trials.csv"
    with atomic.atomic_path(path) as outer, atomic.atomic_path(path) as inner:
        assert outer != inner and outer.name.endswith(atomic.TMP_SUFFIX)
        outer.write_text("outer")
        inner.write_text("inner")
    assert path.read_text() == "outer"  # the last rename wins, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trials.csv"]


def test_summaries_are_stamped_with_the_schema_and_read_back(tmp_path: Path) -> None:
    rundir.write_summary(tmp_path, {"status": "completed", "model": "mlp"})
    on_disk = json.loads((tmp_path / rundir.SUMMARY_FILE).read_text())
    assert on_disk == {"schema": rundir.SUMMARY_SCHEMA, "status": "completed", "model": "mlp"}
    assert rundir.read_summary(tmp_path)["model"] == "mlp"


def test_a_summary_without_schema_is_read_as_written_by_0_1_0(tmp_path: Path) -> None:
    (tmp_path / rundir.SUMMARY_FILE).write_text(json.dumps({"status": "completed"}))
    assert rundir.read_summary(tmp_path) == {"status": "completed"}


def test_a_summary_of_an_unknown_schema_is_refused_naming_both_schemas(tmp_path: Path) -> None:
    (tmp_path / rundir.SUMMARY_FILE).write_text(json.dumps({"schema": 99, "status": "completed"}))
    with pytest.raises(rundir.RunDirError, match=f"summary schema 99; this trainlab .* reads schema {rundir.SUMMARY_SCHEMA}"):
        rundir.read_summary(tmp_path)


def test_a_trained_run_writes_the_schema_and_only_documented_keys(tmp_path: Path) -> None:
    import trainlab

    run = trainlab.train(model="softmax", epochs=1, out=tmp_path, overrides={"callbacks.progress.style": "none"})
    summary = run.summary
    assert summary["schema"] == rundir.SUMMARY_SCHEMA and summary["status"] == "completed"
    assert set(summary) <= set(rundir.SUMMARY_KEYS), set(summary) - set(rundir.SUMMARY_KEYS)


def _strict(text: str) -> object:
    """``json.loads`` as a strict parser (JavaScript's, jq, most other languages') reads it: no NaN or Infinity."""
    def refuse(token: str) -> None:
        raise ValueError(f"not strict JSON: bare {token}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_floats_are_written_as_strict_json_and_read_back(tmp_path: Path) -> None:
    import numpy as np

    data = {"final": {"train_loss": math.nan, "lr": 0.5}, "std": [math.inf, -math.inf, (1, np.float32("nan"))],
            "stop_reason": None}
    rundir.write_summary(tmp_path, data)
    on_disk = _strict((tmp_path / rundir.SUMMARY_FILE).read_text())
    assert on_disk == {"schema": rundir.SUMMARY_SCHEMA, "final": {"train_loss": "NaN", "lr": 0.5},
                       "std": ["Infinity", "-Infinity", [1, "NaN"]], "stop_reason": None}
    back = rundir.read_summary(tmp_path)
    assert math.isnan(back["final"]["train_loss"]) and back["std"][:2] == [math.inf, -math.inf]
    assert math.isnan(back["std"][2][1]) and back["stop_reason"] is None


def test_a_run_with_nan_metrics_writes_a_strict_summary_that_every_reader_copes_with(tmp_path: Path, run_cli) -> None:
    """An SGD step of 1e30 (with the NaN guard off) turns every loss into NaN; the run still completes."""
    code, _, err = run_cli("train", "--data", "moons", "--model", "mlp", "--optimizer", "sgd", "--lr", "1e30",
                           "--epochs", "1", "--out", tmp_path, "--name", "diverged", "--set", "callbacks.nan_guard=null",
                           "--set", "callbacks.progress.style=none", "--set", "callbacks.plot_curves=null")
    assert code == 0, err
    run_dir = tmp_path / "diverged"
    on_disk = _strict((run_dir / rundir.SUMMARY_FILE).read_text())
    assert on_disk["final"]["train_loss"] == "NaN" and on_disk["test"]["test_loss"] == "NaN"
    assert math.isnan(rundir.read_summary(run_dir)["best"]["val_loss"]["value"])
    assert (run_dir / rundir.REPORT_FILE).is_file()  # the report read the summary back
    code, out, err = run_cli("runs", tmp_path)
    assert code == 0 and "diverged" in out and "completed" in out, err


def _file_name_literals(path: Path) -> list[str]:
    """String constants in ``path`` that look like run-directory file names."""
    run_files = {value for name, value in vars(rundir).items() if name.isupper() and isinstance(value, str)
                 and "." in value and not value.startswith(".")}
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in run_files:
            found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {node.value!r}")
    return found


def test_only_rundir_spells_out_run_directory_file_names() -> None:
    found = [hit for path in sorted(PACKAGE.rglob("*.py")) if path.name != "rundir.py"
             and "cli" not in path.parts for hit in _file_name_literals(path)]
    assert not found, "use the rundir constants instead:\n" + "\n".join(found)


def test_data_json_is_stamped_and_a_damaged_preprocessing_record_is_named(tmp_path: Path) -> None:
    from trainlab.data.bundle import DataMeta
    from trainlab.data.preprocess import image_preprocess

    meta = DataMeta(task="classification", input_shape=(1, 8, 8), num_classes=2, classes=["a", "b"],
                    preprocess=image_preprocess(mode="L", size=(8, 8), mean=[0.5], std=[0.25]))
    rundir.write_data_meta(tmp_path, meta)
    assert json.loads((tmp_path / rundir.DATA_FILE).read_text())["schema"] == rundir.DATA_SCHEMA
    assert rundir.read_data_meta(tmp_path) == DataMeta(**{**vars(meta), "input_shape": (1, 8, 8)})
    damaged = json.loads((tmp_path / rundir.DATA_FILE).read_text())
    del damaged["preprocess"]["size"]
    (tmp_path / rundir.DATA_FILE).write_text(json.dumps(damaged))
    with pytest.raises(ValueError, match=r"data.json: the image preprocessing record lacks size"):
        rundir.read_data_meta(tmp_path)


@pytest.mark.parametrize("name", ["digits", "synthetic-linear", "moons"])
def test_every_dataset_builds_a_complete_typed_preprocessing_record(name: str) -> None:
    from trainlab.data import build
    from trainlab.data.preprocess import ImagePreprocess, check_preprocess

    record = build(name, seed=0, val_fraction=0.1).meta.preprocess
    assert check_preprocess(record, name) is record
    if record["kind"] == "image":
        assert set(record) == set(ImagePreprocess.__annotations__)
    else:
        assert record["features"] and record["scale"] == 1.0


def test_only_old_temporaries_of_exited_writers_are_swept(tmp_path: Path) -> None:
    """A writer killed by SIGKILL leaves its temporary; a live writer's file, a fresh one (perhaps a writer on
    another machine sharing the directory) and files not named like a temporary stay."""
    (tmp_path / "checkpoints").mkdir()
    orphans = [interrupted_write(tmp_path, "metrics.csv"), interrupted_write(tmp_path / "checkpoints", "x.json")]
    kept = [interrupted_write(tmp_path, "summary.json", age_s=5), interrupted_write(tmp_path, "config.yaml", os.getpid())]
    for name in ("notes.tmp", "metrics.csv.12-zz.tmp"):
        (tmp_path / name).write_text("mine")
        kept.append(tmp_path / name)
    assert sorted(atomic.sweep_orphans(tmp_path)) == sorted(orphans)
    assert not any(path.exists() for path in orphans) and all(path.exists() for path in kept)
    assert atomic.sweep_orphans(tmp_path / "missing") == []
