"""Examples/s of one training epoch of LeNet on Fashion-MNIST: trainlab's device loader vs torchvision's classic
``FashionMNIST + ToTensor + DataLoader(num_workers=2)``, in one process, one JSON line per measurement.

    python bench/data_loader.py [--root ../shared/data/fashion-mnist] [--device cpu|cuda] [--batch-size 256]

Each loader is timed twice: iterating the epoch alone (``mode: data``) and training LeNet on it (``mode: train``).
Lines for the device loader carry ``ratio`` = its examples/s divided by torchvision's in the same mode.
"""

from __future__ import annotations

import argparse
import gzip
import json
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from trainlab.data import build
from trainlab.data.loaders import BatchTransform, DeviceLoader

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-mnist"


def lenet() -> nn.Module:
    """LeNet-5 as in d2l (ReLU, max pooling): about 62k parameters."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


def torchvision_batches(root: Path, batch_size: int, workers: int, scratch: Path):
    """The classic pipeline; its raw folder gets uncompressed copies of the IDX files (what torchvision expects)."""
    from torchvision import datasets, transforms

    raw = scratch / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for gz in root.glob("*-ubyte.gz"):
        (raw / gz.name[:-3]).write_bytes(gzip.decompress(gz.read_bytes()))
    data = datasets.FashionMNIST(str(scratch), train=True, transform=transforms.ToTensor(), download=False)
    generator = torch.Generator().manual_seed(0)
    return torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True, num_workers=workers,
                                       generator=generator, persistent_workers=False)


def run_epoch(batches, device: torch.device, model: nn.Module | None) -> tuple[int, float]:
    """(examples, seconds) of one pass; with a model, a full SGD step per batch."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1) if model is not None else None
    loss_fn = nn.CrossEntropyLoss()
    count, started = 0, time.perf_counter()
    for x, y in batches:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if model is not None:
            loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        count += len(y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return count, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    device = torch.device(args.device)
    bundle = build("fashion-mnist", root=str(args.root), val_fraction=0.0)
    transform = BatchTransform.from_preprocess(bundle.meta.preprocess)
    device_loader = DeviceLoader(bundle.train, args.batch_size, device, transform, shuffle=True, seed=0)
    with tempfile.TemporaryDirectory() as scratch:
        classic = torchvision_batches(args.root, args.batch_size, args.workers, Path(scratch))
        common = {"bench": "data_loader", "dataset": "fashion-mnist", "device": str(device),
                  "batch_size": args.batch_size, "threads": torch.get_num_threads(), "torch": torch.__version__}
        for mode in ("data", "train"):
            results = {}
            for name, make in (("torchvision", lambda: classic), ("device", lambda: device_loader.epoch(0))):
                torch.manual_seed(0)
                model = lenet().to(device) if mode == "train" else None
                examples, seconds = run_epoch(make(), device, model)
                results[name] = examples / seconds
                line = {**common, "mode": mode, "loader": name, "examples": examples, "seconds": round(seconds, 3),
                        "examples_per_s": round(results[name], 1)}
                if name == "torchvision":
                    line["workers"] = args.workers
                else:
                    line["ratio"] = round(results["device"] / results["torchvision"], 2)
                print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
