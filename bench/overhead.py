"""Trainer overhead vs a hand-written loop: same LeNet-sized model, same in-memory data, same batch size.

Prints one JSON line: examples/second of both (median of interleaved rounds) and their ratio.
Run: python bench/overhead.py [--device cpu] [--rounds 5] [--examples 12800] [--batch-size 128]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
from torch import nn
from torch.utils.data import TensorDataset

from trainlab.config import SchedConfig
from trainlab.data.loaders import BatchTransform, DeviceLoader, epoch_permutation
from trainlab.engine.callbacks.nan_guard import NanGuard
from trainlab.engine.trainer import LoopSettings, Trainer
from trainlab.optim import build_schedule


def lenet() -> nn.Module:
    """LeNet-5 sized CNN for 28x28 gray input (ReLU, max pooling)."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )


def hand_written_epoch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, epoch: int) -> float:
    """The loop a practitioner writes: permute, slice, forward, loss, zero_grad, backward, step."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    order = epoch_permutation(len(y), 0, epoch).to(x.device)
    start = time.perf_counter()
    for i in range(0, len(y), batch_size):
        idx = order[i:i + batch_size]
        loss = loss_fn(model(x[idx].float() / 255), y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    float(loss.detach())  # wait for the device
    return len(y) / (time.perf_counter() - start)


def trainer_epoch(model: nn.Module, data: TensorDataset, batch_size: int, device: torch.device) -> float:
    """One epoch through trainlab's Trainer with its always-on machinery (metrics, schedule, NaN guard)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loader = DeviceLoader(data, batch_size, device, BatchTransform(scale=1 / 255), shuffle=True)
    schedule = build_schedule(SchedConfig(), optimizer, total_steps=len(loader))
    trainer = Trainer(model, loader, None, optimizer, schedule, nn.CrossEntropyLoss(),
                      LoopSettings(task="classification", epochs=1, device=device), callbacks={"nan_guard": NanGuard()})
    start = time.perf_counter()
    trainer.fit()
    return len(data) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--examples", type=int, default=12_800)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    device = torch.device(args.device)
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (args.examples, 1, 28, 28), dtype=torch.uint8, generator=generator)
    y = torch.randint(0, 10, (args.examples,), generator=generator)
    data = TensorDataset(x, y)
    xd, yd = x.to(device), y.to(device)
    torch.manual_seed(0)
    hand_model, trainer_model = lenet().to(device), lenet().to(device)
    hand_written_epoch(hand_model, xd, yd, args.batch_size, 0)  # warm-up both paths
    trainer_epoch(trainer_model, data, args.batch_size, device)
    hand, ours = [], []
    for r in range(args.rounds):  # interleaved so machine noise hits both alike
        hand.append(hand_written_epoch(hand_model, xd, yd, args.batch_size, r))
        ours.append(trainer_epoch(trainer_model, data, args.batch_size, device))
    result = {
        "bench": "overhead", "device": str(device), "torch": torch.__version__, "machine": platform.machine(),
        "threads": torch.get_num_threads(), "model": "lenet", "batch_size": args.batch_size,
        "examples": args.examples, "rounds": args.rounds,
        "hand_written_examples_per_s": round(statistics.median(hand)),
        "trainlab_examples_per_s": round(statistics.median(ours)),
    }
    result["ratio_trainlab_over_hand"] = round(result["trainlab_examples_per_s"] / result["hand_written_examples_per_s"], 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
