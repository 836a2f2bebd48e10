"""Optimizers and learning-rate schedules by name.

An optimizer builder takes ``(params, lr=…, weight_decay=…, **options)`` and returns a
``torch.optim.Optimizer``.  A schedule builder takes ``total_steps`` and its options and returns a function
``step → LR multiplier``; :func:`build_schedule` prepends linear warmup and wraps it in ``LambdaLR`` so
every schedule steps once per batch and its position is saved with the optimizer.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR

from trainlab.config import OptimConfig, SchedConfig
from trainlab.registry import OPTIMIZERS, SCHEDULES

Multiplier = Callable[[int], float]


@OPTIMIZERS.register("sgd", description="stochastic gradient descent with optional (Nesterov) momentum")
def sgd(params: Iterable[Any], *, lr: float, weight_decay: float = 0.0, momentum: float = 0.0,
        nesterov: bool = False, dampening: float = 0.0) -> torch.optim.Optimizer:
    """SGD; ``momentum=0.9`` is the usual choice for conv nets."""
    return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                           dampening=dampening)


@OPTIMIZERS.register("adam", description="Adam: adaptive moments; L2 weight decay added to the gradient")
def adam(params: Iterable[Any], *, lr: float, weight_decay: float = 0.0, beta1: float = 0.9, beta2: float = 0.999,
         eps: float = 1e-8) -> torch.optim.Optimizer:
    """Adam (Kingma & Ba); a robust default for small models."""
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, betas=(beta1, beta2), eps=eps)


@SCHEDULES.register("constant", description="the base learning rate throughout (after any warmup)")
def constant(*, total_steps: int) -> Multiplier:
    """Multiplier 1 at every step."""
    return lambda step: 1.0


@SCHEDULES.register("cosine", description="cosine decay from the base LR to min_lr over the whole run")
def cosine(*, total_steps: int, min_lr_ratio: float = 0.0) -> Multiplier:
    """Half a cosine wave from 1 to ``min_lr_ratio`` over ``total_steps``."""

    def multiplier(step: int) -> float:
        progress = min(step / max(total_steps, 1), 1.0)
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return multiplier


def build_optimizer(cfg: OptimConfig, params: Iterable[Any]) -> torch.optim.Optimizer:
    """The optimizer named in the config over ``params``."""
    return OPTIMIZERS.get(cfg.name)(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **cfg.options())


def with_warmup(multiplier: Multiplier, warmup: int) -> Multiplier:
    """Linear warmup from ``1/(warmup+1)`` to 1 over ``warmup`` steps, then ``multiplier`` from its step 0."""
    if warmup <= 0:
        return multiplier
    return lambda step: (step + 1) / (warmup + 1) if step < warmup else multiplier(step - warmup)


def build_schedule(cfg: SchedConfig, optimizer: torch.optim.Optimizer, total_steps: int) -> LambdaLR:
    """A per-step ``LambdaLR`` for the configured schedule; ``total_steps`` covers warmup and decay."""
    decay_steps = max(total_steps - cfg.warmup, 1)
    multiplier = SCHEDULES.get(cfg.name)(total_steps=decay_steps, **cfg.options())
    return LambdaLR(optimizer, with_warmup(multiplier, cfg.warmup))
