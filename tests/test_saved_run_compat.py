"""Run directories written by the previous release (trainlab 0.1.0) still load: eval, predict and --resume.

The fixtures in ``tests/fixtures/runs/`` were written by trainlab 0.1.0 (see its README.md for the commit and
the exact commands); they are never modified here. Every test copies the whole fixture folder into ``tmp_path``
and works in that copy, with the copy as the working directory: the table run's ``data.root`` is the relative
path ``table-data`` (as written by the old version, so ``--resume`` sees an unchanged config), which then finds
the copied ``table-data/`` beside the run directories.

Only the public API is used (``trainlab.train``, ``trainlab.load_run``, ``Run.evaluate/predict``,
``trainlab.cli.main``), so the tests keep meaning the same while the package's internal modules move.

``expected_predictions.json`` holds what 0.1.0 predicted for the inputs this file generates; regenerate it only
with the old code: ``cd /work/main && PYTHONPATH=/tmp/base python tests/test_saved_run_compat.py --write-expected``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import trainlab
from trainlab.cli import main

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "runs"
EXPECTED_FILE = FIXTURES / "expected_predictions.json"
DIGITS, TABLE = "digits-softmax", "table-mlp"
WRITTEN_BY = "0.1.0"
DIGIT_INDICES = (0, 1, 2, 3, 4, 5)  # sklearn's load_digits() images, labels 0..5
HOUSES = pd.DataFrame({"Id": [9001, 9002, 9003, 9004, 9005], "size": [60.0, 120.5, 180.0, 240.0, 95.5],
                       "rooms": [1, 3, 4, 6, 2], "color": ["red", "green", "blue", "green", "red"]})


def _digest(folder: Path) -> str:
    """SHA-256 over every file's relative path and bytes: proves the committed fixture is left untouched."""
    sha = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        sha.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return sha.hexdigest()


FIXTURE_DIGEST = _digest(FIXTURES)


def digit_pngs(folder: Path) -> tuple[list[Path], list[str]]:
    """Real handwritten digits as 8x8 gray PNGs (0..255, ink bright on dark, like the training data)."""
    from sklearn.datasets import load_digits

    raw = load_digits()
    paths, labels = [], []
    for i in DIGIT_INDICES:
        path = folder / f"digit-{i}.png"
        Image.fromarray((raw.images[i] * 255 / 16).round().astype(np.uint8)).save(path)  # 2-D uint8: mode L
        paths.append(path)
        labels.append(str(raw.target[i]))
    return paths, labels


def houses_csv(folder: Path) -> Path:
    """A Kaggle-style table to predict: the training features, no target."""
    path = folder / "houses.csv"
    HOUSES.to_csv(path, index=False)
    return path


def metrics_rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the fixtures, made the working directory (table-mlp reads ``table-data/`` from it)."""
    copy = tmp_path / "runs"
    shutil.copytree(FIXTURES, copy)
    monkeypatch.chdir(copy)
    return copy


@pytest.fixture(autouse=True)
def _restore_determinism():
    """The fixtures were trained with train.deterministic=true, which switches torch's deterministic algorithms on
    process-wide; switch them back so later tests in the session run as they would alone."""
    before = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(before)


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads(EXPECTED_FILE.read_text())


def test_fixtures_were_written_by_the_previous_version() -> None:
    print(f"testing trainlab {trainlab.__version__} from {trainlab.__file__}")  # shown with -rP
    for name in (DIGITS, TABLE):
        saved = summary(FIXTURES / name)
        assert saved["versions"]["trainlab"] == WRITTEN_BY
        assert saved["status"] == "completed" and saved["epochs_completed"] == 2 and saved["seed"] == 0
        assert len(metrics_rows(FIXTURES / name)) == 2
        assert not (FIXTURES / name / ".lock").exists()


@pytest.mark.parametrize("name, metrics", [(DIGITS, {"test_loss", "test_acc"}), (TABLE, {"test_loss", "test_rmse"})])
def test_load_run_and_evaluate_reproduce_the_recorded_test_metrics(runs: Path, name: str, metrics: set[str]) -> None:
    run = trainlab.load_run(runs / name)
    assert Path(run.path) == runs / name
    recorded = summary(FIXTURES / name)["test"]
    assert set(recorded) == metrics
    got = run.evaluate(device="cpu")
    assert set(got) == metrics
    for key in metrics:
        assert got[key] == pytest.approx(recorded[key], abs=1e-6), key
    if name == DIGITS:  # a real model, not a lucky load: 2 epochs of softmax regression reach ~91%
        assert got["test_acc"] > 0.85


def test_evaluating_a_run_keeps_the_callers_random_streams_and_torch_flags(runs: Path) -> None:
    """Evaluation builds data and a session the way training does (seeded, deterministic mode for these fixtures),
    and loading builds a model with random initial weights; the caller's global RNGs and torch's deterministic mode
    must come out as they went in."""
    import random

    import numpy as np

    run = trainlab.load_run(runs / DIGITS)
    torch.use_deterministic_algorithms(False)

    def draws() -> tuple[float, float, list[float]]:
        return random.random(), float(np.random.random()), torch.rand(2).tolist()

    for call in (lambda: run.evaluate(device="cpu"), lambda: run.evaluate("val", device="cpu"),
                 lambda: run.test_predictions("cpu"), lambda: run.load_model("cpu")):
        random.seed(7), np.random.seed(7), torch.manual_seed(7)
        expected = draws()
        random.seed(7), np.random.seed(7), torch.manual_seed(7)
        call()
        assert draws() == expected
        assert not torch.are_deterministic_algorithms_enabled()


def test_image_run_predicts_like_the_previous_version(runs: Path, tmp_path: Path, expected: dict) -> None:
    paths, truth = digit_pngs(tmp_path)
    run = trainlab.load_run(runs / DIGITS)
    predictions = run.predict(paths)
    classes = json.loads((runs / DIGITS / "data.json").read_text())["classes"]
    assert classes == [str(d) for d in range(10)]
    assert [p.path for p in predictions] == [str(p) for p in paths]
    for p, old in zip(predictions, expected[DIGITS]):
        assert p.label in classes
        assert 0.0 < p.probability <= 1.0
        assert p.label == old["label"] and p.probability == pytest.approx(old["probability"], abs=1e-6)
    correct = sum(p.label == label for p, label in zip(predictions, truth))
    assert correct == 5  # as with 0.1.0: the six real digits are read right except the 5 (read as a 9)


def test_table_run_predicts_like_the_previous_version(runs: Path, tmp_path: Path, expected: dict) -> None:
    run = trainlab.load_run(runs / TABLE)
    prediction = run.predict([houses_csv(tmp_path)])
    values = np.asarray(prediction.values, dtype=float)
    assert list(prediction.ids) == HOUSES["Id"].tolist()
    assert (prediction.id_col, prediction.target_col) == ("Id", "price")
    assert len(values) == len(HOUSES) and np.isfinite(values).all()
    # log_target + center_target are undone: prices in dollars, not log units around 0 or 12
    assert (values > 10_000).all() and (values < 1_000_000).all()
    np.testing.assert_allclose(values, expected[TABLE]["values"], rtol=1e-6)


def test_cli_eval_prints_the_recorded_test_metrics(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in (DIGITS, TABLE):
        assert main(["eval", str(runs / name), "--device", "cpu"]) == 0
        out = capsys.readouterr().out
        recorded = summary(FIXTURES / name)["test"]
        assert f"test_loss {recorded['test_loss']:.4g}" in out
        if name == DIGITS:
            assert f"test_acc {recorded['test_acc']:.2%}" in out
        else:
            assert f"test_rmse {recorded['test_rmse']:.4g}" in out


def test_cli_predict_image_and_table(runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     expected: dict) -> None:
    paths, _ = digit_pngs(tmp_path)
    assert main(["predict", str(runs / DIGITS), *map(str, paths), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [row["label"] for row in lines] == [old["label"] for old in expected[DIGITS]]
    assert all(0.0 < row["probability"] <= 1.0 for row in lines)

    submission = tmp_path / "submission.csv"
    assert main(["predict", str(runs / TABLE), str(houses_csv(tmp_path)), "--out", str(submission)]) == 0
    written = pd.read_csv(submission)
    assert list(written.columns) == ["Id", "price"] and written["Id"].tolist() == HOUSES["Id"].tolist()
    np.testing.assert_allclose(written["price"], expected[TABLE]["values"], rtol=1e-6)


def test_api_resume_continues_the_image_run_to_three_epochs(runs: Path) -> None:
    run_dir = runs / DIGITS
    before = metrics_rows(FIXTURES / DIGITS)
    run = trainlab.train(resume=run_dir, epochs=3)
    assert Path(run.path) == run_dir
    rows = metrics_rows(run_dir)
    assert len(rows) == 3 and rows[:2] == before  # the old epochs are kept exactly as recorded
    assert rows[2]["epoch"] == "3" and math.isfinite(float(rows[2]["train_loss"]))
    assert 0.8 < float(rows[2]["val_acc"]) <= 1.0
    after = summary(run_dir)
    assert after["status"] == "completed" and after["epochs_completed"] == 3
    assert after["steps"] == summary(FIXTURES / DIGITS)["steps"] // 2 * 3
    assert after["versions"]["trainlab"] == trainlab.__version__
    assert 0.85 < after["test"]["test_acc"] <= 1.0
    assert len(run.history) == 3


def test_cli_resume_continues_the_table_run_to_three_epochs(runs: Path) -> None:
    run_dir = runs / TABLE
    before = metrics_rows(FIXTURES / TABLE)
    assert main(["train", "--resume", str(run_dir), "--epochs", "3"]) == 0
    rows = metrics_rows(run_dir)
    assert len(rows) == 3 and rows[:2] == before
    assert rows[2]["epoch"] == "3"
    assert all(math.isfinite(float(rows[2][k])) for k in ("train_loss", "train_rmse", "val_loss", "val_rmse"))
    after = summary(run_dir)
    assert after["status"] == "completed" and after["epochs_completed"] == 3
    assert math.isfinite(after["test"]["test_rmse"])


def test_a_run_from_a_newer_trainlab_is_refused_naming_the_version(runs: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = runs / DIGITS
    saved = summary(run_dir)
    saved["versions"]["trainlab"] = "99.0.0"
    (run_dir / "summary.json").write_text(json.dumps(saved, indent=2))
    with pytest.raises(Exception, match=r"trainlab 99\.0\.0") as err:
        trainlab.load_run(run_dir)
    assert "newer" in str(err.value) and str(run_dir) in str(err.value)
    with pytest.raises(Exception, match=r"99\.0\.0"):
        trainlab.train(resume=run_dir, epochs=3)
    for command in (["eval", str(run_dir)], ["predict", str(run_dir), str(digit_pngs(runs)[0][0])]):
        assert main(command) != 0
        assert "99.0.0" in capsys.readouterr().err
    assert metrics_rows(run_dir) == metrics_rows(FIXTURES / DIGITS)  # nothing was trained or rewritten


def test_the_committed_fixture_is_unchanged() -> None:
    """Runs last in this file: every test above worked on a copy."""
    assert _digest(FIXTURES) == FIXTURE_DIGEST


def write_expected() -> None:
    """Record what the installed trainlab (run this with the OLD code on PYTHONPATH) predicts for the inputs above."""
    import tempfile

    print(f"trainlab {trainlab.__version__} from {trainlab.__file__}")
    if trainlab.__version__ != WRITTEN_BY:
        sys.exit(f"refusing: expected values must come from trainlab {WRITTEN_BY}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        copy = folder / "runs"
        shutil.copytree(FIXTURES, copy)
        paths, _ = digit_pngs(folder)
        digits = trainlab.load_run(copy / DIGITS).predict(paths)
        table = trainlab.load_run(copy / TABLE).predict([houses_csv(folder)])
    record = {"written_by": f"trainlab {trainlab.__version__}",
              DIGITS: [{"file": Path(p.path).name, "label": p.label, "probability": p.probability} for p in digits],
              TABLE: {"ids": [int(i) for i in table.ids], "values": [float(v) for v in table.values]}}
    EXPECTED_FILE.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {EXPECTED_FILE}")


if __name__ == "__main__" and sys.argv[1:] == ["--write-expected"]:
    write_expected()
