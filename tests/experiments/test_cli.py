"""The experiment subcommands end to end, in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

TINY = ["--model", "mlp", "--epochs", "1", "--set", "model.hidden=[8]", "--set", "train.batch_size=128",
        "--set", "callbacks.plot_curves=null"]


def test_help_texts_have_examples(capsys) -> None:
    from trainlab.cli import build_parser

    parser = build_parser()
    for command in ("kfold", "search", "compare", "report"):
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--help"])
        assert "examples:" in capsys.readouterr().out


def test_kfold_command(run_cli, tmp_path: Path) -> None:
    code, out, _ = run_cli("kfold", *TINY, "--folds", "2", "--out", tmp_path, "--name", "cv")
    assert code == 0, out
    assert "mean ± std" in out and "fold ensemble on the test split" in out
    summary = json.loads((tmp_path / "cv" / "summary.json").read_text())
    assert summary["folds"] == 2 and summary["status"] == "completed"
    code, out, _ = run_cli("eval", tmp_path / "cv")
    assert code == 0 and "test_acc" in out


def test_search_command_and_bad_space(run_cli, tmp_path: Path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("optim.lr: [0.01, 0.1]\n")
    code, out, _ = run_cli("search", *TINY, "--space", space, "--method", "grid", "--metric", "val_acc",
                           "--out", tmp_path, "--name", "s")
    assert code == 0, out
    assert "best val_acc" in out and (tmp_path / "s" / "best.yaml").is_file()
    assert len(list((tmp_path / "s").glob("trial-*"))) == 2
    space.write_text("optim.lr: {low: 1, high: 0}\n")
    code, _, err = run_cli("search", *TINY, "--space", space, "--out", tmp_path, "--name", "t")
    assert code == 2 and "low < high" in err


def test_report_of_a_missing_run_is_an_error(run_cli, tmp_path: Path) -> None:
    code, _, err = run_cli("report", tmp_path / "nope")
    assert code == 2 and "not a trainlab run directory" in err


@pytest.mark.parametrize("command", [["train"], ["kfold"], ["search", "--space", "space.yaml"]])
def test_train_kfold_and_search_share_the_common_flags(command: list[str]) -> None:
    from trainlab.cli import build_parser

    common = ["--model", "mlp", "--data", "digits", "--epochs", "2", "--batch-size", "32", "--lr", "0.07",
              "--optimizer", "sgd", "--device", "cpu", "--set", "optim.momentum=0.9"]
    args = build_parser().parse_args([*command, *common])
    assert (args.model, args.data, args.epochs, args.batch_size, args.lr, args.optimizer, args.device) == \
        ("mlp", "digits", 2, 32, 0.07, "sgd", "cpu")


def test_kfold_applies_lr_batch_size_and_optimizer_flags(tmp_path: Path, run_cli) -> None:
    code, _, err = run_cli("kfold", "--folds", "2", "--model", "softmax", "--epochs", "1", "--batch-size", "64",
                           "--lr", "0.07", "--optimizer", "sgd", "--device", "cpu", "--out", tmp_path, "--name", "kf")
    assert code == 0, err
    saved = yaml.safe_load((tmp_path / "kf" / "fold-1" / "config.yaml").read_text())
    assert (saved["optim"]["name"], saved["optim"]["lr"], saved["train"]["batch_size"], saved["train"]["device"]) == \
        ("sgd", 0.07, 64, "cpu")


@pytest.mark.parametrize("command", [["kfold", "--folds", "2"], ["search", "--space", "space.yaml", "--trials", "1"]])
@pytest.mark.parametrize("flags, message", [
    (["--lr", "-1"], "optim.lr"),
    (["--optimizer", "sgdd"], "unknown optimizer 'sgdd'"),
    (["--lr", "inf"], "optim.lr"),
])
def test_bad_common_flags_on_kfold_and_search_fail_before_writing(tmp_path: Path, run_cli, command: list[str],
                                                                  flags: list[str], message: str) -> None:
    (tmp_path / "space.yaml").write_text("optim.lr: [0.01, 0.1]\n")
    args = [a if a != "space.yaml" else str(tmp_path / "space.yaml") for a in command]
    code, _, err = run_cli(*args, "--epochs", "1", *flags, "--out", tmp_path / "out", "--name", "x")
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "out" / "x").exists()


def test_a_bad_batch_size_flag_on_kfold_is_refused_by_the_parser(tmp_path: Path, run_cli) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_cli("kfold", "--batch-size", "0", "--out", tmp_path)
    assert exit_info.value.code == 2 and list(tmp_path.iterdir()) == []
