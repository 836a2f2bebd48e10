"""Optimizers by name, parameter groups (no decay on bias/norm, head LR) and the L1 penalty."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainlab import config as config_mod
from trainlab.config import ConfigError, OptimConfig
from trainlab.optim import L1Penalty, build_optimizer, split_decay
from trainlab.registry import OPTIMIZERS


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_every_optimizer_reduces_a_simple_loss(name: str) -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    x = torch.randn(64, 3)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
    lr = 0.5 if name == "adagrad" else 0.05
    optimizer = build_optimizer(OptimConfig(name=name, lr=lr, weight_decay=1e-4), model)
    first = nn.functional.mse_loss(model(x), y).item()
    for _ in range(60):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * first
    assert all(group["weight_decay"] == 1e-4 for group in optimizer.param_groups)


def test_no_decay_norm_bias_exempts_biases_and_norm_parameters() -> None:
    model = _net()
    optimizer = build_optimizer(OptimConfig(name="sgd", lr=0.1, weight_decay=0.01, no_decay_norm_bias=True), model)
    by_name = {g["name"]: g for g in optimizer.param_groups}
    assert set(by_name) == {"body/decay", "body/no_decay"}
    assert by_name["body/no_decay"]["weight_decay"] == 0.0
    decayed = {id(p) for p in by_name["body/decay"]["params"]}
    assert decayed == {id(model[0].weight), id(model[3].weight)}
    assert len(by_name["body/no_decay"]["params"]) == 4  # two biases, BN weight and bias


def test_head_lr_mult_scales_the_last_linear_layer_only() -> None:
    model = _net()
    optimizer = build_optimizer(OptimConfig(name="adam", lr=0.01, head_lr_mult=10.0), model)
    body, head = optimizer.param_groups
    assert (body["name"], body["lr"]) == ("body/decay", 0.01)
    assert head["name"] == "head/decay" and head["lr"] == pytest.approx(0.1)
    assert {id(p) for p in head["params"]} == {id(model[3].weight), id(model[3].bias)}


def test_grouping_options_need_a_model_with_a_linear_head() -> None:
    with pytest.raises(ValueError, match="need the model"):
        build_optimizer(OptimConfig(head_lr_mult=2.0), nn.Linear(2, 2).parameters())
    with pytest.raises(ValueError, match="nn.Linear"):
        build_optimizer(OptimConfig(head_lr_mult=2.0), nn.Conv2d(1, 1, 3))


def test_l1_penalty_sums_absolute_weights_only() -> None:
    model = _net()
    expected = 0.01 * (model[0].weight.abs().sum() + model[3].weight.abs().sum())
    assert L1Penalty(model, 0.01)().item() == pytest.approx(expected.item())
    weights, exempt = split_decay(model)
    assert len(weights) + len(exempt) == len(list(model.parameters()))


def test_bad_optimizer_options_fail_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="nesterov"):
        build_optimizer(OptimConfig(name="sgd", lr=0.1, nesterov=True), nn.Linear(2, 2))
    with pytest.raises(ValueError, match="beta1"):
        build_optimizer(OptimConfig(name="adamw", beta1=1.5), nn.Linear(2, 2))
    with pytest.raises(ConfigError, match="optim.momentum: not an option of optimizer 'adam'"):
        config_mod.load(overrides=["optim.momentum=0.9"])
    with pytest.raises(ConfigError, match="optim.l1"):
        config_mod.load(overrides=["optim.l1=-1"])
