"""summary.json: what a run was (model, data, seed, device, versions) and how it went (status, best and final
metrics, time, throughput).  Written when training starts, and again whenever it ends, however it ends."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from trainlab import rundir
from trainlab.engine import distributed, fastpath
from trainlab.engine.state import TrainState
from trainlab.session import Session


def base(session: Session, resumed_from: str | None = None) -> dict[str, Any]:
    """The fixed part: what was trained, where, with which versions; wall time carried over from a resume.

    ``resumed_from`` names the checkpoint directory this session's resume loaded (e.g. ``last-000000420``), so
    anyone can check which one it was (a damaged newer one is skipped); a fresh run has no such key.  Every later
    write of this session starts from this dict, so the key stays until the next resume replaces it.
    """
    cfg = session.cfg
    run_dir = session.trainer.run_dir
    previous = rundir.read_summary(run_dir) if run_dir and (run_dir / rundir.SUMMARY_FILE).is_file() else {}
    resumed = {"resumed_from": resumed_from} if resumed_from is not None else {}
    return {
        **resumed,
        "wall_seconds": previous.get("wall_seconds", 0.0),
        "model": cfg.model.name,
        "data": cfg.data.name,
        "task": session.bundle.meta.task,
        "params": sum(p.numel() for p in session.model.parameters()),
        "seed": cfg.train.seed,
        "batch_size": cfg.train.batch_size,
        "world_size": distributed.world_size(),
        "device": str(session.device),
        "threads": torch.get_num_threads(),
        "precision": str(session.trainer.autocast_dtype or "fp32").replace("torch.", ""),
        "versions": rundir.versions(),
    }


def write(run_dir: Path, summary: dict[str, Any], state: TrainState, status: str, started: float) -> None:
    """Add the state of the run so far to ``summary`` and write it atomically."""
    history = state.history
    summary.update(
        status=status,
        stop_reason=state.stop_reason,
        epochs_completed=state.epoch,
        steps=state.step,
        train_seconds=state.train_seconds,
        wall_seconds=summary.get("wall_seconds", 0.0) + time.perf_counter() - started,
        final=history[-1] if history else {},
        best=best_metrics(history),
    )
    rundir.write_summary(run_dir, summary)


def best_metrics(history: Sequence[Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """For each loss/accuracy/RMSE/perplexity column, its best value and the epoch it was reached.

    Per-epoch test columns (``train.test_each_epoch``) are left out: a "best test epoch" is selection on the test
    split, and the search objective reads this dict.
    """
    best: dict[str, dict[str, float]] = {}
    for key in sorted({k for row in history for k in row}):
        if not key.endswith(("_loss", "_acc", "_rmse", "_ppl", "_exact")) or key.startswith("test_"):
            continue
        rows = [row for row in history if row.get(key) is not None]
        pick = max if key.endswith(("_acc", "_exact")) else min  # exact: sequence accuracy (seq2seq)
        top = pick(rows, key=lambda row: row[key])
        best[key] = {"value": top[key], "epoch": top["epoch"]}
    return best


def performance(session: Session) -> dict[str, float]:
    """Achieved TFLOP/s over the completed epochs (and MFU on a GPU of known peak)."""
    state, trainer = session.trainer.state, session.trainer
    examples = trainer.train_loader.num_examples * len(state.history)
    precision = str(trainer.autocast_dtype or "fp32").replace("torch.", "")
    return fastpath.performance(session.fast, examples, state.train_seconds, session.device, precision)
