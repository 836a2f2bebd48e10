"""Callbacks driven by scripted metric sequences."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from trainlab.engine.callbacks.checkpoint import CheckpointCallback, share_best_rule
from trainlab.engine.callbacks.early_stopping import EarlyStopping, improved
from trainlab.engine.callbacks.nan_guard import NanGuard
from trainlab.engine.state import TrainState
from trainlab.engine.step import StepRecipe
from trainlab.engine.trainer import LoopSettings, Trainer


def tiny_trainer(epochs: int, ema: float | None = None) -> Trainer:
    """A real trainer around a one-weight model (no data: callbacks are driven by hand)."""
    model = nn.Linear(1, 1, bias=False)
    return Trainer(model, [], None, torch.optim.SGD(model.parameters(), lr=0.1), None, nn.MSELoss(),
                   LoopSettings(task="regression", epochs=epochs, device=torch.device("cpu"), recipe=StepRecipe(ema=ema)))


def drive(callback: EarlyStopping, values: list[float], monitor: str = "val_loss",
          ema: float | None = None) -> tuple[TrainState, Trainer]:
    """Feed one value per epoch; the model's weight is set to the epoch number (the EMA's to ten times it) so
    restores are visible."""
    trainer = tiny_trainer(len(values), ema)
    state = trainer.state
    for value in values:
        state.epoch += 1
        trainer.model.weight.data.fill_(state.epoch)
        if trainer.ema is not None:
            trainer.ema.module.weight.data.fill_(10 * state.epoch)
        state.metrics = {monitor: value}
        callback.on_epoch_end(trainer, state)
        if state.should_stop:
            break
    callback.on_fit_end(trainer, state)
    return state, trainer


def drive_together(callbacks: dict[str, object], metrics: list[dict[str, float]]) -> tuple[list[tuple[str, int]], Trainer]:
    """Run several callbacks in their loop order over scripted epochs, as the trainer does; returns the checkpoints
    saved, as ``(kind, epoch)``, and the trainer (its weight is the epoch number, so a restore is visible)."""
    trainer = tiny_trainer(len(metrics))
    saved: list[tuple[str, int]] = []
    trainer.save_checkpoint = lambda kind, keep=1: saved.append((kind, trainer.state.epoch))  # no files needed
    ordered = sorted(callbacks.values(), key=lambda cb: cb.order)
    state = trainer.state
    for row in metrics:
        state.epoch += 1
        trainer.model.weight.data.fill_(state.epoch)
        state.metrics = dict(row)
        for callback in ordered:
            callback.on_epoch_end(trainer, state)
        if state.should_stop:
            break
    for callback in ordered:
        callback.on_fit_end(trainer, state)
    return saved, trainer


def best_epochs(saved: list[tuple[str, int]]) -> list[int]:
    return [epoch for kind, epoch in saved if kind == "best"]


def test_stops_after_patience_epochs_without_improvement() -> None:
    state, _ = drive(EarlyStopping(patience=2), [1.0, 0.8, 0.9, 0.85, 0.7])
    assert state.should_stop and state.epoch == 4
    assert "has not improved for 2 epochs (best 0.8 at epoch 2)" in state.stop_reason


def test_min_delta_ignores_tiny_improvements() -> None:
    state, _ = drive(EarlyStopping(patience=2, min_delta=0.05), [1.0, 0.98, 0.97, 0.5])
    assert state.should_stop and state.epoch == 3


def test_min_delta_applies_in_max_mode_too() -> None:
    state, trainer = drive(EarlyStopping(monitor="val_acc", mode="max", patience=2, min_delta=0.05),
                           [0.5, 0.52, 0.54, 0.9], monitor="val_acc")
    assert state.should_stop and state.epoch == 3  # +0.02 and +0.04 are below min_delta: not improvements
    assert "(best 0.5 at epoch 1)" in state.stop_reason
    assert trainer.model.weight.item() == 1.0


@pytest.mark.parametrize("value, best, mode, min_delta, expected", [
    (0.9, 1.0, "min", 0.0, True), (1.0, 1.0, "min", 0.0, False), (0.96, 1.0, "min", 0.05, False),
    (0.94, 1.0, "min", 0.05, True), (0.56, 0.5, "max", 0.05, True), (0.54, 0.5, "max", 0.05, False),
    (0.4, 0.5, "max", 0.0, False), (float("nan"), 1.0, "min", 0.0, False), (-float("inf"), 1.0, "min", 0.0, False),
    (float("inf"), 0.5, "max", 0.0, False),
])
def test_the_one_improvement_rule(value: float, best: float, mode: str, min_delta: float, expected: bool) -> None:
    assert improved(value, best, mode, min_delta) is expected


def test_checkpoint_best_follows_max_mode() -> None:
    saved, _ = drive_together({"checkpoint": CheckpointCallback(monitor="val_acc", mode="max")},
                              [{"val_acc": v} for v in (0.5, 0.7, 0.6, 0.8, 0.8)])
    assert best_epochs(saved) == [1, 2, 4]
    assert [epoch for kind, epoch in saved if kind == "last"] == [1, 2, 3, 4, 5]


def test_checkpoint_best_never_takes_a_non_finite_metric() -> None:
    saved, _ = drive_together({"checkpoint": CheckpointCallback()},
                              [{"val_loss": v} for v in (1.0, float("nan"), -float("inf"), 0.5)])
    assert best_epochs(saved) == [1, 4]


def test_with_early_stopping_the_best_checkpoint_is_the_epoch_it_restores() -> None:
    """val_loss 1.0, 0.98, 0.97, 0.90, 0.89 with min_delta 0.05: early stopping's best epochs are 1 and 4 (0.90
    beats 1.0 by more than 0.05); a checkpoint callback with its own rule would call every epoch best and keep
    epoch 5, while early stopping put back epoch 4's weights."""
    callbacks = {"checkpoint": CheckpointCallback(), "early_stopping": EarlyStopping(patience=5, min_delta=0.05)}
    share_best_rule(callbacks)
    saved, trainer = drive_together(callbacks, [{"val_loss": v} for v in (1.0, 0.98, 0.97, 0.90, 0.89)])
    assert best_epochs(saved) == [1, 4]
    assert callbacks["early_stopping"].best_epoch == 4 and trainer.model.weight.item() == 4.0
    assert callbacks["checkpoint"].best == 0.90


def test_the_checkpoint_follows_early_stopping_monitor_and_mode(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="trainlab")
    callbacks = {"checkpoint": CheckpointCallback(), "early_stopping": EarlyStopping(
        monitor="val_acc", mode="max", patience=3, min_delta=0.01)}
    share_best_rule(callbacks)
    assert "'best' follows early_stopping (val_acc, mode max, min_delta 0.01)" in caplog.text
    rows = [{"val_loss": 1.0, "val_acc": 0.5}, {"val_loss": 0.5, "val_acc": 0.505}, {"val_loss": 0.7, "val_acc": 0.6}]
    saved, trainer = drive_together(callbacks, rows)
    assert best_epochs(saved) == [1, 3] and trainer.model.weight.item() == 3.0


def test_a_resumed_checkpoint_callback_keeps_following_early_stopping() -> None:
    first = {"checkpoint": CheckpointCallback(), "early_stopping": EarlyStopping(patience=5, min_delta=0.05)}
    share_best_rule(first)
    drive_together(first, [{"val_loss": v} for v in (1.0, 0.98)])
    second = {"checkpoint": CheckpointCallback(), "early_stopping": EarlyStopping(patience=5, min_delta=0.05)}
    share_best_rule(second)  # the order training uses: link, then load the checkpoint's callback states
    for name, callback in second.items():
        callback.load_state_dict(first[name].state_dict())
    trainer = tiny_trainer(4)
    saved: list[tuple[str, int]] = []
    trainer.save_checkpoint = lambda kind, keep=1: saved.append((kind, trainer.state.epoch))
    for epoch, value in ((3, 0.97), (4, 0.94)):
        trainer.state.epoch, trainer.state.metrics = epoch, {"val_loss": value}
        for callback in sorted(second.values(), key=lambda cb: cb.order):
            callback.on_epoch_end(trainer, trainer.state)
    assert best_epochs(saved) == [4]


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


def test_restore_best_puts_back_the_evaluated_ema_weights_too() -> None:
    _, trainer = drive(EarlyStopping(patience=2), [1.0, 0.5, 0.9, 0.8], ema=0.9)
    assert trainer.model.weight.item() == 2.0
    assert trainer.eval_model.weight.item() == 20.0  # the average validated at epoch 2, not the last one


def test_best_weights_are_cpu_copies_that_survive_a_safe_checkpoint_round_trip() -> None:
    first = EarlyStopping(patience=5)
    drive(first, [1.0, 0.5, 0.9], ema=0.9)
    snapshot = first.state_dict()["best_weights"]
    assert all(t.device.type == "cpu" for t in [*snapshot["model"].values(), *snapshot["ema"]["weights"].values()])
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    second = EarlyStopping(patience=5)
    second.load_state_dict(torch.load(buffer, weights_only=True))  # as a resume loads callback states
    resumed = tiny_trainer(3, ema=0.9)
    resumed.state.epoch = 3
    second.on_fit_end(resumed, resumed.state)
    assert (resumed.model.weight.item(), resumed.eval_model.weight.item()) == (2.0, 20.0)


def test_old_checkpoint_state_with_bare_model_weights_still_restores() -> None:
    callback = EarlyStopping()
    callback.load_state_dict({"best": 0.5, "best_epoch": 1, "wait": 1, "best_weights": {"weight": torch.tensor([[7.0]])}})
    trainer = tiny_trainer(2)
    trainer.state.epoch = 2
    callback.on_fit_end(trainer, trainer.state)
    assert trainer.model.weight.item() == 7.0


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
