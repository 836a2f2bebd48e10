"""``trainlab kfold``: one run per fold on re-split train+val data, a per-fold table, out-of-fold predictions.

Layout of a k-fold directory::

    <out>/<name>/
      config.yaml  data.json     the base config and dataset description (so it opens like a run)
      kfold.json                 folds, seed, which fold runs completed
      fold-1/ … fold-K/          ordinary run directories (each also has fold.json: its validation indices)
      folds.csv                  one row per fold: best validation metrics, test metrics, time
      oof.csv                    out-of-fold predictions: every pooled example predicted by the fold that held it out
      summary.json               mean and std of every metric over the folds, and the ensemble's test metrics
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from trainlab import config as config_mod
from trainlab import rundir
from trainlab.api import Run, TrainingFailed, build_data, train_config
from trainlab.config import RunConfig
from trainlab.data.bundle import DataBundle
from trainlab.engine.runtime import resolve_device
from trainlab.experiments.ensemble import (FOLDS_TABLE, KFOLD_FILE, OOF_FILE, KFoldRun, loader_for,
                                           loader_outputs)
from trainlab.experiments.folds import fold_bundles
from trainlab.report.html import write_report_safely


@dataclass
class KFoldResult:
    """What ``run_kfold`` produced: the directory, the per-fold table and the mean/std of each metric."""

    path: Path
    table: pd.DataFrame
    mean: dict[str, float]
    std: dict[str, float]

    def open(self) -> KFoldRun:
        return KFoldRun(self.path)


def sub_config(cfg: RunConfig, out: Path, name: str, overrides: dict[str, Any] | None = None) -> RunConfig:
    """``cfg`` re-targeted at ``out/name`` (plus dotted ``overrides``), validated again."""
    tree = cfg.to_dict()
    tree["train"].update(out=str(out), name=name)
    for key, value in (overrides or {}).items():
        config_mod.set_dotted(tree, key, value)
    return config_mod.validate(tree)


def run_kfold(cfg: RunConfig, folds: int, on_fold: Callable[[int, dict[str, Any]], None] | None = None) -> KFoldResult:
    """Train one model per fold (seeded by ``train.seed``) and write the k-fold directory described above."""
    started = time.perf_counter()
    name = cfg.train.name or f"{cfg.model.name}-{cfg.data.name}-kfold{folds}-{time.strftime('%Y%m%d-%H%M%S')}"
    root = rundir.create(sub_config(cfg, Path(cfg.train.out), name))
    rundir.save_config(root, cfg)
    bundle = build_data(cfg)
    rundir.write_json(root / rundir.DATA_FILE, bundle.meta.to_dict())
    bundles, val_parts = fold_bundles(bundle, folds, cfg.train.seed)
    rows, oof, completed = [], [], []
    for i, (fold_bundle, val_idx) in enumerate(zip(bundles, val_parts), start=1):
        row, fold_oof = _train_fold(cfg, root, i, folds, fold_bundle, val_idx)
        rows.append(row)
        if fold_oof is not None:
            oof.append(fold_oof)
            completed.append(f"fold-{i}")
        if on_fold is not None:
            on_fold(i, row)
    table = pd.DataFrame(rows)
    table.to_csv(root / FOLDS_TABLE, index=False)
    if oof:
        pd.concat(oof).sort_values("index").to_csv(root / OOF_FILE, index=False)
    info = {"folds": folds, "seed": cfg.train.seed, "stratified": bundle.meta.task == "classification",
            "completed": completed}
    rundir.write_json(root / KFOLD_FILE, info)
    mean, std = _aggregate(table)
    summary = _summary(cfg, bundle, folds, completed, mean, std, time.perf_counter() - started)
    if completed and bundle.test is not None:
        summary["test"] = KFoldRun(root).evaluate("test", device=cfg.train.device)
    rundir.write_json(root / rundir.SUMMARY_FILE, summary)
    write_report_safely(root)
    return KFoldResult(root, table, mean, std)


def _train_fold(cfg: RunConfig, root: Path, fold: int, folds: int, bundle: DataBundle,
                val_idx: np.ndarray) -> tuple[dict[str, Any], pd.DataFrame | None]:
    """Train one fold; a diverged fold is recorded as failed and the others still run."""
    fold_cfg = sub_config(cfg, root, f"fold-{fold}")
    try:
        run = train_config(fold_cfg, bundle=bundle)
    except TrainingFailed as failure:
        rundir.write_json(failure.run_dir / "fold.json", {"fold": fold, "of": folds, "val_indices": val_idx.tolist()})
        return {"fold": fold, "status": "failed", "reason": str(failure).splitlines()[0]}, None
    rundir.write_json(run.path / "fold.json", {"fold": fold, "of": folds, "val_indices": val_idx.tolist()})
    summary = run.summary
    row: dict[str, Any] = {"fold": fold, "status": summary["status"], "epochs": summary["epochs_completed"]}
    row.update({k: v["value"] for k, v in summary.get("best", {}).items() if k.startswith("val_")})
    row.update(summary.get("test", {}))
    row["train_seconds"] = summary["train_seconds"]
    return row, _oof_frame(run, bundle, val_idx, fold)


def _oof_frame(run: Run, bundle: DataBundle, val_idx: np.ndarray, fold: int) -> pd.DataFrame:
    """The fold's best model on its own validation part: one row per held-out example."""
    device = resolve_device(run.config.train.device)
    loader = loader_for(bundle.val, bundle.meta, run.config.train.batch_size, device)
    outputs, targets = loader_outputs(run.load_model(device), loader, bundle.meta.task)
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


def _aggregate(table: pd.DataFrame) -> tuple[dict[str, float], dict[str, float]]:
    """Mean and sample std of every numeric metric over completed folds."""
    done = table[table["status"] == "completed"] if "status" in table else table
    numeric = done.drop(columns=["fold"], errors="ignore").select_dtypes("number")
    mean = {k: float(v) for k, v in numeric.mean().items()}
    std = {k: float(v) if math.isfinite(v) else 0.0 for k, v in numeric.std(ddof=1).items()}
    return mean, std


def _summary(cfg: RunConfig, bundle: DataBundle, folds: int, completed: list[str], mean: dict[str, float],
             std: dict[str, float], seconds: float) -> dict[str, Any]:
    status = "completed" if len(completed) == folds else ("partial" if completed else "failed")
    return {
        "kind": "kfold", "model": cfg.model.name, "data": cfg.data.name, "task": bundle.meta.task,
        "folds": folds, "completed_folds": len(completed), "seed": cfg.train.seed, "status": status,
        "mean": mean, "std": std,
        "best": {k: {"value": v, "epoch": None} for k, v in mean.items() if k.startswith("val_")},
        "epochs_completed": cfg.train.epochs, "wall_seconds": seconds, "versions": rundir.versions(),
    }
