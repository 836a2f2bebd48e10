"""Model zoo on real Fashion-MNIST: test accuracy and training examples/s per model, one JSON line each.

A sanity check that the small-input adaptations learn on real 28x28 data, not a tuned result. On a CPU use
subsets (--train-size / --test-size); on a GPU run the full splits.
Run: python bench/zoo_fashion.py --root ../shared/data/fashion-mnist [--epochs 2] [--train-size 6000]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time

import torch
from torch.utils.data import TensorDataset

from trainlab import config as config_mod
from trainlab import data as data_mod
from trainlab.api import train_config

MODELS = {
    "lenet-modern": {},
    "vgg11": {"width_div": 4},
    "resnet18": {},
    "mobilenet_v2": {},
}


def head(dataset: TensorDataset, size: int | None) -> TensorDataset:
    """The first ``size`` examples (the splits are already shuffled by class-stratified sampling)."""
    return dataset if size is None else TensorDataset(*(t[:size] for t in dataset.tensors))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="directory with the four Fashion-MNIST IDX .gz files")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-size", type=int, default=None, help="training examples (default: all 54,000)")
    parser.add_argument("--test-size", type=int, default=None, help="test examples (default: all 10,000)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="runs/bench-zoo")
    args = parser.parse_args()
    full = data_mod.build("fashion-mnist", seed=0, val_fraction=0.1, root=args.root)
    bundle = dataclasses.replace(full, train=head(full.train, args.train_size), test=head(full.test, args.test_size),
                                 val=head(full.val, args.test_size))
    for name in args.models:
        overrides = {"data.name": "fashion-mnist", "data.root": args.root, "model.name": name,
                     **{f"model.{k}": v for k, v in MODELS[name].items()}, "train.epochs": args.epochs,
                     "train.batch_size": 128, "train.device": args.device, "train.out": args.out,
                     "train.name": name, "optim.name": "adam", "optim.lr": 2e-3, "sched.name": "cosine",
                     "callbacks.progress.style": "none"}
        started = time.perf_counter()
        run = train_config(config_mod.load(overrides=overrides), bundle=bundle)
        summary = run.summary
        print(json.dumps({
            "bench": "zoo_fashion", "model": name, "options": MODELS[name], "device": summary["device"],
            "machine": platform.machine(), "threads": torch.get_num_threads(), "epochs": args.epochs,
            "train_examples": len(bundle.train), "test_examples": len(bundle.test), "params": summary["params"],
            "test_acc": round(summary["test"]["test_acc"], 4),
            "train_examples_per_s": round(float(run.history["examples_per_s"].median()), 1),
            "wall_s": round(time.perf_counter() - started, 1),
        }), flush=True)


if __name__ == "__main__":
    main()
