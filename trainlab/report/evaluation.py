"""Per-example test predictions of a run's best weights, and the confusion matrix built from them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from trainlab import rundir
from trainlab.engine import checkpoint
from trainlab.engine.trainer import evaluation_weights

if TYPE_CHECKING:
    from trainlab.api import Session


def test_predictions(run_dir: Path, session: "Session | None" = None) -> tuple[np.ndarray, np.ndarray] | None:
    """``(targets, predicted classes)`` of the best weights on the test split, or None when there is none.

    ``session`` reuses data already in memory (the end of ``trainlab train``); without it the run's config
    rebuilds the dataset, as ``trainlab eval`` does.
    """
    from trainlab import config as config_mod
    from trainlab.api import best_checkpoint_path, build_model, build_session, model_outputs

    found = best_checkpoint_path(run_dir)
    if found is None:
        return None
    if session is None:
        cfg = config_mod.load(run_dir / rundir.CONFIG_FILE, overrides={"train.device": "cpu"})
        session = build_session(cfg, run_dir=None)
    if session.bundle.test is None or session.bundle.meta.task != "classification":
        return None
    model = build_model(session.cfg, session.bundle.meta)
    model.load_state_dict(evaluation_weights(checkpoint.load(found)))  # the EMA average when the run kept one
    model.to(session.device)
    targets, preds = [], []
    for x, y in session.loader("test").epoch(0):
        preds.append(model_outputs(model, x, "classification", session.cfg.train.tta_flip).argmax(dim=1).cpu())
        targets.append(y.cpu())
    return torch.cat(targets).numpy(), torch.cat(preds).numpy()


def confusion_matrix(targets: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """``matrix[true, predicted]`` counts."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (targets.astype(int), preds.astype(int)), 1)
    return matrix


def per_class_accuracy(matrix: np.ndarray, classes: Sequence[str]) -> list[dict[str, Any]]:
    """Rows of class, support, correct and accuracy (recall) — the classes a model confuses stand out."""
    rows = []
    for i, name in enumerate(classes):
        support = int(matrix[i].sum())
        correct = int(matrix[i, i])
        rows.append({"class": name, "support": support, "correct": correct,
                     "accuracy": correct / support if support else float("nan")})
    return rows
