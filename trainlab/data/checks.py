"""Sanity checks every dataset passes before anything trains on it, shared by the builders and `trainlab data check`.

A dataset that cannot train a meaningful model — a single class, no rows left for training or validation after
``data.val_fraction`` — is refused here with one message naming where the data came from and how to fix it,
instead of training to a perfect score or failing much later with an error about something else.  Data that
can train but is suspiciously small is accepted with a logged warning.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from trainlab.data.bundle import DataBundle, held_counts

logger = logging.getLogger(__name__)

MIN_TRAIN_ROWS = 10  # fewer training examples than this still train, with a warning


@dataclass
class Findings:
    """What a check found: ``problems`` refuse the dataset, ``warnings`` only deserve a word."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _split_counts(labels: np.ndarray, val_fraction: float, stratify: bool) -> tuple[dict[object, int], int]:
    """Training examples per label and validation size, exactly as ``bundle.stratified_split`` will split them."""
    values, sizes = np.unique(labels, return_counts=True) if stratify else (np.array([None]), np.array([len(labels)]))
    held = held_counts(sizes.tolist(), val_fraction)
    return {v: int(s - h) for v, s, h in zip(values.tolist(), sizes.tolist(), held)}, int(sum(held))


def dataset_findings(labels: np.ndarray, *, task: str, classes: Sequence[str] | None, val_fraction: float,
                     where: str, classes_from: str = "labels", val_rows: int | None = None) -> Findings:
    """Problems and warnings of a dataset with training ``labels`` (class indices, or targets for regression).

    With ``val_rows=None`` the labels are every row before the validation split, which ``val_fraction`` will take
    out of them (the check predicts that split exactly).  Otherwise the labels are the training split already and
    ``val_rows`` is the size of the validation split made from ``val_fraction``.
    """
    found = Findings()
    labels = np.asarray(labels)
    classify = task == "classification"
    if classify and classes is not None and len(classes) < 2:
        shown = ", ".join(repr(str(c)) for c in classes) or "none"
        found.problems.append(f"{where}: classification needs at least two classes, found {len(classes)} ({shown}) "
                              f"among the {classes_from}; add examples of another class, or check the data source")
    if val_rows is None:
        per_class, val = _split_counts(labels, val_fraction, stratify=classify)
        train = sum(per_class.values())
    else:
        train, val = len(labels), val_rows
        per_class = dict(zip(*np.unique(labels, return_counts=True))) if classify else {}
    _size_findings(found, train, val, val_fraction, where)
    if not found.problems and classify and classes is not None:
        missing = [str(classes[int(c)]) for c in range(len(classes)) if per_class.get(c, 0) == 0]
        if missing:
            found.warnings.append(f"{where}: class(es) {', '.join(map(repr, missing[:5]))} have no training example "
                                  f"after the validation split; the model cannot learn them (add examples, or lower "
                                  f"data.val_fraction={val_fraction})")
    return found


def _size_findings(found: Findings, train: int, val: int, val_fraction: float, where: str) -> None:
    """Refuse an empty training or validation split (naming ``data.val_fraction``), warn about a tiny one."""
    rows = train + val
    if rows == 0:
        found.problems.append(f"{where}: no examples to train on")
    elif val_fraction > 0 and val == 0:
        fix = (f"set data.val_fraction to at least {1 / rows:.3g}, or " if rows > 1 else "")
        found.problems.append(f"{where}: data.val_fraction={val_fraction} of {rows} example(s) leaves an empty "
                              f"validation split; add examples, {fix}set data.val_fraction=0 to train without validation")
    elif train == 0:
        found.problems.append(f"{where}: data.val_fraction={val_fraction} holds out all {rows} example(s), leaving "
                              "none to train on; lower data.val_fraction or add examples")
    elif train < MIN_TRAIN_ROWS:
        found.warnings.append(f"{where}: only {train} training example(s); the model will barely learn and its "
                              "metrics say little (add examples)")


def check_dataset(labels: np.ndarray, *, task: str, classes: Sequence[str] | None, val_fraction: float, where: str,
                  classes_from: str = "labels", val_rows: int | None = None) -> None:
    """:func:`dataset_findings`, then a ValueError listing the problems, or each warning logged."""
    enforce(dataset_findings(labels, task=task, classes=classes, val_fraction=val_fraction, where=where,
                             classes_from=classes_from, val_rows=val_rows))


def enforce(found: Findings) -> None:
    """Refuse with a ValueError listing every problem; otherwise log each warning."""
    if found.problems:
        raise ValueError("\n  ".join(found.problems))
    for warning in found.warnings:
        logger.warning("%s", warning)


def check_bundle(bundle: DataBundle, val_fraction: float, where: str) -> None:
    """The refusals of :func:`dataset_findings` for any built dataset (warnings are the builders' to give).

    ``data.build`` runs this after every builder, so a dataset that does not check itself still cannot hand the
    trainer an empty split or a single class (e.g. a tiny ``data.val_fraction`` on a fixed dataset).
    """
    tensors = getattr(bundle.train, "tensors", None)
    labels = tensors[1].numpy() if tensors is not None and len(tensors) > 1 else np.zeros(len(bundle.train))
    val_rows = len(bundle.val) if bundle.val is not None else 0
    found = dataset_findings(labels, task=bundle.meta.task, classes=bundle.meta.classes,
                             val_fraction=val_fraction if bundle.val is not None else 0.0, where=where,
                             val_rows=val_rows)
    if found.problems:
        raise ValueError("\n  ".join(found.problems))
