"""Callbacks use only the TrainerView: every ``trainer.X`` in a built-in callback is declared by the Protocol,
and the real Trainer provides every member the Protocol declares."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
import torch
from torch import nn

from trainlab.engine.callbacks.base import TrainerView
from trainlab.engine.trainer import LoopSettings, Trainer
from trainlab.registry import CALLBACKS

VIEW_MEMBERS = {name for name in dir(TrainerView) if not name.startswith("_")} | set(TrainerView.__annotations__)


def trainer_attributes(source: str) -> set[str]:
    """Names ``X`` of every ``trainer.X`` read or called in ``source``."""
    return {node.attr for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "trainer"}


@pytest.mark.parametrize("name", CALLBACKS.names())
def test_registered_callbacks_use_only_the_trainer_view(name: str) -> None:
    source = Path(inspect.getsourcefile(CALLBACKS.get(name))).read_text()
    assert trainer_attributes(source) <= VIEW_MEMBERS, trainer_attributes(source) - VIEW_MEMBERS


def test_the_checker_sees_internals() -> None:
    assert trainer_attributes("def f(trainer):\n    return trainer.train_loader.batch_size\n") == {"train_loader"}


def test_the_trainer_provides_the_whole_view() -> None:
    model = nn.Linear(2, 1)
    trainer = Trainer(model, [], None, torch.optim.SGD(model.parameters(), lr=0.1), None, nn.MSELoss(),
                      LoopSettings(task="regression", epochs=1, device=torch.device("cpu")))
    missing = sorted(name for name in VIEW_MEMBERS if not hasattr(type(trainer), name) and not hasattr(trainer, name))
    assert missing == [] and VIEW_MEMBERS >= {"model", "run_dir", "save_checkpoint", "weights_snapshot"}
