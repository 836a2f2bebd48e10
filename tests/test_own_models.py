"""Your own nn.Module: by file, by import path, as a class or instance from Python; recorded, checked and trusted."""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import trainlab
from trainlab import rundir
from trainlab.config import ConfigError
from trainlab.models import custom

MODEL_CODE = textwrap.dedent('''
    from torch import nn


    class TinyNet(nn.Module):
        """Flatten, one hidden layer of ``width`` units, a linear head."""

        def __init__(self, num_classes: int, in_channels: int, input_size: tuple, width: int = 4) -> None:
            super().__init__()
            pixels = in_channels * input_size[0] * input_size[1]
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(pixels, width), nn.ReLU())
            self.head = nn.Linear(width, num_classes)

        def forward(self, x):
            return self.head(self.body(x))


    class NeedsDepth(nn.Module):
        def __init__(self, depth: int) -> None:
            super().__init__()
            self.depth = depth
''')
QUIET = ("--set", "callbacks.progress.style=none", "--set", "callbacks.plot_curves=null")


def tiny_params(width: int) -> int:
    """Parameters of TinyNet on 1x8x8 digits, 10 classes."""
    return 64 * width + width + width * 10 + 10


@pytest.fixture
def fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget every model class loaded so far, as a new process would start (runs trained here reopen only so)."""
    monkeypatch.setattr(custom, "_LOADED", {})


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "code" / "tiny_net.py"
    path.parent.mkdir()
    path.write_text(MODEL_CODE)
    return path


def train_cli(run_cli, model: str, out: Path, *extra: str) -> Path:
    code, _, err = run_cli("train", "--model", model, "--data", "digits", "--epochs", "1", "--out", out, *QUIET,
                           *extra)
    assert code == 0, err
    (run_dir,) = out.iterdir()
    return run_dir


def digit_png(path: Path) -> Path:
    from sklearn.datasets import load_digits

    Image.fromarray((load_digits().images[0] * 255 / 16).astype(np.uint8), mode="L").save(path)
    return path


def test_own_model_from_a_file_trains_evaluates_predicts_resumes_and_reports(
        tmp_path: Path, model_file: Path, run_cli, request: pytest.FixtureRequest) -> None:
    run_dir = train_cli(run_cli, f"{model_file}:TinyNet", tmp_path / "runs", "--set", "model.width=6")
    assert run_dir.name.startswith("TinyNet-digits-")
    source = json.loads((run_dir / rundir.MODEL_SOURCE_FILE).read_text())
    assert source == {"schema": 1, "kind": "file", "reference": f"{model_file}:TinyNet", "class_name": "TinyNet",
                      "module": None, "path": str(model_file), "instance": None,
                      "sha256": hashlib.sha256(model_file.read_bytes()).hexdigest()}
    summary = rundir.read_summary(run_dir)
    assert summary["params"] == tiny_params(6)

    request.getfixturevalue("fresh_process")  # from here on, as a later `trainlab` process
    for command in (["eval", run_dir], ["predict", run_dir, digit_png(tmp_path / "d.png")], ["report", run_dir],
                    ["train", "--resume", run_dir, "--epochs", "2"]):
        code, _, err = run_cli(*command)
        assert code == 2 and err.count("error:") == 1, (command, err)
        assert f"would run the file {model_file}" in err and "add --trust-code" in err
    assert rundir.read_summary(run_dir)["epochs_completed"] == 1  # the refused resume changed nothing

    code, out, err = run_cli("eval", run_dir, "--trust-code")
    assert code == 0, err
    assert f"test_acc {summary['test']['test_acc']:.2%}" in out
    code, out, _ = run_cli("predict", run_dir, tmp_path / "d.png", "--json", "--trust-code")
    assert code == 0 and json.loads(out.splitlines()[-1])["label"] in [str(d) for d in range(10)]
    code, out, err = run_cli("report", run_dir, "--trust-code")
    assert code == 0 and "report written" in out, err
    code, _, err = run_cli("train", "--resume", run_dir, "--epochs", "2", "--trust-code", *QUIET)
    assert code == 0, err
    assert rundir.read_summary(run_dir)["epochs_completed"] == 2


def test_own_model_by_import_path(tmp_path: Path, model_file: Path, run_cli, monkeypatch: pytest.MonkeyPatch,
                                  request: pytest.FixtureRequest) -> None:
    package = tmp_path / "pkg_src" / "ownnets_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "tiny.py").write_text(MODEL_CODE)
    monkeypatch.syspath_prepend(str(package.parent))
    run_dir = train_cli(run_cli, "ownnets_pkg.tiny:TinyNet", tmp_path / "runs")
    source = rundir.read_model_source(run_dir)
    assert (source["kind"], source["module"], source["path"]) == ("module", "ownnets_pkg.tiny",
                                                                  str(package / "tiny.py"))
    assert rundir.read_summary(run_dir)["params"] == tiny_params(4)

    request.getfixturevalue("fresh_process")
    code, _, err = run_cli("eval", run_dir)
    assert code == 2 and "would run the module ownnets_pkg.tiny" in err
    code, out, err = run_cli("predict", run_dir, digit_png(tmp_path / "d.png"), "--trust-code")
    assert code == 0 and "d.png" in out, err
    code, _, err = run_cli("train", "--resume", run_dir, "--epochs", "2", "--trust-code", *QUIET)
    assert code == 0, err
    assert trainlab.load_run(run_dir, trust_code=True).evaluate()["test_acc"] == \
        rundir.read_summary(run_dir)["test"]["test_acc"]


@pytest.mark.parametrize(("option", "message"), [
    ("model.widht=8", ("config error at model.widht: not an option of model '{ref}'; did you mean 'width'?\n"
                       "options: width")),
    ("model.width=many", "config error at model.width"),
])
def test_options_are_checked_against_the_constructor(tmp_path: Path, model_file: Path, run_cli, option: str,
                                                      message: str) -> None:
    ref = f"{model_file}:TinyNet"
    code, _, err = run_cli("train", "--model", ref, "--out", tmp_path / "runs", "--set", option)
    assert code == 2 and err.count("error:") == 1
    assert message.format(ref=ref) in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("model", "message"), [
    ("{file}:NeedsDepth", "needs model.depth (its constructor has no default); add e.g. --set model.depth=VALUE"),
    ("{file}:Missing", "defines no class Missing; nn.Module classes there: NeedsDepth, TinyNet"),
    ("{dir}/nowhere.py:TinyNet", "model file {dir}/nowhere.py not found"),
    ("no_such_package_xyz.nets:TinyNet", "cannot import module no_such_package_xyz.nets"),
    ("{file}:9lives", "is not a model reference: expected path/to/file.py:ClassName or package.module:ClassName"),
])
def test_bad_model_references_are_one_clear_error(tmp_path: Path, model_file: Path, run_cli, model: str,
                                                  message: str) -> None:
    fill = {"file": model_file, "dir": model_file.parent}
    code, _, err = run_cli("train", "--model", model.format(**fill), "--out", tmp_path / "runs")
    assert code == 2 and err.count("error:") == 1
    assert message.format(**fill) in err
    assert not (tmp_path / "runs").exists()


def test_a_changed_or_missing_model_file_is_refused_naming_it_and_the_hashes(
        tmp_path: Path, model_file: Path, run_cli) -> None:
    run_dir = train_cli(run_cli, f"{model_file}:TinyNet", tmp_path / "runs")
    trained = hashlib.sha256(model_file.read_bytes()).hexdigest()
    model_file.write_text(MODEL_CODE.replace("nn.ReLU()", "nn.Tanh()"))
    changed = hashlib.sha256(model_file.read_bytes()).hexdigest()
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    for command in (["eval", run_dir, "--trust-code"], ["train", "--resume", run_dir, "--epochs", "2", "--trust-code"]):
        code, _, err = run_cli(*command)
        assert code == 2 and err.count("error:") == 1
        assert f"model file {model_file} changed since run {run_dir} was trained: SHA-256 was {trained}, " \
               f"is now {changed}" in err
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before  # nothing written

    model_file.unlink()
    code, _, err = run_cli("eval", run_dir, "--trust-code")
    assert code == 2 and f"model file {model_file} of run {run_dir} is missing" in err


def test_summary_of_a_file_class(model_file: Path, run_cli) -> None:
    code, out, err = run_cli("summary", f"{model_file}:TinyNet", "--input", "1x8x8", "-o", "width=3")
    assert code == 0, err
    assert f"total: {tiny_params(3):,} params" in out and "head" in out
    code, _, err = run_cli("summary", f"{model_file}:TinyNet", "--input", "1x8x8", "-o", "depth=3")
    assert code == 2 and "not an option of model" in err and "options: width" in err


def test_classes_and_instances_from_python(tmp_path: Path, model_file: Path, run_cli,
                                           caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest) -> None:
    class LocalNet(nn.Module):  # like a class in __main__: no other process can import it
        def __init__(self, num_classes: int, width: int = 3) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, num_classes))

        def forward(self, x):
            return self.net(x)

    quiet = {"callbacks.progress.style": "none"}
    by_class = trainlab.train(model=LocalNet, data="digits", epochs=1, out=tmp_path / "runs", name="cls",
                              overrides={**quiet, "model.width": 5})
    assert by_class.summary["params"] == 64 * 5 + 5 + 5 * 10 + 10
    instance = LocalNet(10, width=2)
    by_instance = trainlab.train(model=instance, data="digits", epochs=1, out=tmp_path / "runs", name="obj",
                                 overrides=quiet)
    assert by_instance.summary["params"] == 64 * 2 + 2 + 2 * 10 + 10
    assert "so no other process can import it" in caplog.text
    source = rundir.read_model_source(by_instance.path)
    assert source["kind"] == "unimportable" and source["class_name"].endswith("<locals>.LocalNet")
    assert by_class.evaluate()["test_acc"] == by_class.summary["test"]["test_acc"]  # same process: class known
    assert by_instance.evaluate()["test_acc"] == by_instance.summary["test"]["test_acc"]  # and a copy of the instance
    assert "model summary unavailable" not in caplog.text  # the reports rebuilt both models

    request.getfixturevalue("fresh_process")
    code, _, err = run_cli("eval", by_class.path, "--trust-code")
    assert code == 2 and "cannot be imported again" in err and "trainlab.load_run" in err and "model=LocalNet" in err
    reopened = trainlab.load_run(by_class.path, model=LocalNet)
    assert reopened.evaluate()["test_acc"] == by_class.summary["test"]["test_acc"]
    resumed = trainlab.train(resume=by_class.path, model=LocalNet, epochs=2)
    assert resumed.summary["epochs_completed"] == 2 and resumed.summary["params"] == by_class.summary["params"]
    with pytest.raises(ValueError, match="trained with an instance of .*LocalNet.*pass one built the same way"):
        trainlab.load_run(by_instance.path, model=None).load_model()
    reopened = trainlab.load_run(by_instance.path, model=LocalNet(10, width=2))
    assert reopened.evaluate()["test_acc"] == by_instance.summary["test"]["test_acc"]
    code, _, err = run_cli("compare", by_class.path, by_instance.path, "--out", tmp_path / "cmp")
    assert code == 0, err  # comparing reads files only: no model code needed

    with pytest.raises(ConfigError, match="(?s)not an option of model .*options: width"):
        trainlab.train(model=LocalNet, data="digits", epochs=1, out=tmp_path / "bad", overrides={"model.wide": 2})
    with pytest.raises(ValueError, match="an instance trains as it is"):
        trainlab.train(model=instance, data="digits", epochs=1, out=tmp_path / "bad", overrides={"model.width": 2})
    assert not (tmp_path / "bad").exists()


def test_the_documented_example_model_file_builds() -> None:
    example = Path(__file__).resolve().parents[1] / "examples" / "my_net.py"
    model = trainlab.create_model(f"{example}:MyNet", num_classes=10, in_channels=1, input_size=28, width=8)
    assert trainlab.summary(model, (1, 28, 28)).attrs["totals"]["params"] == 80 + 16 + 1168 + 32 + 170
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_a_model_source_of_another_schema_is_refused(tmp_path: Path) -> None:
    source = custom.ModelSource(custom.FILE, "net.py:Net", "Net", path=str(tmp_path / "net.py"), sha256="0" * 64)
    rundir.write_model_source(tmp_path, source.to_dict())
    assert custom.ModelSource.from_dict(rundir.read_model_source(tmp_path)) == source
    (tmp_path / rundir.MODEL_SOURCE_FILE).write_text(json.dumps({"schema": 7, **source.to_dict()}))
    with pytest.raises(rundir.RunDirError, match="is not a model source this trainlab .* reads \\(schema 1\\)"):
        rundir.read_model_source(tmp_path)


@pytest.mark.parametrize("command", ["train", "summary", "kfold", "search"])
def test_help_says_that_a_model_file_runs(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    from trainlab.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "file.py:ClassName" in text and "RUNS" in text


def test_picking_an_own_model_over_a_config_drops_the_old_models_options(caplog: pytest.LogCaptureFixture) -> None:
    from trainlab import config as config_mod

    root = Path(__file__).resolve().parents[1]
    assert config_mod.load(root / "configs" / "digits.yaml").model.options() == {"width": 16}  # for simple-cnn
    with caplog.at_level("INFO", logger="trainlab"):
        cfg = config_mod.load(root / "configs" / "digits.yaml", flags={"model": "nets/mine.py:Net"})
    assert cfg.model.name == "nets/mine.py:Net" and cfg.model.options() == {}  # validating imported nothing
    assert "model.width dropped from the config: it was for model 'simple-cnn'" in caplog.text


@pytest.mark.slow
def test_kfold_of_an_own_model_reopens_with_trust_code(tmp_path: Path, model_file: Path, run_cli,
                                                       request: pytest.FixtureRequest) -> None:
    code, _, err = run_cli("kfold", "--model", f"{model_file}:TinyNet", "--data", "digits", "--folds", "2",
                           "--epochs", "1", "--out", tmp_path / "runs", *QUIET)
    assert code == 0, err
    (kfold_dir,) = (tmp_path / "runs").iterdir()
    assert kfold_dir.name.startswith("TinyNet-digits-kfold2-")
    assert all(rundir.read_model_source(kfold_dir / f"fold-{fold}")["class_name"] == "TinyNet" for fold in (1, 2))

    request.getfixturevalue("fresh_process")
    code, _, err = run_cli("eval", kfold_dir)
    assert code == 2 and f"would run the file {model_file}" in err
    code, out, err = run_cli("eval", kfold_dir, "--trust-code")
    assert code == 0 and "test_acc" in out, err


def test_a_relative_model_file_is_saved_absolute_so_the_config_trains_from_anywhere(
        tmp_path: Path, model_file: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(model_file.parent.parent)
    run_dir = train_cli(run_cli, "code/tiny_net.py:TinyNet", tmp_path / "runs")
    config_text = (run_dir / rundir.CONFIG_FILE).read_text()
    assert f"name: {model_file}:TinyNet" in config_text
    assert '#   model.name: "code/tiny_net.py:TinyNet"' in config_text  # as typed, in the leading comment

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, _, err = run_cli("train", "-c", run_dir / rundir.CONFIG_FILE, "--epochs", "1", "--out", "runs", *QUIET)
    assert code == 0, err
    (again,) = (elsewhere / "runs").iterdir()
    assert rundir.read_summary(again)["params"] == tiny_params(4)
