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

With several processes (``rank``, ``world``), each takes a disjoint shard of the same data (:func:`shard_indices`):
in training, every ``world``-th example of the epoch's permutation, after dropping the ``n % world`` examples at
its end (so every rank runs the same number of steps); in evaluation, every ``world``-th example in order, without
padding, so the summed metrics cover each example exactly once.  Striding makes the ranks' ``i``-th batches
together exactly the ``i``-th batch of a single process with the whole global batch.  The batched augmentation
key folds the rank into the seed, so the ranks' random streams differ; per image it is keyed by the example.
"""

from __future__ import annotations

import logging
from typing import Any, Iterator, Protocol, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset

from trainlab.data.preprocess import WhitenRecord
from trainlab.data.sizing import resize_batch
from trainlab.data.transforms import Augmentation, batch_generator, mix_seed
from trainlab.data.whiten import Whitening

logger = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor]


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The sample order of one epoch: reproducible from the seed and the epoch number alone."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=generator)


def shard_indices(n: int, seed: int, epoch: int, *, shuffle: bool, rank: int = 0,
                  world: int = 1) -> torch.Tensor | None:
    """The examples rank ``rank`` of ``world`` visits in ``epoch``, in order; None for "all of them, in order".

    Training (``shuffle``): the epoch's permutation less its last ``n % world`` entries, strided by ``world``;
    the dropped examples change from epoch to epoch.  Evaluation: ``rank, rank + world, …``, uneven lengths
    allowed, nothing duplicated.
    """
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank must be in 0 … world - 1, got rank {rank} of world {world}")
    if not shuffle:
        return None if world == 1 else torch.arange(rank, n, world)
    order = epoch_permutation(n, seed, epoch)
    return order if world == 1 else order[: n - n % world][rank::world]


def augment_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s batched augmentation stream (rank 0, and a single process, use ``seed``)."""
    return seed if rank == 0 else mix_seed(seed, rank, 3)


class BatchTransform:
    """Raw stored values → model input: ``x * scale``, resized to ``resize`` (``data.size``), ``(x - mean) / std``
    per channel, then whitened (``data.whiten``, images), in float32 on the batch's device."""

    def __init__(self, scale: float = 1.0, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 resize: Sequence[int] | None = None, whiten: WhitenRecord | None = None):
        self.scale = scale
        self.mean = torch.tensor(mean, dtype=torch.float32) if mean is not None else None
        self.std = torch.tensor(std, dtype=torch.float32) if std is not None else None
        self.resize = tuple(resize) if resize else None
        self.whiten = Whitening(whiten) if whiten else None

    @classmethod
    def from_preprocess(cls, preprocess: dict) -> "BatchTransform":
        """A table's ``whiten`` is already applied to its stored features (:func:`~trainlab.data.tabular.transform_table`)."""
        image = preprocess.get("kind") == "image"
        return cls(preprocess.get("scale", 1.0), preprocess.get("mean"), preprocess.get("std"),
                   preprocess.get("resize"), preprocess.get("whiten") if image else None)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float() * self.scale if self.scale != 1.0 else x.float()
        if self.resize is not None:
            x = resize_batch(x, self.resize)
        if self.mean is not None and self.std is not None:
            shape = (1, -1) + (1,) * (x.dim() - 2)
            x = (x - self.mean.to(x.device).view(shape)) / self.std.to(x.device).view(shape)
        return self.whiten(x) if self.whiten is not None else x


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
                 shuffle: bool = False, seed: int = 0, drop_last: bool = False, augment: Augmentation | None = None,
                 rank: int = 0, world: int = 1):
        if augment is not None and augment.per_sample:
            raise ValueError(f"data.augment: {', '.join(augment.per_sample)} exist only per image; "
                             "use data.loader=torch or auto")
        x, y = data.tensors
        self.x, self.y = x.to(device), y.to(device)
        self.batch_size, self.device, self.transform = batch_size, device, transform
        self.shuffle, self.seed, self.drop_last, self.augment = shuffle, seed, drop_last, augment
        self.rank, self.world = rank, world

    def __len__(self) -> int:
        n = _shard_length(len(self.y), self.shuffle, self.rank, self.world)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def num_examples(self) -> int:
        """Examples one epoch covers, over all ranks (so throughput is the whole job's)."""
        return _covered(len(self.y), self.shuffle, self.world)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        order = shard_indices(len(self.y), self.seed, epoch, shuffle=self.shuffle, rank=self.rank, world=self.world)
        order = order.to(self.device) if order is not None else None
        key_seed = augment_seed(self.seed, self.rank)
        for i in range(start, len(self)):
            lo, hi = i * self.batch_size, (i + 1) * self.batch_size
            idx = slice(lo, hi) if order is None else order[lo:hi]
            yield convert_batch(self.x[idx], self.transform, self.augment, (key_seed, epoch, i)), self.y[idx]


def _shard_length(n: int, shuffle: bool, rank: int, world: int) -> int:
    """How many examples rank ``rank`` visits per epoch (see :func:`shard_indices`)."""
    if shuffle:
        return n // world
    return len(range(rank, n, world))


def _covered(n: int, shuffle: bool, world: int) -> int:
    return n - n % world if shuffle else n


class _EpochSampler(Sampler[int]):
    """This rank's examples of one epoch (:func:`shard_indices`), from position ``start`` on."""

    def __init__(self, n: int, seed: int, epoch: int, start: int, *, shuffle: bool = True, rank: int = 0,
                 world: int = 1):
        order = shard_indices(n, seed, epoch, shuffle=shuffle, rank=rank, world=world)
        self.order = (torch.arange(n) if order is None else order)[start:]

    def __iter__(self) -> Iterator[int]:
        return iter(self.order.tolist())

    def __len__(self) -> int:
        return len(self.order)


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
                 augment: Augmentation | None = None, rank: int = 0, world: int = 1):
        self.data, self.batch_size, self.device, self.transform = data, batch_size, device, transform
        self.shuffle, self.seed, self.num_workers, self.drop_last = shuffle, seed, num_workers, drop_last
        self.augment, self.rank, self.world = augment, rank, world
        self.per_image = augment is not None and bool(augment.per_sample)

    def __len__(self) -> int:
        n = _shard_length(len(self.data), self.shuffle, self.rank, self.world)  # type: ignore[arg-type]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def num_examples(self) -> int:
        """Examples one epoch covers, over all ranks (so throughput is the whole job's)."""
        return _covered(len(self.data), self.shuffle, self.world)  # type: ignore[arg-type]

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        n = len(self.data)  # type: ignore[arg-type]
        first = start * self.batch_size
        sampler: Any = range(first, n)
        if self.shuffle or self.world > 1:
            sampler = _EpochSampler(n, self.seed, epoch, first, shuffle=self.shuffle, rank=self.rank, world=self.world)
        data = _PerImage(self.data, self.augment.v2_pipeline(), self.seed, epoch) if self.per_image else self.data  # type: ignore[union-attr]
        loader = DataLoader(data, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
                            pin_memory=self.device.type == "cuda", drop_last=self.drop_last)
        key_seed = augment_seed(self.seed, self.rank)
        for i, (x, y) in enumerate(loader, start=start):
            x = convert_batch(x.to(self.device, non_blocking=True), self.transform, self.augment, (key_seed, epoch, i),
                              geometric=not self.per_image)
            yield x, y.to(self.device, non_blocking=True)


def make_loader(data: Dataset, *, batch_size: int, device: torch.device, transform: BatchTransform,
                kind: str = "auto", shuffle: bool = False, seed: int = 0, num_workers: int = 0,
                augment: Sequence[Any] | None = None, rank: int = 0, world: int = 1) -> Loader:
    """Pick the device-resident loader for in-memory data (``auto``/``device``), else the DataLoader path.

    ``augment`` (a ``data.augment`` list) is for the training loader only; a transform that exists only per
    image moves ``auto`` to the DataLoader path, with a one-line notice.  ``rank`` of ``world`` processes
    visits its own shard (:func:`shard_indices`) with ``batch_size`` examples per batch.
    """
    own = getattr(data, "make_loader", None)
    if own is not None:  # datasets that batch themselves: text streams, padded token passages (data/text*.py)
        if world > 1 or augment:
            raise ValueError("text datasets batch themselves: they take no data.augment and no multi-process sharding")
        return own(batch_size=batch_size, device=device, shuffle=shuffle, seed=seed)
    pipeline = Augmentation(augment, tuple(data[0][0].shape)) if augment else None
    if kind == "device" and not isinstance(data, TensorDataset):
        raise ValueError("data.loader=device needs an in-memory dataset; use data.loader=torch or auto")
    if kind == "auto" and pipeline is not None and pipeline.per_sample:
        logger.info("data.augment %s run(s) per image with torchvision; using the DataLoader path instead of the "
                    "device loader", ", ".join(pipeline.per_sample))
        kind = "torch"
    if kind in ("auto", "device") and isinstance(data, TensorDataset):
        return DeviceLoader(data, batch_size, device, transform, shuffle=shuffle, seed=seed, augment=pipeline,
                            rank=rank, world=world)
    return TorchLoader(data, batch_size, device, transform, shuffle=shuffle, seed=seed, num_workers=num_workers,
                       augment=pipeline, rank=rank, world=world)
