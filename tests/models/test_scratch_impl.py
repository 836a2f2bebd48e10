"""``model.impl=scratch``: the zoo's small models built from the hand-written layers compute what the ``torch.nn``
build computes (same seed, same weights, same outputs and gradients) and train; ``dropout2d`` drops feature-map
channels; ``trainlab.nn`` is the public face of the hand-written layers."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.testing import assert_close

import trainlab.nn as tnn
from trainlab import config as config_mod
from trainlab.models import create, scratch
from trainlab.models.impl import SWAPS
from trainlab.registry import MODELS

# every model with an ``impl`` option, with options that bring in each layer it can swap
IMPL_MODELS: dict[str, tuple[dict[str, Any], tuple[int, ...]]] = {
    "mlp": ({"hidden": [16, 12], "batch_norm": True, "dropout": [0.2, 0.3]}, (1, 8, 8)),
    "lenet": ({"batch_norm": True, "dropout2d": 0.2}, (1, 16, 16)),
    "lenet-modern": ({"batch_norm": True}, (1, 16, 16)),
    "simple-cnn": ({"width": 4, "dropout": 0.3, "dropout2d": 0.1}, (3, 12, 12)),
}


def test_every_model_with_impl_is_tested() -> None:
    from trainlab.registry import builder_params

    assert sorted(n for n in MODELS.names() if "impl" in builder_params(MODELS.get(n))) == sorted(IMPL_MODELS)


def _pair(name: str) -> tuple[nn.Module, nn.Module, tuple[int, ...]]:
    options, shape = IMPL_MODELS[name]
    built = []
    for impl in ("torch", "scratch"):
        torch.manual_seed(3)
        built.append(create(name, num_classes=5, in_channels=shape[0], input_size=shape[1:], impl=impl, **options))
    return built[0], built[1], shape


@pytest.mark.parametrize("name", sorted(IMPL_MODELS))
def test_scratch_build_has_the_same_weights_and_only_hand_written_layers(name: str) -> None:
    theirs, ours, _ = _pair(name)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    for key, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key
    left = [type(m).__name__ for m in ours.modules() if type(m) in SWAPS]
    assert left == []  # no torch Conv2d, pooling, dropout or batch norm remains
    assert any(type(m).__module__ == scratch.__name__ for m in ours.modules())


@pytest.mark.parametrize("name", sorted(IMPL_MODELS))
def test_scratch_and_torch_compute_the_same_outputs_gradients_and_running_stats(name: str) -> None:
    theirs, ours, shape = _pair(name)
    torch.manual_seed(0)
    x, y = torch.randn(6, *shape), torch.randint(0, 5, (6,))
    for model in (theirs, ours):
        model.train()
        for m in model.modules():  # dropout draws differ between implementations; batch norm trains for real
            if isinstance(m, (nn.Dropout, nn.Dropout2d, scratch.Dropout)):
                m.eval()
    out_theirs, out_ours = theirs(x), ours(x)
    assert_close(out_ours, out_theirs, rtol=1e-5, atol=1e-5)
    nn.functional.cross_entropy(out_theirs, y).backward()
    nn.functional.cross_entropy(out_ours, y).backward()
    grads = dict(theirs.named_parameters())
    for key, param in ours.named_parameters():
        assert_close(param.grad, grads[key].grad, rtol=1e-4, atol=1e-6, msg=f"gradient of {key}")
    for key, value in theirs.state_dict().items():  # running means and variances moved alike
        assert_close(ours.state_dict()[key], value, rtol=1e-5, atol=1e-6, msg=key)
    theirs.eval(), ours.eval()
    assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)


def test_bad_impl_is_refused_by_the_config_and_the_builder(tmp_path: Path) -> None:
    with pytest.raises(config_mod.ConfigError, match="config error at model.impl: got 'numpy'"):
        config_mod.load(overrides={"model.name": "lenet", "model.impl": "numpy"})
    with pytest.raises(ValueError, match="lenet impl must be one of torch, scratch, got 'numpy'"):
        create("lenet", num_classes=2, in_channels=1, input_size=(16, 16), impl="numpy")


def test_bn_from_scratch_is_one_command(run_cli: Any, tmp_path: Path) -> None:
    """The curriculum's experiment: LeNet with hand-written batch norm trains, and the saved run reloads as such."""
    code, _, stderr = run_cli("train", "--data", "digits", "--model", "lenet", "--set", "data.size=16",
                              "--set", "model.impl=scratch", "--set", "model.batch_norm=true", "--epochs", "2",
                              "--lr", "0.01", "--set", "callbacks.progress.style=none",
                              "--set", "callbacks.plot_curves=null", "--out", tmp_path, "--name", "bn")
    assert code == 0, stderr
    with open(tmp_path / "bn" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 and float(rows[1]["train_loss"]) < float(rows[0]["train_loss"])
    from trainlab.api import load_run

    model = load_run(tmp_path / "bn").load_model()
    assert sum(isinstance(m, scratch.BatchNorm) for m in model.modules()) == 4


@pytest.mark.parametrize("name, shape, expected", [
    ("simple-cnn", (1, 12, 12), 2), ("lenet", (1, 16, 16), 2), ("vgg11", (1, 32, 32), 5),
])
def test_dropout2d_drops_feature_maps_after_each_stage(name: str, shape: tuple[int, ...], expected: int) -> None:
    options = {"width_div": 16, "hidden": 8} if name.startswith("vgg") else {}
    plain = create(name, num_classes=3, in_channels=shape[0], input_size=shape[1:], **options)
    model = create(name, num_classes=3, in_channels=shape[0], input_size=shape[1:], dropout2d=0.25, **options)
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout2d)] == [0.25] * expected
    assert not any(isinstance(m, nn.Dropout2d) for m in plain.modules())  # off: the layer indices stay as they were
    assert plain.state_dict().keys() == create(name, num_classes=3, in_channels=shape[0], input_size=shape[1:],
                                               dropout2d=0.0, **options).state_dict().keys()
    with pytest.raises(ValueError, match=f"{name} dropout2d must be in \\[0, 1\\), got 1.5"):
        create(name, num_classes=3, in_channels=shape[0], input_size=shape[1:], dropout2d=1.5, **options)


def test_dropout2d_through_the_config_is_checked() -> None:
    cfg = config_mod.load(overrides={"model.name": "simple-cnn", "model.dropout2d": 0.2})
    assert cfg.model.options()["dropout2d"] == 0.2
    with pytest.raises(config_mod.ConfigError, match="config error at model.dropout2d: got 'lots'"):
        config_mod.load(overrides={"model.name": "simple-cnn", "model.dropout2d": "lots"})


def test_scratch_dropout2d_zeroes_whole_channels_and_keeps_the_mean() -> None:
    torch.manual_seed(0)
    layer = scratch.Dropout2d(0.5)
    x = torch.rand(64, 32, 3, 3) + 1.0
    y = layer(x)
    per_channel = (y == 0).flatten(2)
    assert torch.equal(per_channel.all(-1), per_channel.any(-1))  # a channel is dropped whole or not at all
    dropped = per_channel.all(-1).float().mean().item()
    assert 0.4 < dropped < 0.6
    kept = ~per_channel.all(-1)
    assert_close(y[kept], (x * 2)[kept])  # survivors scaled by 1/(1-p)
    assert torch.equal(layer.eval()(x), x)
    with pytest.raises(ValueError, match="4-D input"):
        layer.train()(torch.ones(2, 3))


def test_trainlab_nn_exposes_the_hand_written_layers() -> None:
    assert set(tnn.__all__) == set(scratch.__all__)
    assert all(getattr(tnn, name) is getattr(scratch, name) for name in tnn.__all__)
    conv = tnn.Conv2d(2, 3, 3, padding=1)
    reference = nn.Conv2d(2, 3, 3, padding=1)
    reference.load_state_dict(conv.state_dict())
    x = torch.randn(1, 2, 5, 5)
    assert_close(conv(x), reference(x))


@pytest.mark.parametrize("setting, message", [
    ("model.impl=numpy", "error: config error at model.impl: got 'numpy'"),
    ("model.dropout2d=1.5", "error: lenet dropout2d must be in [0, 1), got 1.5"),
    ("train.test_each_epoch=sometimes", "error: config error at train.test_each_epoch: got 'sometimes'"),
])
def test_bad_values_on_the_command_line_write_nothing(run_cli: Any, tmp_path: Path, setting: str, message: str) -> None:
    code, _, stderr = run_cli("train", "--data", "digits", "--set", "data.size=16", "--model", "lenet",
                              "--set", setting, "--epochs", "1", "--out", tmp_path, "--name", "bad")
    assert code == 2 and stderr.strip().splitlines()[-1].startswith(message)
    assert not (tmp_path / "bad").exists()
