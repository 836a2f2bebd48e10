"""``train.batch_size=auto``: the largest batch whose forward and backward pass fit in memory.

Sizes double from 1 until one runs out of memory (or reaches the cap: the training-set size and
``train.max_batch_size``); a binary search between the last size that fit and the first that did not then
finds the largest that fits.  The model's weights, buffers (BatchNorm statistics) and gradients are restored
afterwards, so probing never changes what training starts from.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import torch
from torch import nn

from trainlab.data.bundle import DataMeta
from trainlab.data.loaders import BatchTransform, make_loader

logger = logging.getLogger(__name__)


class BatchSizeError(ValueError):
    """Not even a batch of one fits in memory (a setting the user must change, hence a ValueError)."""


def is_out_of_memory(err: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or any RuntimeError whose message says the device ran out of memory."""
    oom_type = getattr(torch.cuda, "OutOfMemoryError", None)
    return (oom_type is not None and isinstance(err, oom_type)) or (
        isinstance(err, RuntimeError) and "out of memory" in str(err).lower())


def forward_backward(model: nn.Module, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """One training-mode forward and backward pass (what a training step needs in memory, minus the update)."""
    output = model(x)
    if isinstance(output, (tuple, list)):
        output = output[0]
    loss_fn(output, y).backward()


def fits(model: nn.Module, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor) -> bool:
    """Whether a batch of ``x`` passes forward and backward; any other error than running out of memory propagates."""
    try:
        forward_backward(model, loss_fn, x, y)
        return True
    except Exception as err:
        if not is_out_of_memory(err):
            raise
        return False
    finally:
        model.zero_grad(set_to_none=True)
        if x.device.type == "cuda":
            torch.cuda.empty_cache()


def _probe_batch(dataset: Any, meta: DataMeta, device: torch.device, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A model-ready batch of ``size`` examples (the first ones, repeated if needed), as training would see it."""
    loader = make_loader(dataset, batch_size=size, device=device, transform=BatchTransform.from_preprocess(meta.preprocess),
                         kind="auto", shuffle=False, seed=0, num_workers=0, augment=None)
    return next(iter(loader.epoch(0)))


def largest_fitting(probe: Any, cap: int) -> int:
    """The largest n in [1, cap] with ``probe(n)`` true, assuming fitting is monotone; 0 if none."""
    good, bad, size = 0, cap + 1, 1
    while size <= cap and probe(size):
        good, size = size, size * 2
    bad = min(size, cap + 1)
    while bad - good > 1:
        middle = (good + bad) // 2
        good, bad = (middle, bad) if probe(middle) else (good, middle)
    return good


def find_batch_size(model: nn.Module, loss_fn: nn.Module, dataset: Any, meta: DataMeta, device: torch.device,
                    cap: int = 1024) -> int:
    """Probe and print the batch size for ``batch_size=auto``; weights, buffers and gradients are left as they were."""
    cap = max(1, min(cap, len(dataset)))
    x, y = _probe_batch(dataset, meta, device, cap)
    saved = copy.deepcopy(model.state_dict())
    was_training = model.training
    model.train()
    try:
        size = largest_fitting(lambda n: fits(model, loss_fn, x[:n], y[:n]), cap)
    finally:
        model.load_state_dict(saved)
        model.train(was_training)
        model.zero_grad(set_to_none=True)
    if size == 0:
        raise BatchSizeError(f"batch_size=auto: not even one example fits in {device} memory; use a smaller model "
                             "or input size, or another device")
    limit = "the training-set size" if cap == len(dataset) else "train.max_batch_size"
    note = f" (capped by {limit})" if size == cap else ""
    logger.info("batch_size=auto: using %d%s", size, note)
    return size
