"""Kaggle House Prices: trainlab's k-fold recipe against a scikit-learn ridge on the same preprocessing and folds.

Runs ``trainlab kfold -c configs/house-prices.yaml --folds 5`` (through the Python API, timed), then fits
``Ridge(alpha)`` on exactly the same encoded table and the same fold split.  Both are scored with the Kaggle
metric on the out-of-fold predictions of the final weights: the RMSE between log(predicted price) and
log(true price), with prices recovered in dollars from the log1p/centered training target.  The trainer's own
per-fold ``val_rmse`` (RMSE of log1p prices at each fold's best epoch) is printed alongside for comparison.

Prints one JSON line.
Run: python bench/house_prices.py [--folds 5] [--seed 0] [--threads N] [--data-root DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from trainlab import config as config_mod
from trainlab import data as data_mod
from trainlab import rundir
from trainlab.rundir import OOF_FILE
from trainlab.experiments.folds import fold_bundles
from trainlab.experiments.kfold import run_kfold
from trainlab.inference.table import to_target_scale

REPO = Path(__file__).resolve().parents[1]


def log_rmse(predicted: np.ndarray, true: np.ndarray) -> float:
    """Kaggle's House Prices metric on prices in dollars."""
    return float(np.sqrt(np.mean((np.log(predicted) - np.log(true)) ** 2)))


def oof_scores(run_path: Path) -> list[float]:
    """Per-fold Kaggle metric of the k-fold run's out-of-fold predictions (targets and outputs mapped back to dollars)."""
    preprocess = rundir.read_json(run_path / rundir.DATA_FILE)["preprocess"]
    oof = pd.read_csv(run_path / OOF_FILE)
    return [log_rmse(to_target_scale(part["prediction"].to_numpy(), preprocess),
                     to_target_scale(part["target"].to_numpy(), preprocess))
            for _, part in oof.groupby("fold", sort=True)]


def ridge_scores(cfg: config_mod.RunConfig, folds: int, alpha: float) -> list[float]:
    """Ridge on the identical encoded table and fold split that ``run_kfold`` builds."""
    from sklearn.linear_model import Ridge

    bundle = data_mod.build(cfg.data.name, seed=cfg.train.seed, val_fraction=cfg.data.val_fraction,
                            **cfg.data.options())
    parts, _ = fold_bundles(bundle, folds, cfg.train.seed)
    scores = []
    for part in parts:
        (x_train, y_train), (x_val, y_val) = ([t.numpy().astype(np.float64) for t in d.tensors]
                                              for d in (part.train, part.val))
        predicted = Ridge(alpha=alpha).fit(x_train, y_train).predict(x_val)
        scores.append(log_rmse(to_target_scale(predicted, bundle.meta.preprocess),
                               to_target_scale(y_val, bundle.meta.preprocess)))
    return scores


def stats(scores: list[float]) -> dict[str, object]:
    return {"mean": round(float(np.mean(scores)), 4), "std": round(float(np.std(scores, ddof=1)), 4),
            "per_fold": [round(s, 4) for s in scores]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "configs" / "house-prices.yaml"))
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data" / "house-prices"))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--ridge-alpha", type=float, default=10.0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.getLogger("trainlab").setLevel(logging.ERROR)  # unseen categories in test.csv: expected, not news
    with tempfile.TemporaryDirectory() as out:
        cfg = config_mod.load(args.config, overrides={"data.root": args.data_root, "train.seed": args.seed,
                                                      "train.out": out, "callbacks.progress.style": "none"})
        started = time.perf_counter()
        result = run_kfold(cfg, args.folds)
        seconds = time.perf_counter() - started
        ours = oof_scores(result.path)
    started = time.perf_counter()
    ridge = ridge_scores(cfg, args.folds, args.ridge_alpha)
    ridge_seconds = time.perf_counter() - started
    print(json.dumps({
        "bench": "house_prices", "config": Path(args.config).name, "folds": args.folds, "seed": args.seed,
        "model": cfg.model.name, "hidden": cfg.model.options().get("hidden"), "epochs": cfg.train.epochs,
        "log_rmse": stats(ours), "trainer_val_rmse_best_epoch": round(result.mean["val_rmse"], 4),
        "seconds": round(seconds, 1),
        "ridge": {"alpha": args.ridge_alpha, **stats(ridge), "seconds": round(ridge_seconds, 1)},
        "ratio_to_ridge": round(float(np.mean(ours) / np.mean(ridge)), 3),
        "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "load_avg_1min": round(os.getloadavg()[0], 2),
        "torch": torch.__version__, "python": platform.python_version(),
    }))


if __name__ == "__main__":
    main()
