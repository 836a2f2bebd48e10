"""``trainlab kfold``: one run per fold on re-split train+val data, a per-fold table, out-of-fold predictions.

Layout of a k-fold directory::

    <out>/<name>/
      config.yaml  data.json     the base config and dataset description (so it opens like a run)
      kfold.json                 folds, seed, the split's fingerprint, which fold runs completed (kept up to date)
      fold-1/ … fold-K/          ordinary run directories (each also has fold.json: its validation indices)
      folds.csv                  one row per fold: best validation metrics, test metrics, time
      oof.csv                    out-of-fold predictions: every pooled example predicted by the fold that held it out
      summary.json               status while running; at the end the mean and std of every metric over the folds
                                 and the ensemble's test metrics

The fold loop is shared with :mod:`trainlab.experiments.kfold_resume`: each fold directory is looked at first
(:func:`fold_action`), so a finished fold is reused, an interrupted one continues from its checkpoint, and the
rest train from scratch; a fresh run simply finds no fold directories.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from trainlab import config as config_mod
from trainlab import rundir
from trainlab.config import RunConfig
from trainlab.data.bundle import DataBundle
from trainlab.data.seq2seq import decode_ids, decode_outputs
from trainlab.data.text import Vocabulary
from trainlab.engine import checkpoint
from trainlab.engine.metrics import exact_rows
from trainlab.engine.runtime import resolve_device
from trainlab.experiments.folds import FoldSplit, split_folds
from trainlab.experiments.kfold_parallel import run_in_workers
from trainlab.inference.outputs import loader_for, loader_outputs
from trainlab.report.html import write_report_safely
from trainlab.run import KFoldRun, Run
from trainlab.rundir import FOLD_FILE, FOLDS_TABLE, KFOLD_FILE, OOF_FILE
from trainlab.session import build_data, check_model_for_data
from trainlab.training import TrainingFailed, TrainingInterrupted, resume_config, train_config

FINISHED_FOLD = ("completed", "failed")  # a failed (diverged) fold would diverge again: it is final too
OnFold = Callable[[int, dict[str, Any]], None]
OnProgress = Callable[[int, int, str], None]  # (fold, folds, what happens to it)


@dataclass
class KFoldResult:
    """What ``run_kfold`` produced: the directory, the per-fold table and the mean/std of each metric."""

    path: Path
    table: pd.DataFrame
    mean: dict[str, float]
    std: dict[str, float]

    def open(self) -> KFoldRun:
        return KFoldRun(self.path)


class KFoldInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) during a k-fold run; finished folds and the current fold's checkpoint are kept."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"k-fold run interrupted; resume with: trainlab kfold --resume {path}")
        self.path = path


def sub_config(cfg: RunConfig, out: Path, name: str, overrides: dict[str, Any] | None = None) -> RunConfig:
    """``cfg`` re-targeted at ``out/name`` (plus dotted ``overrides``), validated again."""
    tree = cfg.to_dict()
    tree["train"].update(out=str(out), name=name)
    for key, value in (overrides or {}).items():
        config_mod.set_dotted(tree, key, value)
    return config_mod.validate(tree)


def run_kfold(cfg: RunConfig, folds: int, on_fold: OnFold | None = None,
              on_progress: OnProgress | None = None, workers: int = 1) -> KFoldResult:
    """Train one model per fold (seeded by ``train.seed``) and write the k-fold directory described above.

    ``on_progress(fold, folds, what)`` hears what happens to each fold before it runs; ``on_fold(fold, row)``
    gets its table row after.  The data is split before the directory is made, so bad data or ``folds`` leave
    nothing behind.  ``workers`` > 1 trains that many folds at once, each in its own process
    (:func:`run_folds`).
    """
    if workers < 1:
        raise ValueError(f"--workers must be at least 1 (folds trained at once), got {workers}")
    name = cfg.train.name or f"{rundir.model_label(cfg)}-{cfg.data.name}-kfold{folds}-{time.strftime('%Y%m%d-%H%M%S')}"
    bundle = build_data(cfg)
    check_model_for_data(cfg, bundle.meta)
    split = split_folds(bundle, folds, cfg.train.seed)
    root = rundir.create(sub_config(cfg, Path(cfg.train.out), name))
    rundir.save_config(root, cfg)
    rundir.write_data_meta(root, bundle.meta)
    rundir.write_json(root / KFOLD_FILE, {"folds": folds, "seed": cfg.train.seed,
                                          "stratified": split.stratified,
                                          "examples": sum(len(part) for part in split.val_parts),
                                          "fingerprint": split.fingerprint, "completed": []})
    with rundir.exclusive(root):
        return run_folds(cfg, root, bundle, split, on_fold, on_progress, workers=workers)


def run_folds(cfg: RunConfig, root: Path, bundle: DataBundle, split: FoldSplit, on_fold: OnFold | None = None,
              on_progress: OnProgress | None = None, earlier_seconds: float = 0.0, workers: int = 1) -> KFoldResult:
    """Bring every fold of ``root`` to an end, then write the table, out-of-fold predictions and summary.

    With ``workers`` > 1, up to that many folds train at once in worker processes (:mod:`trainlab.experiments.
    kfold_parallel`); results are taken in fold order, so every output is the one sequential folds write.
    Ctrl-C (here or while writing the outputs) marks the directory ``interrupted`` and raises
    :class:`KFoldInterrupted`; any other error marks it ``crashed`` and propagates.  Either way
    ``trainlab kfold --resume`` continues it.
    """
    started = time.perf_counter()
    folds = len(split.bundles)
    _write_status(cfg, root, bundle, folds, "running", earlier_seconds)
    rows, oof, completed = [], [], []

    def done(i: int, row: dict[str, Any], fold_oof: pd.DataFrame | None) -> None:
        rows.append(row)
        if fold_oof is not None:
            oof.append(fold_oof)
            completed.append(rundir.FOLD_DIR.format(fold=i))
        _record_completed(root, completed)
        if on_fold is not None:
            on_fold(i, row)

    try:
        jobs = list(enumerate(zip(split.bundles, split.val_parts), start=1))
        if workers > 1:
            run_in_workers(cfg, root, folds, jobs, workers, on_progress, done, fold_action=fold_action,
                           run_fold=run_fold)
        else:
            for i, (fold_bundle, val_idx) in jobs:
                action, what = fold_action(root / rundir.FOLD_DIR.format(fold=i))
                if on_progress is not None:
                    on_progress(i, folds, what)
                done(i, *run_fold(cfg, root, i, folds, fold_bundle, val_idx, action))
        return _finish(cfg, root, bundle, folds, rows, oof, completed, earlier_seconds + time.perf_counter() - started)
    except BaseException as err:
        interrupted = isinstance(err, (KeyboardInterrupt, TrainingInterrupted))  # Ctrl-C outside / inside a fold's fit
        status = "interrupted" if interrupted else "crashed"
        error = None if status == "interrupted" else f"{type(err).__name__}: {err}"
        _write_status(cfg, root, bundle, folds, status, earlier_seconds + time.perf_counter() - started, error)
        if interrupted:
            raise KFoldInterrupted(root) from None
        raise


def _finish(cfg: RunConfig, root: Path, bundle: DataBundle, folds: int, rows: list[dict[str, Any]],
            oof: list[pd.DataFrame], completed: list[str], seconds: float) -> KFoldResult:
    """The aggregate outputs, written the same way whether or not the run was ever interrupted."""
    table = pd.DataFrame(rows)
    rundir.write_csv(root / FOLDS_TABLE, table)
    if oof:
        rundir.write_csv(root / OOF_FILE, pd.concat(oof).sort_values("index"))
    mean, std = _aggregate(table)
    summary = _summary(cfg, bundle, folds, completed, mean, std, seconds)
    if completed and bundle.test is not None:
        summary["test"] = KFoldRun(root).evaluate("test", device=cfg.train.device)
    rundir.write_summary(root, summary)
    write_report_safely(root)
    return KFoldResult(root, table, mean, std)


def fold_action(fold_dir: Path) -> tuple[str, str]:
    """``(action, what)``: ``skip`` a finished fold, ``resume`` one with a checkpoint, else ``start`` it afresh.

    ``what`` says the same in words for progress lines.  A fold that stopped before its first checkpoint has
    nothing worth keeping, so it starts again from scratch (which gives the same result as never stopping).
    """
    if not fold_dir.is_dir():
        return "start", "started"
    summary_path = fold_dir / rundir.SUMMARY_FILE
    status = rundir.read_summary(fold_dir).get("status") if summary_path.is_file() else None
    if status in FINISHED_FOLD:
        return "skip", f"skipped: finished earlier ({status}), its results are reused"
    latest = (checkpoint.latest_valid(fold_dir / rundir.CHECKPOINT_DIR, "last")
              if (fold_dir / rundir.CONFIG_FILE).is_file() else None)
    if latest is None:
        return "start", f"restarted from scratch: it was {status or 'unfinished'} with no checkpoint to resume from"
    meta = rundir.read_json(latest / checkpoint.META_FILE)
    done = _count(meta["epoch"], "epoch") + (f" and {_count(meta['batch_in_epoch'], 'batch')}"
                                             if meta.get("batch_in_epoch") else "")
    return "resume", f"resumed from its last checkpoint (it was {status or 'unfinished'}; {done} done)"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "es" if noun.endswith("tch") else "s")


def run_fold(cfg: RunConfig, root: Path, fold: int, folds: int, bundle: DataBundle, val_idx: np.ndarray,
             action: str) -> tuple[dict[str, Any], pd.DataFrame | None]:
    """One fold's table row and out-of-fold predictions; a diverged fold is recorded as failed, the others go on."""
    fold_dir = root / rundir.FOLD_DIR.format(fold=fold)
    info = {"fold": fold, "of": folds, "val_indices": val_idx.tolist()}
    if action == "skip":
        if not (fold_dir / FOLD_FILE).is_file():  # stopped between finishing and recording it
            rundir.write_json(fold_dir / FOLD_FILE, info)
        summary = rundir.read_summary(fold_dir)
        if summary["status"] == "failed":
            return _failed_row(fold, summary.get("stop_reason") or "training failed"), None
        run = Run(fold_dir)
    else:
        try:
            run = _train_fold(cfg, root, fold_dir, bundle, resume=action == "resume")
        except TrainingFailed as failure:
            rundir.write_json(failure.run_dir / FOLD_FILE, info)
            return _failed_row(fold, str(failure)), None
        rundir.write_json(run.path / FOLD_FILE, info)
    return _fold_row(fold, run.summary), _oof_frame(run, bundle, val_idx, fold)


def _train_fold(cfg: RunConfig, root: Path, fold_dir: Path, bundle: DataBundle, resume: bool) -> Run:
    """Train a fold from scratch, or continue it from its last checkpoint through the single-run resume."""
    if not resume:
        shutil.rmtree(fold_dir, ignore_errors=True)  # only ever a fold with no checkpoint (see fold_action)
        return train_config(sub_config(cfg, root, fold_dir.name), bundle=bundle)
    saved = config_mod.load(fold_dir / rundir.CONFIG_FILE)
    probed = {"train.batch_size": saved.train.batch_size} if cfg.train.batch_size == "auto" else None
    return resume_config(sub_config(cfg, root, fold_dir.name, probed), fold_dir, bundle=bundle)


def _fold_row(fold: int, summary: dict[str, Any]) -> dict[str, Any]:
    """``folds.csv`` row: each validation metric's best value over the epochs, the test metrics, the time."""
    row: dict[str, Any] = {"fold": fold, "status": summary["status"], "epochs": summary["epochs_completed"]}
    row.update({k: v["value"] for k, v in summary.get("best", {}).items() if k.startswith("val_")})
    row.update(summary.get("test", {}))
    row["train_seconds"] = summary["train_seconds"]
    return row


def _failed_row(fold: int, reason: str) -> dict[str, Any]:
    return {"fold": fold, "status": "failed", "reason": reason.splitlines()[0]}


def _record_completed(root: Path, completed: list[str]) -> None:
    """Keep ``kfold.json``'s list of completed folds current, so the directory opens as an ensemble of them."""
    info = rundir.read_json(root / KFOLD_FILE)
    rundir.write_json(root / KFOLD_FILE, {**info, "completed": completed})


def _write_status(cfg: RunConfig, root: Path, bundle: DataBundle, folds: int, status: str, seconds: float,
                  error: str | None = None) -> None:
    """summary.json of an unfinished k-fold run: what it is and how far it got (``trainlab runs`` shows it)."""
    done = rundir.read_json(root / KFOLD_FILE)["completed"]
    summary = {"kind": "kfold", "model": cfg.model.name, "data": cfg.data.name, "task": bundle.meta.task,
               "folds": folds, "completed_folds": len(done), "seed": cfg.train.seed, "status": status,
               "wall_seconds": seconds, "versions": rundir.versions()}
    rundir.write_summary(root, {**summary, **({"error": error} if error else {})})


def _oof_frame(run: Run, bundle: DataBundle, val_idx: np.ndarray, fold: int) -> pd.DataFrame:
    """The fold's best model on its own validation part, evaluated as its validation was (flip TTA if set):
    one row per held-out example."""
    device = resolve_device(run.config.train.device)
    loader = loader_for(bundle.val, bundle.meta, run.config.train.batch_size, device)
    outputs, targets = loader_outputs(run.load_model(device), loader, bundle.meta.task,
                                      tta_flip=run.config.train.tta_flip)
    if outputs.dim() == 3:  # an encoder-decoder's target sequences
        return _sequence_oof_frame(val_idx, fold, outputs, targets, bundle.meta.preprocess)
    frame = pd.DataFrame({"index": val_idx, "fold": fold, "target": targets.numpy()})
    if bundle.meta.task == "classification":
        classes = bundle.meta.classes or [str(c) for c in range(outputs.shape[1])]
        frame["prediction"] = [classes[int(i)] for i in outputs.argmax(dim=1)]
        frame["correct"] = (outputs.argmax(dim=1) == targets).numpy()
        for c, name in enumerate(classes):
            frame[f"prob_{name}"] = outputs[:, c].numpy()
    else:
        frame["prediction"] = outputs.numpy()
    return frame


def _sequence_oof_frame(val_idx: np.ndarray, fold: int, outputs: torch.Tensor, targets: torch.Tensor,
                        preprocess: dict[str, Any]) -> pd.DataFrame:
    """Out-of-fold rows of an encoder-decoder: the target and the greedy prediction as text, and whether every
    target step up to ``<eos>`` was predicted (padding after it excepted), as the folds' ``val_exact`` counts."""
    vocab = Vocabulary.from_record(preprocess)
    correct = exact_rows(outputs.argmax(dim=-1) == targets, targets < 0)
    return pd.DataFrame({"index": val_idx, "fold": fold, "target": decode_ids(targets, vocab),
                         "prediction": decode_outputs(outputs, vocab), "correct": correct.numpy()})


def _aggregate(table: pd.DataFrame) -> tuple[dict[str, float], dict[str, float]]:
    """Mean and sample std of every numeric metric over completed folds."""
    done = table[table["status"] == "completed"] if "status" in table else table
    numeric = done.drop(columns=["fold"], errors="ignore").select_dtypes("number")
    mean = {k: float(v) for k, v in numeric.mean().items()}
    std = {k: float(v) if math.isfinite(v) else 0.0 for k, v in numeric.std(ddof=1).items()}
    return mean, std


def _summary(cfg: RunConfig, bundle: DataBundle, folds: int, completed: list[str], mean: dict[str, float],
             std: dict[str, float], seconds: float) -> dict[str, Any]:
    """The final summary.json; ``wall_seconds`` adds up every session the run took."""
    status = "completed" if len(completed) == folds else ("partial" if completed else "failed")
    return {
        "kind": "kfold", "model": cfg.model.name, "data": cfg.data.name, "task": bundle.meta.task,
        "folds": folds, "completed_folds": len(completed), "seed": cfg.train.seed, "status": status,
        "mean": mean, "std": std,
        "best": {k: {"value": v, "epoch": None} for k, v in mean.items() if k.startswith("val_")},
        "epochs_completed": cfg.train.epochs, "wall_seconds": seconds, "versions": rundir.versions(),
    }
