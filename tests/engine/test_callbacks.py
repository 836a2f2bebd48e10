"""Callbacks driven by scripted metric sequences."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from trainlab.engine.callbacks.early_stopping import EarlyStopping
from trainlab.engine.callbacks.nan_guard import NanGuard
from trainlab.engine.state import TrainState


def drive(callback: EarlyStopping, values: list[float], monitor: str = "val_loss") -> tuple[TrainState, SimpleNamespace]:
    """Feed one value per epoch; the model's weight is set to the epoch number so restores are visible."""
    model = nn.Linear(1, 1, bias=False)
    trainer = SimpleNamespace(model=model)
    state = TrainState(epochs=len(values), steps_per_epoch=1)
    for value in values:
        state.epoch += 1
        model.weight.data.fill_(state.epoch)
        state.metrics = {monitor: value}
        callback.on_epoch_end(trainer, state)
        if state.should_stop:
            break
    callback.on_fit_end(trainer, state)
    return state, trainer


def test_stops_after_patience_epochs_without_improvement() -> None:
    state, _ = drive(EarlyStopping(patience=2), [1.0, 0.8, 0.9, 0.85, 0.7])
    assert state.should_stop and state.epoch == 4
    assert "has not improved for 2 epochs (best 0.8 at epoch 2)" in state.stop_reason


def test_min_delta_ignores_tiny_improvements() -> None:
    state, _ = drive(EarlyStopping(patience=2, min_delta=0.05), [1.0, 0.98, 0.97, 0.5])
    assert state.should_stop and state.epoch == 3


def test_max_mode_and_restore_best_weights() -> None:
    state, trainer = drive(EarlyStopping(monitor="val_acc", mode="max", patience=2), [0.5, 0.9, 0.8, 0.85],
                           monitor="val_acc")
    assert state.epoch == 4
    assert trainer.model.weight.item() == 2.0  # the epoch-2 weights came back


def test_no_restore_keeps_last_weights() -> None:
    _, trainer = drive(EarlyStopping(patience=1, restore_best=False), [0.5, 0.9])
    assert trainer.model.weight.item() == 2.0


def test_state_dict_round_trip_continues_patience() -> None:
    first = EarlyStopping(patience=3)
    drive(first, [1.0, 1.1, 1.2])
    second = EarlyStopping(patience=3)
    second.load_state_dict(first.state_dict())
    assert (second.best, second.wait, second.best_epoch) == (1.0, 2, 1)


def test_missing_monitor_names_available_metrics() -> None:
    with pytest.raises(KeyError, match="monitors 'val_loss' but the epoch produced only: train_loss"):
        drive(EarlyStopping(), [1.0], monitor="train_loss")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_guard_stops_and_names_epoch_and_step(bad: float) -> None:
    state = TrainState(epochs=3, steps_per_epoch=10, epoch=1, step=14, batch_in_epoch=4)
    state.last_loss = torch.tensor(bad)
    NanGuard().on_batch_end(None, state)
    assert state.should_stop and state.failed
    assert f"loss became {bad} at epoch 2, step 14" in state.stop_reason


def test_nan_guard_passes_finite_loss() -> None:
    state = TrainState(epochs=1, steps_per_epoch=1, step=1)
    state.last_loss = torch.tensor(0.3)
    NanGuard().on_batch_end(None, state)
    assert not state.should_stop
