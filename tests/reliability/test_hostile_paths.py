"""Paths that used to tie a run to the directory it was trained from: relative data roots and output folders, run
directories that were moved, renamed or have spaces and accents in their names, symlinked data, a data root that
is a file, and a recipe that assumed where the data lives.

Every test trains a tiny regression MLP on the 0.1.0 fixture's CSV tables (80 train rows, 20 test rows) through
the CLI, from one working directory, and then uses the run from another one (``monkeypatch.chdir``).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pytest
import yaml

from trainlab import rundir

TABLES = Path(__file__).resolve().parents[1] / "fixtures" / "runs" / "table-data"
RECIPE = Path(__file__).resolve().parents[2] / "configs" / "house-prices.yaml"
QUICK = ["--data", "csv", "--model", "mlp", "--epochs", "1", "--batch-size", "16", "--set", "model.hidden=[8]",
         "--set", "data.target=price", "--set", "data.id=Id", "--set", "callbacks.progress.style=none",
         "--set", "callbacks.plot_curves=null"]
ROOTED = ["--set", "data.root=table-data", "--set", "data.train=train.csv", "--set", "data.test=test.csv"]


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``tmp/work`` holding ``table-data/``, made the working directory; ``tmp/elsewhere`` exists beside it."""
    shutil.copytree(TABLES, tmp_path / "work" / "table-data")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    return tmp_path / "work"


def train(run_cli, out: str | Path, name: str, *extra: str) -> Path:
    code, _, err = run_cli("train", *QUICK, "--out", out, "--name", name, *extra)
    assert code == 0, err
    return Path(out, name).absolute()


def saved(run_dir: Path) -> dict:
    return yaml.safe_load((run_dir / rundir.CONFIG_FILE).read_text())


def assert_usable_from_here(run_cli, run_dir: Path, tables: Path, resume: bool = True) -> None:
    """eval, predict on a CSV and (with ``resume``) a resume to a second epoch work from the current directory."""
    summary = json.loads((run_dir / rundir.SUMMARY_FILE).read_text())
    code, out, err = run_cli("eval", run_dir)
    assert code == 0, err
    assert f"test_rmse {summary['test']['test_rmse']:.4g}" in out
    code, out, err = run_cli("predict", run_dir, tables / "test.csv", "--json")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 20 and all(math.isfinite(row["price"]) for row in rows)
    if not resume:
        return
    code, _, err = run_cli("train", "--resume", run_dir, "--epochs", "2")
    assert code == 0, err
    assert json.loads((run_dir / rundir.SUMMARY_FILE).read_text())["epochs_completed"] == 2


@pytest.mark.parametrize("paths, typed", [
    (ROOTED, {"data.root": "table-data"}),
    (["--set", "data.train=table-data/train.csv", "--set", "data.test=./table-data/test.csv"],
     {"data.train": "table-data/train.csv", "data.test": "./table-data/test.csv"}),
], ids=["data.root", "data.train+test"])
def test_relative_data_paths_are_saved_absolute_so_the_run_works_from_anywhere(
        work: Path, run_cli, monkeypatch: pytest.MonkeyPatch, paths: list[str], typed: dict[str, str]) -> None:
    run_dir = train(run_cli, "runs", "t", *paths)  # a relative --out too
    data = saved(run_dir)["data"]
    for key, value in typed.items():
        assert data[key.split(".")[1]] == str(work / Path(value))
    header = (run_dir / rundir.CONFIG_FILE).read_text().splitlines()
    assert header[0] == rundir.TYPED_PATHS_HEADER
    assert header[1:1 + len(typed)] == [f"#   {key}: {json.dumps(value)}" for key, value in typed.items()]
    monkeypatch.chdir(work.parent / "elsewhere")
    code, out, err = run_cli("eval", run_dir, "--split", "val")
    assert code == 0 and "val_rmse" in out, err
    assert_usable_from_here(run_cli, run_dir, work / "table-data")
    assert (run_dir / rundir.CONFIG_FILE).read_text().splitlines()[:1 + len(typed)] == header[:1 + len(typed)], \
        "a resume keeps the paths as typed"


def test_a_saved_config_retrains_from_another_directory(work: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """config.yaml is loadable by `train -c`; its data root and init_from weights no longer depend on the cwd."""
    first = train(run_cli, "runs", "first", *ROOTED)
    second = train(run_cli, "runs", "second", *ROOTED, "--init-from", "runs/first")
    assert saved(second)["train"]["init_from"] == str(first)
    monkeypatch.chdir(work.parent / "elsewhere")
    code, _, err = run_cli("train", "-c", second / rundir.CONFIG_FILE, "--out", "again", "--name", "third")
    assert code == 0, err
    assert saved(Path("again", "third").absolute())["data"]["root"] == str(work / "table-data")


def test_a_resume_from_elsewhere_still_refuses_a_real_change(work: Path, run_cli,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = train(run_cli, "runs", "t", *ROOTED)
    shutil.copytree(work / "table-data", work / "other-data")
    before = (run_dir / rundir.SUMMARY_FILE).read_text()
    monkeypatch.chdir(work.parent / "elsewhere")
    code, _, err = run_cli("train", "--resume", run_dir, "--epochs", "2", "--set", f"data.root={work / 'other-data'}")
    assert code == 2 and "cannot resume" in err
    assert f"data.root: '{work / 'table-data'}' → '{work / 'other-data'}'" in err
    assert (run_dir / rundir.SUMMARY_FILE).read_text() == before, "a refused resume changes nothing"


def test_resuming_with_the_same_data_root_typed_relative_again_is_not_a_change(work: Path, run_cli) -> None:
    run_dir = train(run_cli, "runs", "t", *ROOTED)
    code, _, err = run_cli("train", "--resume", run_dir, "--epochs", "2", "--set", "data.root=table-data")
    assert code == 0, err
    assert saved(run_dir)["data"]["root"] == str(work / "table-data")


def test_a_moved_and_renamed_run_directory_keeps_working(work: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = train(run_cli, "runs", "t", *ROOTED)
    moved = work.parent / "archive" / "renamed-run"
    moved.parent.mkdir()
    shutil.move(run_dir, moved)
    monkeypatch.chdir(work.parent / "elsewhere")
    assert_usable_from_here(run_cli, moved, work / "table-data")
    assert not run_dir.exists(), "the resume wrote into the moved directory, not the old place"


def test_a_run_path_with_spaces_and_accents(work: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = train(run_cli, "rüns mit Leerzeichen/ä ø", "t", *ROOTED)
    assert run_dir.is_dir() and "ä ø" in str(run_dir)
    monkeypatch.chdir(work.parent / "elsewhere")
    assert_usable_from_here(run_cli, run_dir, work / "table-data")


def test_a_symlinked_data_root_stays_the_link(work: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """The link is saved, not its target: re-pointing `current` at a new copy of the data is honoured later."""
    os.symlink("table-data", work / "current")
    run_dir = train(run_cli, "runs", "t", "--set", "data.root=current", "--set", "data.train=train.csv",
                    "--set", "data.test=test.csv")
    assert saved(run_dir)["data"]["root"] == str(work / "current")
    (work / "current").unlink()
    (work / "table-data").rename(work / "table-data-v2")
    os.symlink("table-data-v2", work / "current")
    monkeypatch.chdir(work.parent / "elsewhere")
    assert_usable_from_here(run_cli, run_dir, work / "table-data-v2", resume=False)


def test_a_data_root_that_is_a_file_is_refused_naming_it(work: Path, run_cli) -> None:
    code, _, err = run_cli("train", *QUICK, "--out", "runs", "--name", "t", "--set", "data.root=table-data/train.csv",
                           "--set", "data.train=train.csv")
    assert code == 2 and "Traceback" not in err
    assert ("csv: data.root table-data/train.csv is a file, not a folder; "
            "pass --set data.root=DIR for the folder that holds train.csv") in err
    assert not (work / "runs" / "t").exists(), "a refused start leaves no run directory"


def test_the_house_prices_recipe_asks_for_the_data_root(tmp_path: Path, run_cli,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The recipe names no data folder of this repository's layout; without --set data.root the error says so."""
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli("kfold", "-c", RECIPE, "--folds", "2", "--epochs", "1", "--out", tmp_path / "runs")
    assert code == 2 and "Traceback" not in err
    assert "(data.root is not set); pass --set data.root=DIR for the folder that holds train.csv" in err
    assert not (tmp_path / "runs").exists()
