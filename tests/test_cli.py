"""The command line end to end on the built-in digits: train, runs, eval, predict, list, errors, Ctrl-C."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from conftest import TINY, cli_subprocess

FAST = [*TINY, "--set", "model.width=8"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trainlab.cli import main

    out = tmp_path_factory.mktemp("runs")
    assert main(["train", "--epochs", "2", "--out", str(out), "--name", "demo", "--seed", "1",
                 "--set", "callbacks.progress.style=none", "--set", "model.width=8"]) == 0
    return out / "demo"


def test_train_writes_the_run_directory(trained_run: Path) -> None:
    names = {p.name for p in trained_run.iterdir()}
    assert {"config.yaml", "data.json", "metrics.csv", "summary.json", "curves.png", "checkpoints"} <= names
    header = (trained_run / "metrics.csv").read_text().splitlines()[0]
    assert header == "epoch,lr,train_loss,train_acc,val_loss,val_acc,seconds,examples_per_s"
    assert len((trained_run / "metrics.csv").read_text().splitlines()) == 3
    summary = json.loads((trained_run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_completed"] == 2 and summary["seed"] == 1
    assert summary["device"] == "cpu" and summary["versions"]["trainlab"]
    assert summary["test"]["test_acc"] > 0.3  # it learned (about 0.5 after 2 epochs); chance is 0.1
    assert summary["best"]["val_acc"]["epoch"] in (1, 2)
    ckpts = sorted(p.name.split("-")[0] for p in (trained_run / "checkpoints").iterdir())
    assert ckpts == ["best", "last"]
    assert (trained_run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_prints_metrics_and_location(run_cli, tmp_path: Path) -> None:
    code, out, _ = run_cli("train", *FAST, "--out", tmp_path, "--name", "x")
    assert code == 0
    assert "test: test_loss" in out and f"run saved in {tmp_path / 'x'}" in out


def test_plain_progress_prints_one_line_per_epoch(run_cli, tmp_path: Path) -> None:
    code, out, _ = run_cli("train", "--epochs", "2", "--set", "model.width=8", "--set", "callbacks.progress.style=plain",
                           "--out", tmp_path)
    assert code == 0
    lines = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"]
    assert all("train_acc" in line and "ex/s" in line for line in lines)


def test_eval_and_runs_table(run_cli, trained_run: Path) -> None:
    code, out, _ = run_cli("eval", trained_run)
    summary = json.loads((trained_run / "summary.json").read_text())
    assert code == 0 and f"test_acc {summary['test']['test_acc']:.2%}" in out
    code, out, _ = run_cli("runs", trained_run.parent)
    assert code == 0 and "demo" in out and "simple-cnn" in out and "completed" in out


def test_list_every_kind(run_cli) -> None:
    for kind, expected in [("models", "simple-cnn"), ("datasets", "digits"), ("optimizers", "sgd"),
                           ("schedules", "cosine"), ("losses", "cross_entropy"), ("callbacks", "early_stopping")]:
        code, out, _ = run_cli("list", kind)
        assert code == 0 and expected in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--model", "simple-cn"], "did you mean 'simple-cnn'?"),
        (["train", "--set", "optim.lr=-1"], "config error at optim.lr"),
        (["train", "--lr", "0"], "config error at optim.lr: got 0.0"),
        (["eval", "no/such/run"], "is not a trainlab run directory"),
        (["train", "--resume", "no/such/run"], "is not a trainlab run directory"),
        (["kfold", "--folds", "0"], "--folds must be at least 2"),
        (["search", "--space", "no-such-space.yaml", "--trials", "0"], "--trials must be at least 1"),
        (["train", "--name", ".."], "--name '..' must be a plain directory name"),
        (["runs", __file__], "is a file"),
    ],
)
def test_errors_exit_2_with_message(run_cli, args: list[str], message: str) -> None:
    code, _, err = run_cli(*args)
    assert code == 2 and message in err and "Traceback" not in err


def test_unwritable_out_directory(run_cli, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, _, err = run_cli("train", *FAST, "--out", blocker / "runs")
    assert code == 2 and "cannot create output directory" in err


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_saves_checkpoint_exits_130_and_resumes(tmp_path: Path, signum: int) -> None:
    proc = cli_subprocess("train", "--epochs", "200", "--name", "long", "--set", "callbacks.progress.style=plain",
                          cwd=tmp_path)
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until training is under way (first epoch line printed)
        line = proc.stdout.readline()
        if line.startswith("epoch 1/"):
            break
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "trainlab train --resume runs/long" in out
    run_dir = tmp_path / "runs" / "long"
    assert any(p.name.startswith("last-") for p in (run_dir / "checkpoints").iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    epochs_done = summary["epochs_completed"]
    resume = cli_subprocess("train", "--resume", "runs/long", "--epochs", str(epochs_done + 1),
                            "--set", "callbacks.progress.style=none", cwd=tmp_path)
    out, err = resume.communicate(timeout=120)
    assert resume.returncode == 0, err
    assert json.loads((run_dir / "summary.json").read_text())["epochs_completed"] == epochs_done + 1
