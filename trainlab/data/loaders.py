"""Batches for the trainer.

Two paths give the same sample order for the same seed and epoch:

* :class:`DeviceLoader` — the whole split lives on the training device as raw tensors; each epoch indexes a
  permutation and converts the batch (dtype, scale, normalize) on the device.  No worker processes, no
  per-sample Python, no host→device copies after the first.
* :class:`TorchLoader` — the classic ``DataLoader`` for datasets that do not fit in memory or need PIL
  transforms; its sampler draws the same permutation.

The permutation of epoch ``e`` is a pure function of ``(seed, e)``, so resuming mid-run needs no loader state.
"""

from __future__ import annotations

from typing import Iterator, Protocol, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset

Batch = tuple[torch.Tensor, torch.Tensor]


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The sample order of one epoch: reproducible from the seed and the epoch number alone."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=generator)


class BatchTransform:
    """Raw stored values → model input: ``(x * scale - mean) / std`` per channel, in float32."""

    def __init__(self, scale: float = 1.0, mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        self.scale = scale
        self.mean = torch.tensor(mean, dtype=torch.float32) if mean is not None else None
        self.std = torch.tensor(std, dtype=torch.float32) if std is not None else None

    @classmethod
    def from_preprocess(cls, preprocess: dict) -> "BatchTransform":
        return cls(preprocess.get("scale", 1.0), preprocess.get("mean"), preprocess.get("std"))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float() * self.scale if self.scale != 1.0 else x.float()
        if self.mean is None or self.std is None:
            return x
        shape = (1, -1) + (1,) * (x.dim() - 2)
        mean = self.mean.to(x.device).view(shape)
        std = self.std.to(x.device).view(shape)
        return (x - mean) / std


class Loader(Protocol):
    """What the trainer iterates: batches of one epoch, optionally starting part-way through."""

    batch_size: int

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]: ...

    def __len__(self) -> int: ...


class DeviceLoader:
    """Batches sliced from tensors that already live on the device."""

    def __init__(self, data: TensorDataset, batch_size: int, device: torch.device, transform: BatchTransform,
                 shuffle: bool = False, seed: int = 0, drop_last: bool = False):
        x, y = data.tensors
        self.x, self.y = x.to(device), y.to(device)
        self.batch_size, self.device, self.transform = batch_size, device, transform
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last

    def __len__(self) -> int:
        n = len(self.y)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def num_examples(self) -> int:
        return len(self.y)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        order = epoch_permutation(len(self.y), self.seed, epoch).to(self.device) if self.shuffle else None
        for i in range(start, len(self)):
            lo, hi = i * self.batch_size, (i + 1) * self.batch_size
            if order is None:
                yield self.transform(self.x[lo:hi]), self.y[lo:hi]
            else:
                idx = order[lo:hi]
                yield self.transform(self.x[idx]), self.y[idx]


class _EpochSampler(Sampler[int]):
    def __init__(self, n: int, seed: int, epoch: int, start: int):
        self.n, self.seed, self.epoch, self.start = n, seed, epoch, start

    def __iter__(self) -> Iterator[int]:
        return iter(epoch_permutation(self.n, self.seed, self.epoch)[self.start:].tolist())

    def __len__(self) -> int:
        return self.n - self.start


class TorchLoader:
    """A ``DataLoader`` per epoch with the same order as :class:`DeviceLoader`; batches moved non-blocking."""

    def __init__(self, data: Dataset, batch_size: int, device: torch.device, transform: BatchTransform,
                 shuffle: bool = False, seed: int = 0, num_workers: int = 0, drop_last: bool = False):
        self.data, self.batch_size, self.device, self.transform = data, batch_size, device, transform
        self.shuffle, self.seed, self.num_workers, self.drop_last = shuffle, seed, num_workers, drop_last

    def __len__(self) -> int:
        n = len(self.data)  # type: ignore[arg-type]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def num_examples(self) -> int:
        return len(self.data)  # type: ignore[arg-type]

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        n = len(self.data)  # type: ignore[arg-type]
        sampler = _EpochSampler(n, self.seed, epoch, start * self.batch_size) if self.shuffle else range(start * self.batch_size, n)
        loader = DataLoader(self.data, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
                            pin_memory=self.device.type == "cuda", drop_last=self.drop_last)
        for x, y in loader:
            yield self.transform(x.to(self.device, non_blocking=True)), y.to(self.device, non_blocking=True)


def make_loader(data: Dataset, *, batch_size: int, device: torch.device, transform: BatchTransform,
                kind: str = "auto", shuffle: bool = False, seed: int = 0, num_workers: int = 0) -> Loader:
    """Pick the device-resident loader for in-memory data (``auto``/``device``), else the DataLoader path."""
    if kind == "device" and not isinstance(data, TensorDataset):
        raise ValueError("data.loader=device needs an in-memory dataset; use data.loader=torch or auto")
    if kind in ("auto", "device") and isinstance(data, TensorDataset):
        return DeviceLoader(data, batch_size, device, transform, shuffle=shuffle, seed=seed)
    return TorchLoader(data, batch_size, device, transform, shuffle=shuffle, seed=seed, num_workers=num_workers)
