"""Transfer learning on real data: pretrain on Fashion-MNIST, fine-tune on 1,000 labelled MNIST digits.

One pretraining run on Fashion-MNIST; then, from its weights, fine-tuning runs on a fixed, class-balanced subset of
1,000 MNIST training digits in each ``finetune.mode`` (all, last N blocks, head only), always with a new head (digits
are other classes than clothes), plus ``head-lr10``: head only with 10x the LR for the head, as head-only training
usually has; and the same model trained from scratch.  All use the same optimizer, base LR and number of steps.
Reported: MNIST test accuracy of each run (its last weights; no validation split is taken from the 1,000) and, per
mode, the mean over the seeds.  One JSON line per measurement.  Skips (one JSON line, exit 0) when the data
folders are absent.

Run: python bench/transfer.py --fashion-root DIR --mnist-root DIR   (each DIR holds the four IDX .gz files)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

from trainlab import config as config_mod
from trainlab import data as data_mod
from trainlab.api import train_config
from trainlab.data.vision import IDX_FILES

# Digits are other classes than clothes, though as many: every transfer run starts with a fresh head.
MODES: dict[str, dict[str, Any]] = {
    "all": {"finetune.mode": "all", "finetune.new_head": True},
    "last": {"finetune.mode": "last", "finetune.new_head": True},  # finetune.last from --last
    "head": {"finetune.mode": "head", "finetune.new_head": True},
    "head-lr10": {"finetune.mode": "head", "finetune.new_head": True, "optim.head_lr_mult": 10.0},  # the usual
    "scratch": {},
}
QUIET = {"callbacks.progress.style": "none", "callbacks.plot_curves": None}


def has_idx_files(root: Path) -> bool:
    return all((root / f"{name}.gz").is_file() or (root / name).is_file() for name in IDX_FILES)


def balanced_subset(dataset: TensorDataset, per_class: int, seed: int) -> TensorDataset:
    """``per_class`` examples of every class, drawn once with ``seed`` (the same digits for every run)."""
    images, labels = dataset.tensors
    rng = np.random.default_rng(seed)
    picked = np.concatenate([rng.choice(np.flatnonzero(labels.numpy() == c), per_class, replace=False)
                             for c in range(int(labels.max()) + 1)])
    index = torch.from_numpy(np.sort(picked))
    return TensorDataset(images[index], labels[index])


def pretrain(args: argparse.Namespace) -> Path:
    bundle = data_mod.build("fashion-mnist", seed=0, val_fraction=0.1, root=str(args.fashion_root))
    overrides = {"data.name": "fashion-mnist", "data.root": str(args.fashion_root), **model_settings(args),
                 "train.epochs": args.pretrain_epochs, "train.batch_size": 128, "optim.lr": args.lr,
                 "train.out": args.out, "train.name": "pretrain-fashion", **QUIET}
    started = time.perf_counter()
    run = train_config(config_mod.load(overrides=overrides), bundle=bundle)
    emit(stage="pretrain", data="fashion-mnist", train_examples=len(bundle.train), epochs=args.pretrain_epochs,
         test_acc=round(run.summary["test"]["test_acc"], 4), wall_s=round(time.perf_counter() - started, 1))
    return run.path


def finetune(args: argparse.Namespace, source: Path, mode: str, seed: int, bundle: Any) -> float:
    epochs = args.steps * args.batch_size // len(bundle.train)
    last = {"finetune.last": args.last} if mode == "last" else {}
    overrides = {"data.name": "mnist", "data.root": str(args.mnist_root), **model_settings(args), **last,
                 "train.epochs": epochs, "train.batch_size": args.batch_size, "optim.lr": args.lr, "train.seed": seed,
                 "train.out": args.out, "train.name": f"{mode}-seed{seed}", "callbacks.checkpoint.save_best": False,
                 **({"train.init_from": str(source)} if mode != "scratch" else {}), **MODES[mode], **QUIET}
    started = time.perf_counter()
    run = train_config(config_mod.load(overrides=overrides), bundle=bundle)
    accuracy = run.summary["test"]["test_acc"]
    emit(stage="finetune", mode=mode, seed=seed, steps=run.summary["steps"], train_examples=len(bundle.train),
         test_acc=round(accuracy, 4), wall_s=round(time.perf_counter() - started, 1))
    return accuracy


def model_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {"model.name": args.model, **({"model.width": args.width} if args.width else {})}


def emit(**fields: Any) -> None:
    print(json.dumps({"bench": "transfer", **fields}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fashion-root", type=Path, default=Path("../shared/data/fashion-mnist"))
    parser.add_argument("--mnist-root", type=Path, default=Path("../shared/data/mnist-10k"))
    parser.add_argument("--model", default="lenet-modern")
    parser.add_argument("--width", type=int, default=None, help="model.width, for models that have one (simple-cnn)")
    parser.add_argument("--last", type=int, default=3, help="finetune.last of mode last (lenet-modern: 3 dense layers)")
    parser.add_argument("--pretrain-epochs", type=int, default=2)
    parser.add_argument("--labelled", type=int, default=1000, help="MNIST training digits (balanced over classes)")
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps of every fine-tuning run")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="runs/bench-transfer")
    args = parser.parse_args()
    missing = [str(root) for root in (args.fashion_root, args.mnist_root) if not has_idx_files(root)]
    if missing:
        emit(skipped=f"no IDX files in {', '.join(missing)}")
        return
    if args.steps * args.batch_size % args.labelled:
        parser.error("--steps x --batch-size must be a whole number of passes over --labelled examples")
    emit(stage="setup", machine=platform.machine(), threads=torch.get_num_threads(), torch=torch.__version__,
         model=args.model, width=args.width, last=args.last, labelled=args.labelled, steps=args.steps,
         batch_size=args.batch_size, lr=args.lr)
    source = pretrain(args)
    full = data_mod.build("mnist", seed=0, val_fraction=0.0, root=str(args.mnist_root))
    bundle = dataclasses.replace(full, train=balanced_subset(full.train, args.labelled // 10, seed=0), val=None)
    for mode in MODES:
        scores = [finetune(args, source, mode, seed, bundle) for seed in args.seeds]
        emit(stage="summary", mode=mode, seeds=args.seeds, mean_test_acc=round(statistics.mean(scores), 4),
             std_test_acc=round(statistics.stdev(scores), 4) if len(scores) > 1 else 0.0)


if __name__ == "__main__":
    main()
