"""Config precedence and validation messages."""

from __future__ import annotations

from pathlib import Path

import pytest

import trainlab  # noqa: F401
from trainlab.config import ConfigError, load, parse_override


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_are_valid() -> None:
    cfg = load()
    assert (cfg.model.name, cfg.data.name, cfg.optim.name) == ("simple-cnn", "digits", "adam")
    assert "checkpoint" in cfg.enabled_callbacks()


def test_precedence_defaults_file_flags_overrides(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "optim:\n  lr: 0.5\n  name: sgd\ntrain:\n  epochs: 7\n  batch_size: 16\n")
    cfg = load(path)
    assert (cfg.optim.lr, cfg.optim.name, cfg.train.epochs, cfg.train.batch_size) == (0.5, "sgd", 7, 16)
    cfg = load(path, flags={"lr": 0.25, "epochs": 3})
    assert (cfg.optim.lr, cfg.train.epochs, cfg.train.batch_size) == (0.25, 3, 16)
    cfg = load(path, flags={"lr": 0.25}, overrides=["optim.lr=0.125", "optim.momentum=0.9"])
    assert cfg.optim.lr == 0.125
    assert cfg.optim.options() == {"momentum": 0.9}


def test_override_values_are_yaml_typed() -> None:
    assert parse_override("model.hidden=[64, 32]") == ("model.hidden", [64, 32])
    assert parse_override("train.deterministic=true") == ("train.deterministic", True)
    assert parse_override("callbacks.progress=null") == ("callbacks.progress", None)
    cfg = load(overrides=["callbacks.progress=null", "callbacks.early_stopping.patience=2"])
    assert "progress" not in cfg.enabled_callbacks()
    assert cfg.enabled_callbacks()["early_stopping"] == {"patience": 2}


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["optim.lr=-0.1"], "config error at optim.lr: got -0.1; Input should be greater than 0"),
        (["train.batch_size=0"], "config error at train.batch_size: got 0"),
        (["train.epochs=many"], "config error at train.epochs: got 'many'"),
        (["train.epoch=3"], "config error at train.epoch: unknown key; did you mean 'epochs'?"),
        (["train.precision=fp8"], "config error at train.precision: got 'fp8'"),
        (["train.device=tpu"], "device must be auto, cpu, cuda, cuda:N or mps"),
        (["model.name=simple-cn"], "unknown model 'simple-cn'; did you mean 'simple-cnn'?"),
        (["optim.name=adamm"], "did you mean 'adam'?"),
        (["model.dropuot=0.5"], "config error at model.dropuot: not an option of model 'simple-cnn'; did you mean 'dropout'?"),
        (["model.width=wide"], "config error at model.width: got 'wide'"),
        (["callbacks.early_stoping.patience=3"], "unknown callback 'early_stoping'; did you mean 'early_stopping'?"),
        (["callbacks.early_stopping.patiense=3"], "did you mean 'patience'?"),
        (["optim.momentum=0.9"], "not an option of optimizer 'adam'"),
        (["optim.lr=.inf"], "config error at optim.lr: got inf; Input should be a finite number"),
        (["optim.name=sgd", "optim.momentum=.nan"], "config error at optim.momentum: got nan; Input should be a finite"),
        (["train.seed=-1"], "config error at train.seed: got -1; Value error, the seed must be an integer from 0"),
        (["callbacks.early_stopping.patience=few"], "config error at callbacks.early_stopping.patience: got 'few'"),
    ],
)
def test_bad_values_name_key_value_and_allowed(overrides: list[str], expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(overrides=overrides)
    assert expected in str(err.value)


def test_bad_files_and_override_syntax(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="must hold a mapping of sections"):
        load(write(tmp_path / "list.yaml", "- 1\n- 2\n"))
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load(write(tmp_path / "bad.yaml", "train: [\n"))
    with pytest.raises(ConfigError, match=r"empty.yaml is empty \(or holds only comments\)"):
        load(write(tmp_path / "empty.yaml", "# nothing here\n"))
    with pytest.raises(ConfigError, match=r"alias.yaml, line 2: YAML aliases \(\*a\) are not supported"):
        load(write(tmp_path / "alias.yaml", "optim: &a {lr: 0.1}\nmodel: *a\n"))
    with pytest.raises(ConfigError, match=r"dup.yaml, line 3: duplicate key 'lr' \(first given at line 2\)"):
        load(write(tmp_path / "dup.yaml", "optim:\n  lr: 0.1\n  lr: 0.2\n"))
    with pytest.raises(ConfigError, match="expected section.key=value"):
        load(overrides=["lr=0.1"])


def test_threads_setting_applies_to_torch(tmp_path: Path) -> None:
    import torch


    before = torch.get_num_threads()
    try:
        trainlab.train(epochs=1, out=tmp_path, overrides={"train.threads": 2, "model.width": 4,
                                                          "callbacks.progress.style": "none"})
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ConfigError, match="config error at train.threads: got 0"):
        load(overrides=["train.threads=0"])


def test_a_flag_that_switches_the_model_drops_the_old_models_options_with_a_notice(caplog) -> None:
    import logging

    recipe = Path(__file__).resolve().parents[1] / "configs" / "house-prices.yaml"
    with caplog.at_level(logging.INFO, logger="trainlab"):
        cfg = load(recipe, flags={"model": "linear"})
    assert cfg.model.name == "linear" and "hidden" not in cfg.model.options()
    assert "model linear takes no model.hidden" in caplog.text and "it was for model 'mlp'" in caplog.text
    kept = load(recipe, flags={"optimizer": "sgd"}, overrides={"optim.momentum": 0.9})
    assert kept.optim.name == "sgd" and kept.optim.options()["momentum"] == 0.9


def test_set_null_removes_a_component_option_and_the_default_applies() -> None:
    cfg = load(overrides=["model.name=mlp", "model.hidden=[8]", "model.hidden=null"])
    assert "hidden" not in cfg.model.options()
    assert load(overrides=["callbacks.plot_curves=null"]).callbacks["plot_curves"] is None  # still: switch off
    assert load(overrides=["train.name=null"]).train.name is None  # section fields keep null as a value


def test_true_or_false_is_refused_where_a_number_is_expected() -> None:
    """Lax validation turned `data.size=true` into a 1x1 image; a yes/no option still takes true."""
    with pytest.raises(ConfigError, match=r"data.size: got True, which is not a valid value here"):
        load(overrides=["data.size=true"])
    with pytest.raises(ConfigError, match=r"model.hidden: got False"):
        load(overrides=["model.name=mlp", "model.hidden=false"])
    assert load(overrides=["model.name=mlp", "model.batch_norm=true"]).model.options() == {"batch_norm": True}
