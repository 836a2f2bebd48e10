"""Learning-rate range test (Smith 2015; fastai's ``lr_find``).

Train a *copy* of the model for a few hundred steps while the LR grows exponentially from ``start_lr`` to
``end_lr``; record the loss, smooth it, and stop once it diverges.  The suggestion is the LR where the smoothed
loss falls fastest (steepest negative slope against log LR) before its minimum: large enough to learn quickly,
safely below the point where training blows up.  The caller's model, optimizer and random generators are left
exactly as they were.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import nn

from trainlab.engine.outputs import prediction_logits
from trainlab.engine.runtime import rng_restore, rng_snapshot


@dataclass
class LRFinderResult:
    """The sweep: LRs tried, raw and smoothed losses, and the suggested LR (None if the loss never fell)."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float | None


def _batches(loader: Any) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches across as many epochs as needed."""
    epoch = 0
    while True:
        yield from loader.epoch(epoch)
        epoch += 1


def find_lr(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: nn.Module, loader: Any, *,
            start_lr: float = 1e-7, end_lr: float = 10.0, steps: int = 200, smoothing: float = 0.98,
            diverge: float = 4.0) -> LRFinderResult:
    """Sweep the LR exponentially over ``steps`` updates of copies of ``model`` and ``optimizer``.

    Parameter groups keep their LR ratios (e.g. ``head_lr_mult``); the LRs reported are group 0's.  The sweep
    stops early when the smoothed loss exceeds ``diverge`` times its minimum.
    """
    if not 0 < start_lr < end_lr:
        raise ValueError(f"lr-find needs 0 < start_lr < end_lr, got {start_lr} and {end_lr}")
    if steps < 5:
        raise ValueError(f"lr-find needs at least 5 steps, got {steps}")
    rng = rng_snapshot()
    # One deepcopy of both keeps the optimizer pointing at the copied parameters.
    trial_model, trial_opt = copy.deepcopy((model, optimizer))
    try:
        return _sweep(trial_model, trial_opt, loss_fn, loader, start_lr, end_lr, steps, smoothing, diverge)
    finally:
        rng_restore(rng)


def _sweep(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: nn.Module, loader: Any, start_lr: float,
           end_lr: float, steps: int, smoothing: float, diverge: float) -> LRFinderResult:
    ratios = [group["lr"] / optimizer.param_groups[0]["lr"] for group in optimizer.param_groups]
    growth = (end_lr / start_lr) ** (1 / (steps - 1))
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    average = 0.0
    model.train()
    for i, (x, y) in zip(range(steps), _batches(loader)):
        lr = start_lr * growth**i
        for group, ratio in zip(optimizer.param_groups, ratios):
            group["lr"] = lr * ratio
        optimizer.zero_grad(set_to_none=True)
        output = model(x)
        loss = loss_fn(prediction_logits(output), y)
        loss.backward()
        optimizer.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            break
        average = smoothing * average + (1 - smoothing) * value
        lrs.append(lr)
        losses.append(value)
        smoothed.append(average / (1 - smoothing ** (i + 1)))
        if smoothed[-1] > diverge * min(smoothed):
            break
    return LRFinderResult(lrs, losses, smoothed, suggest_lr(lrs, smoothed))


def suggest_lr(lrs: list[float], smoothed: list[float], skip_start: int = 5) -> float | None:
    """The LR of steepest descent of the smoothed loss (per unit of log LR), before its minimum."""
    lowest = min(range(len(smoothed)), key=smoothed.__getitem__, default=0)
    if lowest - skip_start < 2:
        return None
    slopes = [(smoothed[i + 1] - smoothed[i]) / math.log(lrs[i + 1] / lrs[i]) for i in range(skip_start, lowest)]
    steepest = min(range(len(slopes)), key=slopes.__getitem__)
    return lrs[skip_start + steepest]
