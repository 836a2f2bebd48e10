"""Batches for the trainer.

Two paths give the same sample order for the same seed and epoch:

* :class:`DeviceLoader` — the whole split lives on the training device as raw tensors; each epoch indexes a
  permutation and converts the batch (dtype, scale, normalize) on the device.  No worker processes, no
  per-sample Python, no host→device copies after the first.
* :class:`TorchLoader` — the classic ``DataLoader`` for datasets that do not fit in memory or need PIL
  transforms; its sampler draws the same permutation.

The permutation of epoch ``e`` is a pure function of ``(seed, e)``, so resuming mid-run needs no loader state.
Training augmentation (:mod:`trainlab.data.transforms`) is keyed the same way, by ``(seed, epoch, batch)`` on
the batched path and ``(seed, epoch, sample)`` per image, so it too continues exactly after a resume.
"""

from __future__ import annotations

import logging
from typing import Any, Iterator, Protocol, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset

from trainlab.data.transforms import Augmentation, batch_generator, mix_seed

logger = logging.getLogger(__name__)

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


def convert_batch(x: torch.Tensor, transform: BatchTransform, augment: Augmentation | None, key: tuple[int, int, int],
                  geometric: bool = True) -> torch.Tensor:
    """Raw batch → model input; with ``augment``, geometric transforms first (unless already done per image),
    then normalization, then the normalized-stage ones (erasing), all drawing from the batch's own generator."""
    if augment is None:
        return transform(x)
    gen = batch_generator(*key)
    if geometric:
        x = augment.before_normalize(x, gen)
    return augment.after_normalize(transform(x), gen)


class Loader(Protocol):
    """What the trainer iterates: batches of one epoch, optionally starting part-way through."""

    batch_size: int

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]: ...

    def __len__(self) -> int: ...


class DeviceLoader:
    """Batches sliced from tensors that already live on the device."""

    def __init__(self, data: TensorDataset, batch_size: int, device: torch.device, transform: BatchTransform,
                 shuffle: bool = False, seed: int = 0, drop_last: bool = False, augment: Augmentation | None = None):
        if augment is not None and augment.per_sample:
            raise ValueError(f"data.augment: {', '.join(augment.per_sample)} exist only per image; "
                             "use data.loader=torch or auto")
        x, y = data.tensors
        self.x, self.y = x.to(device), y.to(device)
        self.batch_size, self.device, self.transform = batch_size, device, transform
        self.shuffle, self.seed, self.drop_last, self.augment = shuffle, seed, drop_last, augment

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
            idx = slice(lo, hi) if order is None else order[lo:hi]
            yield convert_batch(self.x[idx], self.transform, self.augment, (self.seed, epoch, i)), self.y[idx]


class _EpochSampler(Sampler[int]):
    def __init__(self, n: int, seed: int, epoch: int, start: int):
        self.n, self.seed, self.epoch, self.start = n, seed, epoch, start

    def __iter__(self) -> Iterator[int]:
        return iter(epoch_permutation(self.n, self.seed, self.epoch)[self.start:].tolist())

    def __len__(self) -> int:
        return self.n - self.start


class _PerImage(Dataset):
    """Applies a torchvision v2 pipeline to each raw image, seeded by ``(seed, epoch, index)`` (not the global RNG)."""

    def __init__(self, base: Dataset, pipeline: Any, seed: int, epoch: int):
        self.base, self.pipeline, self.seed, self.epoch = base, pipeline, seed, epoch

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        from torchvision import tv_tensors

        x, y = self.base[index]
        with torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(mix_seed(self.seed, self.epoch, index, 2))
            x = self.pipeline(tv_tensors.Image(x)).as_subclass(torch.Tensor)
        return x, y


class TorchLoader:
    """A ``DataLoader`` per epoch with the same order as :class:`DeviceLoader`; batches moved non-blocking.

    Augmentation with per-image transforms runs in the DataLoader (workers, if any); otherwise the batched
    versions run on the device after the copy, exactly as in :class:`DeviceLoader`.
    """

    def __init__(self, data: Dataset, batch_size: int, device: torch.device, transform: BatchTransform,
                 shuffle: bool = False, seed: int = 0, num_workers: int = 0, drop_last: bool = False,
                 augment: Augmentation | None = None):
        self.data, self.batch_size, self.device, self.transform = data, batch_size, device, transform
        self.shuffle, self.seed, self.num_workers, self.drop_last = shuffle, seed, num_workers, drop_last
        self.augment = augment
        self.per_image = augment is not None and bool(augment.per_sample)

    def __len__(self) -> int:
        n = len(self.data)  # type: ignore[arg-type]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def num_examples(self) -> int:
        return len(self.data)  # type: ignore[arg-type]

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        n = len(self.data)  # type: ignore[arg-type]
        sampler = _EpochSampler(n, self.seed, epoch, start * self.batch_size) if self.shuffle else range(start * self.batch_size, n)
        data = _PerImage(self.data, self.augment.v2_pipeline(), self.seed, epoch) if self.per_image else self.data  # type: ignore[union-attr]
        loader = DataLoader(data, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
                            pin_memory=self.device.type == "cuda", drop_last=self.drop_last)
        for i, (x, y) in enumerate(loader, start=start):
            x = convert_batch(x.to(self.device, non_blocking=True), self.transform, self.augment, (self.seed, epoch, i),
                              geometric=not self.per_image)
            yield x, y.to(self.device, non_blocking=True)


def make_loader(data: Dataset, *, batch_size: int, device: torch.device, transform: BatchTransform,
                kind: str = "auto", shuffle: bool = False, seed: int = 0, num_workers: int = 0,
                augment: Sequence[Any] | None = None) -> Loader:
    """Pick the device-resident loader for in-memory data (``auto``/``device``), else the DataLoader path.

    ``augment`` (a ``data.augment`` list) is for the training loader only; a transform that exists only per
    image moves ``auto`` to the DataLoader path, with a one-line notice.
    """
    pipeline = Augmentation(augment, tuple(data[0][0].shape)) if augment else None
    if kind == "device" and not isinstance(data, TensorDataset):
        raise ValueError("data.loader=device needs an in-memory dataset; use data.loader=torch or auto")
    if kind == "auto" and pipeline is not None and pipeline.per_sample:
        logger.info("data.augment %s run(s) per image with torchvision; using the DataLoader path instead of the "
                    "device loader", ", ".join(pipeline.per_sample))
        kind = "torch"
    if kind in ("auto", "device") and isinstance(data, TensorDataset):
        return DeviceLoader(data, batch_size, device, transform, shuffle=shuffle, seed=seed, augment=pipeline)
    return TorchLoader(data, batch_size, device, transform, shuffle=shuffle, seed=seed, num_workers=num_workers,
                       augment=pipeline)
