"""Transfer learning (``finetune`` section): each mode trains exactly what it says, frozen BatchNorm keeps its
statistics, the optimizer's groups carry the configured LR ratios, gradual unfreezing resumes bit for bit, and bad
settings fail with one clear error naming them.

simple-cnn's blocks are ``0`` (conv block), ``2`` (conv block) and ``6`` (the linear head).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch

import trainlab
from tests.reliability.helpers import ctrl_c_after_step
from tests.reliability.test_exact_resume import compare_runs
from trainlab import weights
from trainlab.api import TrainingInterrupted
from trainlab.engine import checkpoint
from trainlab.config import FinetuneConfig, OptimConfig
from trainlab.optim import build_optimizer, model_blocks

BASE = {"data.name": "digits", "model.name": "simple-cnn", "model.width": 4, "train.batch_size": 128,
        "train.deterministic": True, "train.device": "cpu", "data.val_fraction": 0.2,
        "callbacks.progress.style": "none", "callbacks.plot_curves": None, "callbacks.checkpoint.save_best": False}
BN_STATS = ("running_mean", "running_var", "num_batches_tracked")


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return trainlab.train(epochs=1, out=tmp_path_factory.mktemp("pre"), name="pre",
                          overrides={**BASE, "train.seed": 1}).path


def last_weights(run_dir: Path) -> checkpoint.Checkpoint:
    return checkpoint.load(checkpoint.latest(run_dir / "checkpoints", "last"))


def finetune(pretrained: Path, out: Path, **settings: Any) -> checkpoint.Checkpoint:
    run = trainlab.train(epochs=1, out=out, init_from=str(pretrained), overrides={**BASE, **settings})
    return last_weights(run.path)


MODES = {
    "all": ({}, ()),
    "last": ({"finetune.mode": "last", "finetune.last": 2}, ("0.",)),
    "head": ({"finetune.mode": "head"}, ("0.", "2.")),
    "freeze": ({"finetune.freeze": ["0.*"]}, ("0.",)),
}


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_changes_exactly_the_trainable_tensors(mode: str, pretrained: Path, tmp_path: Path) -> None:
    settings, frozen_prefixes = MODES[mode]
    start = last_weights(pretrained).model
    end = finetune(pretrained, tmp_path, **settings).model
    for name, before in start.items():
        unchanged = torch.equal(before, end[name])
        if name.startswith(frozen_prefixes):  # weights and (bn=frozen) running statistics stay bit-identical
            assert unchanged, f"{mode}: frozen {name} changed"
        elif not name.endswith("num_batches_tracked"):
            assert not unchanged, f"{mode}: trainable {name} did not change"


def test_bn_train_lets_frozen_batchnorm_statistics_move(pretrained: Path, tmp_path: Path) -> None:
    start = last_weights(pretrained).model
    end = finetune(pretrained, tmp_path, **{"finetune.mode": "head", "finetune.bn": "train"}).model
    assert torch.equal(start["0.1.weight"], end["0.1.weight"]), "the affine parameters stay frozen"
    assert not torch.equal(start["0.1.running_mean"], end["0.1.running_mean"]), "bn=train updates the statistics"


def test_the_optimizer_groups_carry_the_configured_lr_ratios(pretrained: Path, tmp_path: Path) -> None:
    ckpt = finetune(pretrained, tmp_path, **{"finetune.mode": "last", "finetune.last": 2, "optim.lr": 0.01,
                                             "optim.head_lr_mult": 10.0, "finetune.body_lr_mult": 0.1,
                                             "finetune.layer_decay": 0.5})
    lrs = {group["name"]: group["lr"] for group in ckpt.state["optimizer"]["param_groups"]}
    assert lrs == pytest.approx({"0/body/decay": 0.01 * 0.1 * 0.25, "2/body/decay": 0.01 * 0.1 * 0.5,
                                 "6/head/decay": 0.01 * 10.0}, rel=1e-12)


def test_a_new_head_is_created_when_the_classes_differ(pretrained: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    model = trainlab.create_model("simple-cnn", num_classes=3, in_channels=1, input_size=8, width=4)
    with caplog.at_level(logging.INFO, logger="trainlab"):
        skipped = weights.init_model(model, pretrained)
    assert skipped == ["6.bias", "6.weight"]
    assert "created a new head: layer(s) 6 freshly initialized (6.weight [10, 8] -> [3, 8]" in caplog.text
    assert torch.equal(model.state_dict()["0.0.weight"], last_weights(pretrained).model["0.0.weight"])


def test_new_head_starts_the_head_fresh_even_when_it_fits(pretrained: Path, caplog: pytest.LogCaptureFixture) -> None:
    model = trainlab.create_model("simple-cnn", num_classes=10, in_channels=1, input_size=8, width=4)
    fresh = model.state_dict()["6.weight"].clone()
    with caplog.at_level(logging.INFO, logger="trainlab"):
        assert weights.init_model(model, pretrained, new_head=True) == ["6.bias", "6.weight"]
    assert "created a new head (finetune.new_head): layer(s) 6 freshly initialized" in caplog.text
    assert torch.equal(model.state_dict()["6.weight"], fresh)
    assert torch.equal(model.state_dict()["2.0.weight"], last_weights(pretrained).model["2.0.weight"])


def test_the_default_section_leaves_the_optimizer_groups_as_without_it() -> None:
    model = trainlab.create_model("simple-cnn", num_classes=10, in_channels=1, input_size=8, width=4)
    optim = OptimConfig(lr=0.01, weight_decay=1e-4, no_decay_norm_bias=True, head_lr_mult=3.0)
    plain, default = build_optimizer(optim, model), build_optimizer(optim, model, FinetuneConfig())
    assert [(g["name"], g["lr"], g["weight_decay"], [id(p) for p in g["params"]]) for g in plain.param_groups] == \
        [(g["name"], g["lr"], g["weight_decay"], [id(p) for p in g["params"]]) for g in default.param_groups]
    assert [g["name"] for g in plain.param_groups] == ["body/decay", "body/no_decay", "head/decay", "head/no_decay"]


def test_blocks_are_the_top_level_children_holding_parameters() -> None:
    model = trainlab.create_model("googlenet", num_classes=10, in_channels=1, input_size=32)
    names = [name for name, _ in model_blocks(model)]
    assert names[:3] == ["stem", "blocks.3a", "blocks.3b"] and names[-1] == "head" and "blocks.pool3" not in names
    assert sum(len(params) for _, params in model_blocks(model)) == len(list(model.parameters()))


UNFREEZE = {**BASE, "finetune.mode": "head", "finetune.unfreeze_after": 1, "optim.head_lr_mult": 5.0,
            "train.accumulate": 2, "data.augment": ["hflip"], "model.dropout": 0.2}


@pytest.fixture(scope="module")
def unfreeze_reference(pretrained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return trainlab.train(epochs=2, out=tmp_path_factory.mktemp("ref"), name="full", init_from=str(pretrained),
                          overrides=UNFREEZE).path


def test_unfreezing_trains_the_body_from_the_given_epoch(pretrained: Path, unfreeze_reference: Path) -> None:
    start, end = last_weights(pretrained).model, last_weights(unfreeze_reference).model
    assert not torch.equal(start["0.0.weight"], end["0.0.weight"]), "the body trains after the unfreeze"


def interrupted_after(step: int, pretrained: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The same run, stopped by a simulated Ctrl-C right after batch ``step``."""
    with ctrl_c_after_step(step, monkeypatch):
        with pytest.raises(TrainingInterrupted) as stop:
            trainlab.train(epochs=2, out=out, name="cut", init_from=str(pretrained), overrides=UNFREEZE)
    return stop.value.run_dir


@pytest.mark.parametrize("where", [pytest.param("before", marks=pytest.mark.slow), "after"])
def test_exact_resume_across_an_unfreeze(where: str, pretrained: Path, unfreeze_reference: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    steps = trainlab.load_run(unfreeze_reference).summary["steps"] // 2
    cut = interrupted_after(steps // 2 if where == "before" else steps + 3, pretrained, tmp_path, monkeypatch)
    if where == "before":  # the body is still frozen at the cut
        assert torch.equal(last_weights(cut).model["0.0.weight"], last_weights(pretrained).model["0.0.weight"])
    trainlab.train(epochs=2, resume=cut)
    problems = compare_runs(unfreeze_reference, cut)
    assert not problems, f"resume {where} the unfreeze differs:\n" + "\n".join(problems[:20])


def test_an_unfreeze_after_the_last_epoch_is_warned_about(pretrained: Path, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="trainlab"):
        end = finetune(pretrained, tmp_path, **{"finetune.mode": "head", "finetune.unfreeze_after": 1}).model
    assert "finetune.unfreeze_after=1, but the run has 1 epoch(s): nothing will be unfrozen" in caplog.text
    assert torch.equal(end["0.0.weight"], last_weights(pretrained).model["0.0.weight"])


@pytest.mark.parametrize("setting,message", [
    ("finetune.mode=lats", "config error at finetune.mode: got 'lats'; Input should be 'all', 'last' or 'head'"),
    ("finetune.mode=last", "finetune.mode=last needs finetune.last=N"),
    ("finetune.unfreeze_after=2", "finetune.unfreeze_after needs something frozen first"),
    ("finetune.freeze=[features.*]", "finetune.freeze pattern 'features.*' matches no parameter of Sequential"),
    ("finetune.bn=off", "config error at finetune.bn"),
])
def test_bad_finetune_settings_fail_with_one_clear_error(setting: str, message: str, run_cli: Any,
                                                         tmp_path: Path) -> None:
    code, _, err = run_cli("train", "--data", "digits", "--epochs", "1", "--out", tmp_path, "--name", "bad",
                           "--set", "callbacks.progress.style=none", "--set", setting)
    assert code == 2 and message in err and "Traceback" not in err, err
    assert err.count("error:") == 1 and not (tmp_path / "bad").exists()


def test_more_blocks_than_the_model_has_fail_naming_the_blocks(run_cli: Any, tmp_path: Path) -> None:
    code, _, err = run_cli("train", "--data", "digits", "--epochs", "1", "--out", tmp_path, "--name", "bad",
                           "--set", "finetune.mode=last", "--set", "finetune.last=4")
    assert code == 2 and "finetune.last=4, but Sequential has 3 blocks (0, 2, 6); choose 1 to 3" in err
    assert not (tmp_path / "bad").exists()


def test_the_callback_is_configured_through_the_section_only(run_cli: Any, tmp_path: Path) -> None:
    code, _, err = run_cli("train", "--data", "digits", "--epochs", "1", "--out", tmp_path, "--name", "bad",
                           "--set", "finetune.mode=head", "--set", "callbacks.finetune.bn=train")
    assert code == 2 and "set finetune.bn and finetune.unfreeze_after in the finetune section" in err
    assert not (tmp_path / "bad").exists()
