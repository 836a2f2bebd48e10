"""Fashion-MNIST speedrun: train a recipe for several seeds and report accuracy and time per seed.

Prints one JSON line per seed (test accuracy, training seconds without compilation, wall seconds of the whole
`train` call including data loading and compilation, compile seconds, epochs, TFLOP/s and MFU when known) and a
final line with the mean and standard deviation over the seeds.

Examples:
  python bench/speedrun.py --seeds 3 --set data.root=/data/fashion-mnist
  python bench/speedrun.py -c configs/fashion-mnist-95.yaml --seeds 3
  python bench/speedrun.py --subset 2000 --device cpu --set model.name=speedrun-net-xs --set train.epochs=2

``--subset N`` trains on N training images and tests on N test images (a seeded random choice), so the
recipe can run end to end on a CPU.  On the CPU the config's ``train.compile`` is turned off unless
``--set train.compile=...`` asks otherwise (inductor's C++ warm-up costs more than it saves on small runs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import TensorDataset

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from trainlab import config as config_mod  # noqa: E402
from trainlab import data as data_mod  # noqa: E402
from trainlab.api import train_config  # noqa: E402
from trainlab.data.bundle import DataBundle  # noqa: E402
from trainlab.engine.runtime import resolve_device  # noqa: E402

DEFAULT_CONFIG = REPO / "configs" / "fashion-mnist-speedrun.yaml"


def subset_bundle(bundle: DataBundle, n: int, seed: int = 0) -> DataBundle:
    """The first ``n`` of a seeded permutation of each in-memory split (validation kept as is)."""
    def cut(split: Any) -> Any:
        if split is None:
            return None
        if not isinstance(split, TensorDataset):
            raise ValueError("--subset needs an in-memory (tensor) dataset such as fashion-mnist")
        order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:n]
        return TensorDataset(*(t[order] for t in split.tensors))

    return DataBundle(train=cut(bundle.train), val=bundle.val, test=cut(bundle.test), meta=bundle.meta)


def run_seed(path: Path, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Train one seed; the wall clock covers data loading, model building, compilation, training and testing."""
    overrides = ["callbacks.progress.style=none"]
    if resolve_device(args.device).type == "cpu":
        overrides.append("train.compile=false")
    cfg = config_mod.load(path, flags={"device": args.device, "seed": seed, "out": args.out,
                                       "name": f"{path.stem}-seed{seed}"}, overrides=overrides + args.set)
    started = time.perf_counter()
    bundle = None
    if args.subset:
        full = data_mod.build(cfg.data.name, seed=seed, val_fraction=cfg.data.val_fraction, **cfg.data.options())
        bundle = subset_bundle(full, args.subset)
    run = train_config(cfg, bundle=bundle)
    wall = time.perf_counter() - started
    summary = run.summary
    fast = summary.get("fastpath") or {}
    return {
        "bench": "speedrun", "config": path.name, "seed": seed, "device": summary["device"],
        "model": summary["model"], "subset": args.subset,
        "test_acc": summary.get("test", {}).get("test_acc"), "train_seconds": round(summary["train_seconds"], 3),
        "wall_seconds": round(wall, 3), "compile_seconds": round(fast.get("compile_seconds", 0.0), 3),
        "epochs": summary["epochs_completed"], "train_tflops": summary.get("train_tflops"), "mfu": summary.get("mfu"),
        "run": str(run.path),
    }


def mean_line(rows: list[dict[str, Any]]) -> dict[str, Any]:
    accs = [r["test_acc"] for r in rows if r["test_acc"] is not None]

    def mean(key: str) -> float:
        return round(statistics.fmean(r[key] for r in rows), 3)

    return {"bench": "speedrun", "summary": "mean", "seeds": len(rows),
            "test_acc_mean": round(statistics.fmean(accs), 4) if accs else None,
            "test_acc_std": round(statistics.stdev(accs), 4) if len(accs) > 1 else 0.0,
            "train_seconds_mean": mean("train_seconds"), "wall_seconds_mean": mean("wall_seconds"),
            "epochs": rows[0]["epochs"]}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG, help="recipe YAML (default: %(default)s)")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (default 3)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--subset", type=int, default=0, help="train and test on N images each (CPU smoke runs)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="runs/speedrun", help="where the run directories go")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    args = parser.parse_args(argv)
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        rows.append(run_seed(args.config, seed, args))
        print(json.dumps(rows[-1]), flush=True)
    print(json.dumps(mean_line(rows)), flush=True)
    return rows


if __name__ == "__main__":
    main()
