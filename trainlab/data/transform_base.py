"""The base of every augmentation and the seeded randomness they draw from (see :mod:`trainlab.data.transforms`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch

Stage = Literal["raw", "normalized"]


def mix_seed(*parts: int) -> int:
    """One 63-bit seed from several integers (stable across runs and Python versions)."""
    value = 0x9E3779B9
    for part in parts:
        value = (value * 1_000_003 + int(part) + 0x7F4A7C15) % (1 << 63)
    return value


def batch_generator(seed: int, epoch: int, batch: int) -> torch.Generator:
    return torch.Generator().manual_seed(mix_seed(seed, epoch, batch, 1))


@dataclass(frozen=True)
class Transform:
    """Base of all augmentations: ``batched`` ones have :meth:`batch`; all raw ones have :meth:`v2`."""

    batched: ClassVar[bool] = True
    stage: ClassVar[Stage] = "raw"

    def check(self, input_shape: tuple[int, ...]) -> None:
        """Raise ValueError when the transform cannot apply to images of ``input_shape`` (C, H, W)."""

    def bind(self, input_shape: tuple[int, ...]) -> "Transform":
        """This transform with its defaults that depend on the dataset's image shape filled in."""
        return self

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The (C, H, W) of images of ``shape`` after this transform (most keep it)."""
        return shape

    def batch(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def v2(self, input_shape: tuple[int, ...]) -> Any:
        raise NotImplementedError


def probability(name: str, p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}: p must be in [0, 1], got {p}")


def rand_draws(gen: torch.Generator, n: int, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=gen).to(device, non_blocking=True)
