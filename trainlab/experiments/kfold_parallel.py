"""Folds of a k-fold run trained at once, each in its own worker process (``trainlab kfold --workers N``).

Each fold is an ordinary run directory, trained by :func:`~trainlab.experiments.kfold.run_fold` exactly as the
sequential loop trains it, from the same config and the same fold split; only where it runs changes.  Results
are handed to the caller in fold order, so ``folds.csv``, ``oof.csv`` and ``kfold.json`` are the files
sequential folds write.  Workers are *spawned* (fresh interpreters, nothing inherited from this process's
threads), and each sets its own CPU thread count as any training does; with ``train.threads`` set, every fold
computes bit for bit what it computes sequentially.

Ctrl-C in a terminal reaches the workers too: each running fold saves its checkpoint, queued folds never
start, and ``trainlab kfold --resume`` continues them all.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from trainlab import rundir
from trainlab.config import RunConfig
from trainlab.data.bundle import DataBundle

Job = tuple[int, tuple[DataBundle, np.ndarray]]  # (fold number, (its train/val bundle, its validation indices))
Done = Callable[[int, dict[str, Any], pd.DataFrame | None], None]


def run_in_workers(cfg: RunConfig, root: Path, folds: int, jobs: Sequence[Job], workers: int,
                   on_progress: Callable[[int, int, str], None] | None, done: Done, *,
                   fold_action: Callable[[Path], tuple[str, str]], run_fold: Callable[..., Any]) -> None:
    """Train ``jobs`` on up to ``workers`` processes; call ``done(fold, row, oof)`` for each, in fold order.

    ``fold_action`` and ``run_fold`` are k-fold's own (handed in, so this module does not import it back);
    ``run_fold`` runs in the workers, so it must be a module-level function.
    """
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context) as pool:
        pending: list[tuple[int, Future]] = []
        for i, (fold_bundle, val_idx) in jobs:
            action, what = fold_action(root / rundir.FOLD_DIR.format(fold=i))
            if on_progress is not None:
                on_progress(i, folds, f"{what} (in a worker process)")
            pending.append((i, pool.submit(run_fold, cfg, root, i, folds, fold_bundle, val_idx, action)))
        try:
            for i, future in pending:
                done(i, *future.result())
        except BaseException:
            for _, future in pending:
                future.cancel()  # folds not started yet never start; running ones end (or checkpoint) first
            raise
