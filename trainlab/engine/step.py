"""What one optimizer update does besides ``backward`` and ``step``: the training-recipe knobs.

Kept apart from the loop so :class:`~trainlab.engine.trainer.Trainer` stays readable: gradient clipping,
gradient accumulation, an extra penalty term (L1), batch mixing and the weight EMA are plain settings here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch
from torch import nn

from trainlab.engine.mixing import Mixing


@dataclass(frozen=True)
class StepRecipe:
    """Per-step options; the defaults train plainly (one batch per update, no clipping, no EMA)."""

    clip_grad_norm: float | None = None
    clip_grad_value: float | None = None
    accumulate: int = 1
    ema: float | None = None
    mixing: Mixing = field(default_factory=Mixing)
    penalty: Callable[[], torch.Tensor] | None = None

    def __post_init__(self) -> None:
        if self.accumulate < 1:
            raise ValueError(f"train.accumulate must be >= 1, got {self.accumulate}")
        for key in ("clip_grad_norm", "clip_grad_value"):
            value = getattr(self, key)
            if value is not None and value <= 0:
                raise ValueError(f"train.{key} must be > 0 (or null to disable), got {value}")

    @classmethod
    def from_config(cls, cfg: Any, model: nn.Module) -> "StepRecipe":
        """From a :class:`~trainlab.config.RunConfig`: the ``train`` knobs and ``optim.l1``."""
        from trainlab.optim import L1Penalty

        train = cfg.train
        return cls(clip_grad_norm=train.clip_grad_norm, clip_grad_value=train.clip_grad_value,
                   accumulate=train.accumulate, ema=train.ema,
                   mixing=Mixing(mixup=train.mixup, cutmix=train.cutmix, prob=train.mix_prob),
                   penalty=L1Penalty(model, cfg.optim.l1) if cfg.optim.l1 else None)

    def clip(self, params: Iterable[nn.Parameter]) -> None:
        """Clamp each gradient entry to ±``clip_grad_value``, then rescale to global norm ≤ ``clip_grad_norm``."""
        params = [p for p in params if p.grad is not None]
        if self.clip_grad_value is not None:
            nn.utils.clip_grad_value_(params, self.clip_grad_value)
        if self.clip_grad_norm is not None:
            nn.utils.clip_grad_norm_(params, self.clip_grad_norm)

    @property
    def clips(self) -> bool:
        return self.clip_grad_norm is not None or self.clip_grad_value is not None

    def group_size(self, batch_in_epoch: int, steps_per_epoch: int) -> tuple[int, int]:
        """(position in its accumulation group, size of that group) for a batch; the epoch's last group may be short."""
        position = batch_in_epoch % self.accumulate
        return position, min(self.accumulate, steps_per_epoch - (batch_in_epoch - position))


def mixed_loss(loss_fn: nn.Module, output: Any, y_a: torch.Tensor, y_b: torch.Tensor, lam: float) -> torch.Tensor:
    """The loss of a mixed batch: the two labels' losses weighted like the inputs were."""
    return lam * loss_fn(output, y_a) + (1.0 - lam) * loss_fn(output, y_b)
