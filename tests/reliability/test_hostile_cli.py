"""Hostile command lines: outputs that would overwrite inputs, one damaged run among many, devices this machine
lacks, degenerate counts. Each is refused with exit code 2 and one ``error:`` line naming the thing (no traceback
unless --debug), and leaves every file as it was; or, for a listing, shows the damaged run and the others."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import trainlab
from tests.reliability.helpers import QUIET, QUIET_ARGS

TINY_MLP = {**{k: v for k, v in QUIET.items() if k != "model.width"}, "model.hidden": [8]}


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "digit.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (8, 8), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def runs_dir(tiny_run: Path, tmp_path: Path) -> Path:
    """A directory holding two copies of the tiny run, ``a`` and ``b``."""
    root = tmp_path / "runs"
    for name in ("a", "b"):
        shutil.copytree(tiny_run, root / name)
    return root


def snapshot(*paths: Path) -> dict[Path, tuple[bytes, int]]:
    """Bytes and modification time of each file, to prove a refusal touched nothing."""
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in paths}


def one_error_line(err: str) -> str:
    """The single ``error:`` line of a refusal (and no traceback)."""
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# ---- 1. outputs never overwrite inputs ----------------------------------------------------------------------

def test_predict_refuses_to_overwrite_the_image_it_predicts(run_cli, tiny_run: Path, image: Path) -> None:
    before = snapshot(image)
    code, out, err = run_cli("predict", tiny_run, image, "--out", image)
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert f"refusing to write {image}" in line and "one of this command's inputs" in line and "--force" in line
    assert snapshot(image) == before


def test_predict_refuses_to_overwrite_a_file_of_the_run(run_cli, runs_dir: Path, image: Path) -> None:
    run = runs_dir / "a"
    data_json = run / "data.json"
    before = snapshot(data_json, run / "config.yaml")
    code, _, err = run_cli("predict", run, image, "--out", data_json)
    line = one_error_line(err)
    assert code == 2 and "lies inside the run directory" in line and str(run.resolve()) in line
    assert snapshot(data_json, run / "config.yaml") == before
    code, out, _ = run_cli("eval", run, "--device", "cpu")  # the run still loads
    assert code == 0 and "test_acc" in out


def test_predict_replaces_its_own_csv_but_not_a_foreign_file_without_force(run_cli, tiny_run: Path, image: Path,
                                                                             tmp_path: Path) -> None:
    own = tmp_path / "new" / "predictions.csv"  # a missing parent directory is created
    assert run_cli("predict", tiny_run, image, "--out", own)[0] == 0
    assert run_cli("predict", tiny_run, image, "--out", own)[0] == 0  # rerunning the command just works
    assert own.read_text().splitlines()[0] == "path,label,probability,value"

    foreign = tmp_path / "notes.csv"
    foreign.write_text("name,score\nann,3\n")
    before = snapshot(foreign)
    code, _, err = run_cli("predict", tiny_run, image, "--out", foreign)
    line = one_error_line(err)
    assert code == 2 and "already exists and is not a CSV this command wrote" in line and "--force" in line
    assert snapshot(foreign) == before
    assert run_cli("predict", tiny_run, image, "--out", foreign, "--force")[0] == 0
    assert foreign.read_text().startswith("path,label,probability,value\n")


def test_a_project_config_yaml_does_not_make_a_run_directory(run_cli, tiny_run: Path, image: Path,
                                                              tmp_path: Path) -> None:
    """Only config.yaml beside data.json or summary.json marks a run: a project's own config.yaml does not."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "config.yaml").write_text("mine: true\n")
    assert run_cli("predict", tiny_run, image, "--out", project / "predictions.csv")[0] == 0
    assert (project / "predictions.csv").is_file()


def test_predict_out_that_is_a_directory_is_refused_even_with_force(run_cli, tiny_run: Path, image: Path,
                                                                     tmp_path: Path) -> None:
    code, _, err = run_cli("predict", tiny_run, image, "--out", tmp_path, "--force")
    assert code == 2 and f"--out {tmp_path} is a directory" in one_error_line(err)


@pytest.mark.parametrize("command", [["lr-find"], ["schedule", "plot", "--steps-per-epoch", "10"]])
def test_figures_never_replace_their_config_file(run_cli, tmp_path: Path, command: list[str]) -> None:
    config = tmp_path / "recipe.yaml"
    config.write_text("train:\n  epochs: 2\n")
    before = snapshot(config)
    code, _, err = run_cli(*command, "-c", config, "-o", config)
    line = one_error_line(err)
    assert code == 2 and f"refusing to write {config}" in line and "inputs" in line and "--output" in line
    assert snapshot(config) == before


def test_summary_csv_refuses_a_foreign_file_and_replaces_its_own(run_cli, tmp_path: Path) -> None:
    target = tmp_path / "table.csv"
    target.write_text("id,price\n1,2\n")
    before = snapshot(target)
    args = ("summary", "mlp", "--input", "4", "--classes", "1", "--csv", target)
    code, _, err = run_cli(*args)
    assert code == 2 and "--csv" in one_error_line(err) and snapshot(target) == before
    assert run_cli(*args, "--force")[0] == 0
    assert run_cli(*args)[0] == 0  # now it is the command's own table
    assert target.read_text().startswith("layer,type,output_shape,params,macs")


def test_compare_out_never_writes_into_a_run_or_a_foreign_directory(run_cli, runs_dir: Path, tmp_path: Path) -> None:
    a, b = runs_dir / "a", runs_dir / "b"
    names = sorted(p.name for p in a.iterdir())
    code, _, err = run_cli("compare", a, b, "--out", a)
    assert code == 2 and f"refusing to write {a}" in one_error_line(err)
    assert sorted(p.name for p in a.iterdir()) == names
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"not yours")
    code, _, err = run_cli("compare", a, b, "--out", other)
    assert code == 2 and "already exists and is not an empty directory or one holding compare.html" in err
    assert [p.name for p in other.iterdir()] == ["holiday.jpg"]
    out = tmp_path / "cmp"
    assert run_cli("compare", a, b, "--out", out)[0] == 0
    assert run_cli("compare", a, b, "--out", out)[0] == 0  # an earlier comparison is replaced


# ---- 2. one damaged run never blocks a listing or a comparison ----------------------------------------------

def test_runs_lists_a_run_with_corrupt_summary_as_one_row(run_cli, runs_dir: Path) -> None:
    (runs_dir / "b" / "summary.json").write_text('{"status": "compl')
    code, out, err = run_cli("runs", runs_dir)
    assert code == 0
    rows = {cells[0]: cells[1:] for cells in (line.split("\t") for line in out.splitlines()[1:])}  # piped: TSV
    assert rows["a"][0] == "simple-cnn" and rows["a"][-1] == "completed"
    assert rows["b"][0] == "?" and rows["b"][-1] == "unreadable: summary.json is not valid JSON"
    assert f"warning: {runs_dir / 'b'}: summary.json is not valid JSON (Unterminated string" in err


def test_runs_lists_a_summary_with_wrong_value_types(run_cli, runs_dir: Path) -> None:
    (runs_dir / "b" / "summary.json").write_text(json.dumps({"status": "completed", "best": 5}))
    code, out, err = run_cli("runs", runs_dir)
    assert code == 0 and "unreadab" in out and "summary.json holds unexpected values (TypeError" in err


def test_compare_leaves_out_runs_without_a_finished_epoch(run_cli, runs_dir: Path, tmp_path: Path) -> None:
    (runs_dir / "b" / "metrics.csv").write_text("")
    code, _, err = run_cli("compare", runs_dir / "a", runs_dir / "b", "--out", tmp_path / "cmp")
    assert code == 0, err
    assert "notice: left out of the figure, no finished epoch in metrics.csv: b" in err
    assert (tmp_path / "cmp" / "compare.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_with_no_finished_epoch_at_all_is_refused(run_cli, runs_dir: Path, tmp_path: Path) -> None:
    (runs_dir / "a" / "metrics.csv").unlink()
    (runs_dir / "b" / "metrics.csv").write_text("")
    code, _, err = run_cli("compare", runs_dir, "--out", tmp_path / "cmp")
    assert code == 2 and "none of the runs has a finished epoch" in one_error_line(err)
    assert not (tmp_path / "cmp").exists()


def test_compare_tells_which_runs_are_classification_and_regression(run_cli, tiny_run: Path, tmp_path: Path) -> None:
    reg = trainlab.train(model="mlp", data="synthetic-linear", epochs=1, out=tmp_path, name="reg",
                         overrides=TINY_MLP).path
    code, _, err = run_cli("compare", tiny_run, reg, "--out", tmp_path / "cmp")
    assert code == 0, err
    warning = next(line for line in err.splitlines() if line.startswith("warning: the runs mix tasks"))
    assert "classification: tiny" in warning and "regression: reg" in warning and "own axes" in warning


# ---- 3. devices this machine does not have ------------------------------------------------------------------

@pytest.mark.parametrize(("device", "message"), [("cuda", "CUDA is not available"), ("cuda:1", "CUDA is not available"),
                                                 ("mps", "MPS (Apple GPU) is not available")])
def test_missing_device_is_one_line_suggesting_cpu(run_cli, tiny_run: Path, device: str, message: str) -> None:
    if device.startswith("cuda") and torch.cuda.is_available() or device == "mps" and torch.backends.mps.is_available():
        pytest.skip(f"{device} exists here")
    code, _, err = run_cli("eval", tiny_run, "--device", device)
    line = one_error_line(err)
    assert code == 2 and message in line and "--device cpu" in line


def test_train_on_a_missing_device_leaves_no_run(run_cli, tmp_path: Path) -> None:
    code, _, err = run_cli("train", "--epochs", "1", "--device", "cuda", "--out", tmp_path, *QUIET_ARGS)
    assert code == 2 and "CUDA is not available" in one_error_line(err)
    assert list(tmp_path.iterdir()) == []


def test_cuda_index_beyond_the_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    from trainlab.engine.runtime import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"cuda:1 requested but only 1 CUDA device\(s\) are visible"):
        resolve_device("cuda:1")
    assert resolve_device("cuda:0") == torch.device("cuda:0")


# ---- 4. one error path, --debug, degenerate counts, what a resume rewrites -----------------------------------

@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback_of_an_expected_error(run_cli, tmp_path: Path, where: str) -> None:
    args = ["eval", tmp_path / "nope"]
    code, _, err = run_cli(*(["--debug", *args] if where == "before" else [*args, "--debug"]))
    assert code == 2 and "Traceback (most recent call last)" in err and "RunDirError" in err
    assert err.strip().splitlines()[-1].startswith("error: ") and "is not a trainlab run directory" in err


def test_an_unexpected_exception_is_a_bug_with_a_traceback(run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainlab.cli import listing

    def broken(args: object) -> int:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(listing, "run", broken)
    code, _, err = run_cli("list", "models")
    assert code == 1 and "Traceback (most recent call last)" in err and "ZeroDivisionError" in err
    assert "a bug in trainlab" in err


@pytest.mark.parametrize("folds", ["0", "1", "-3"])
def test_kfold_refuses_fewer_than_two_folds(run_cli, tmp_path: Path, folds: str) -> None:
    code, _, err = run_cli("kfold", "--folds", folds, "--epochs", "1", "--out", tmp_path, "--name", "cv")
    assert code == 2 and "--folds must be at least 2" in one_error_line(err) and f"got {folds}" in err
    assert list(tmp_path.iterdir()) == []


def test_search_refuses_zero_trials_before_creating_anything(run_cli, tmp_path: Path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("optim.lr: [0.01, 0.1]\n")
    code, out, err = run_cli("search", "--space", space, "--trials", "0", "--out", tmp_path / "out", "--name", "s")
    assert code == 2 and "--trials must be at least 1" in one_error_line(err) and out == ""
    assert not (tmp_path / "out").exists()


def test_resume_says_what_it_changed_in_the_saved_config(run_cli, tmp_path: Path) -> None:
    run = trainlab.train(epochs=1, out=tmp_path, name="r", overrides=QUIET).path
    code, _, err = run_cli("train", "--resume", run, "--epochs", "2")
    assert code == 0, err
    assert f"notice: train.epochs: 1 → 2 saved in {run / 'config.yaml'}" in err.splitlines()
    code, _, err = run_cli("train", "--resume", run, "--epochs", "2")  # nothing changed: nothing to say
    assert code == 0 and "saved in" not in err


# ---- 5. more hostile inputs ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["..", ".", "../escaped", "a/b"])
@pytest.mark.parametrize("command", ["train", "search"])
def test_a_name_that_is_a_path_is_refused(run_cli, tmp_path: Path, name: str, command: str) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("optim.lr: [0.01]\n")
    out = tmp_path / "deep" / "out"
    extra = ["--space", space, "--method", "grid"] if command == "search" else []
    code, _, err = run_cli(command, "--epochs", "1", "--out", out, "--name", name, *extra)
    assert code == 2 and f"--name '{name}' must be a plain directory name" in one_error_line(err)
    assert not (tmp_path / "deep").exists() and not (tmp_path / "escaped").exists()


def test_train_out_inside_a_run_is_refused(run_cli, runs_dir: Path) -> None:
    run = runs_dir / "a"
    names = sorted(p.name for p in run.iterdir())
    code, _, err = run_cli("train", "--epochs", "1", "--out", run / "more", *QUIET_ARGS)
    assert code == 2 and "lies inside the run directory" in one_error_line(err)
    assert sorted(p.name for p in run.iterdir()) == names


def test_eval_of_a_run_whose_config_was_edited_names_the_file(run_cli, runs_dir: Path, image: Path) -> None:
    config = runs_dir / "a" / "config.yaml"
    config.write_text(config.read_text().replace("width: 4", "width: 8"))
    for args in (["eval", runs_dir / "a", "--device", "cpu"], ["predict", runs_dir / "a", image]):
        code, _, err = run_cli(*args)
        line = one_error_line(err)
        assert code == 2 and f"the model {config} describes does not fit the weights" in line
        assert "size mismatch" in line and "was config.yaml edited" in line


def test_compare_of_the_same_run_twice(run_cli, runs_dir: Path, tmp_path: Path) -> None:
    a = runs_dir / "a"
    code, _, err = run_cli("compare", a, a, "--out", tmp_path / "cmp")
    assert code == 2 and "at least two different runs, found 1" in one_error_line(err)
    assert f"notice: {a} is the same run as {a}; comparing it once" in err
    assert not (tmp_path / "cmp").exists()
    code, out, _ = run_cli("compare", runs_dir, a, "--out", tmp_path / "cmp")  # named directly and via runs/
    assert code == 0 and [line.split("\t")[0] for line in out.splitlines()].count("a") == 1


def test_schedule_plot_of_a_billion_epochs_is_refused_at_once(run_cli, tmp_path: Path) -> None:
    code, _, err = run_cli("schedule", "plot", "--epochs", str(10**9), "--steps-per-epoch", "10",
                           "-o", tmp_path / "lr.png")
    assert code == 2 and "10,000,000,000 optimizer updates" in one_error_line(err) and "--epochs" in err
    assert not (tmp_path / "lr.png").exists()


def test_runs_of_a_file_is_an_error(run_cli, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("x")
    code, _, err = run_cli("runs", path)
    assert code == 2 and f"{path} is a file" in one_error_line(err)


def test_lr_find_checks_its_sweep_before_building_anything(run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainlab import session

    monkeypatch.setattr(session, "build_session", lambda *a, **k: pytest.fail("built a session for a bad sweep"))
    code, _, err = run_cli("lr-find", "--steps", "2")
    assert code == 2 and "--steps must be at least 5" in one_error_line(err)
    code, _, err = run_cli("lr-find", "--start-lr", "1", "--end-lr", "0.1")
    assert code == 2 and "--start-lr and --end-lr" in one_error_line(err)


def test_compare_counts_a_run_reached_twice_once(caplog: pytest.LogCaptureFixture, runs_dir: Path) -> None:
    """Named directly and through its directory: one run, and a log record (not a print) saying so."""
    from trainlab.experiments.compare import expand_runs

    with caplog.at_level(logging.INFO, logger="trainlab"):
        assert expand_runs([runs_dir, runs_dir / "a"]) == [runs_dir / "a", runs_dir / "b"]
    assert any("is the same run as" in r.getMessage() for r in caplog.records)


def test_data_show_never_overwrites_a_foreign_file(tmp_path: Path, run_cli) -> None:
    target = tmp_path / "notes.png"
    target.write_bytes(b"not a figure trainlab drew")
    code, _, err = run_cli("data", "show", "digits", "--out", target)
    assert code == 2 and "refusing to write" in err and "--force" in err
    assert target.read_bytes() == b"not a figure trainlab drew"
    code, _, err = run_cli("data", "show", "digits", "--out", target, "--force")
    assert code == 0, err
    assert target.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("name", ["..", ".", "..."])
def test_a_run_name_of_only_dots_is_refused_from_a_config_file_too(tmp_path: Path, run_cli, name: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"train:\n  name: '{name}'\n  epochs: 1\n")
    code, _, err = run_cli("train", "-c", config, "--out", tmp_path / "runs")
    assert code == 2 and "not only dots" in err
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []


def test_a_damaged_data_json_is_one_line_naming_it(tmp_path: Path, run_cli) -> None:
    code, _, err = run_cli("train", "--model", "softmax", "--epochs", "1", "--out", tmp_path, "--name", "r",
                           "--set", "callbacks.progress.style=none")
    assert code == 0, err
    (tmp_path / "r" / "data.json").write_text("{not json")
    code, _, err = run_cli("eval", tmp_path / "r")
    assert code == 2 and err.count("error:") == 1 and "data.json is not valid JSON" in err and "Traceback" not in err
