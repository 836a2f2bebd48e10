"""Exponential moving average of the weights: a smoother model for evaluation.

After each optimizer update ``ema ← d·ema + (1 − d)·w`` for every floating-point parameter and buffer
(integer buffers such as BatchNorm's batch counter are copied).  The decay ramps up as
``d_t = min(decay, (1 + t) / (10 + t))`` over the first updates (the TensorFlow recipe), so the average does not
remember the random initialization in short runs.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class WeightEMA:
    """A frozen copy of ``model`` whose weights track the running average; evaluate with :attr:`module`."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"train.ema must be in (0, 1), e.g. 0.999, got {decay}")
        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    def current_decay(self) -> float:
        """The decay used by the next update (warmed up over the first updates)."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Blend ``model``'s current weights into the average."""
        weight = 1.0 - self.current_decay()
        live = model.state_dict()
        for name, avg in self.module.state_dict().items():
            if avg.is_floating_point():
                avg.lerp_(live[name].to(avg.dtype), weight)
            else:
                avg.copy_(live[name])
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "weights": {k: v.detach().clone() for k, v in self.module.state_dict().items()}}

    def load_state_dict(self, data: dict[str, Any]) -> None:
        self.updates = data["updates"]
        self.module.load_state_dict(data["weights"])
