"""Fine-tuning policy: which parameters train after ``train.init_from``, and at which learning rate.

The model is cut into *blocks*: its top-level children that hold parameters, in the order the model defines
them, with an ``nn.ModuleDict``/``nn.ModuleList`` child counted item by item (GoogLeNet's inception blocks).  For
the zoo's ``nn.Sequential`` models that is stem, stages and head (ResNet: stem, 4 stages, head; LeNet: 2 convs and
3 dense layers).  Parameters directly on the root module form a first block of their own, ``<root>``.

Freezing sets ``requires_grad=False``.  Frozen parameters still sit in their optimizer group from the first step,
with the learning rate they will train at once unfrozen; they get no gradient, so every torch optimizer skips them
(no update, no weight decay, no state).  Unfreezing later (``finetune.unfreeze_after``) therefore never adds a group,
and a run resumed after the unfreeze restores the same optimizer it saved.
"""

from __future__ import annotations

import fnmatch
import logging
from typing import Any

from torch import nn

from trainlab.config import FinetuneConfig, OptimConfig
from trainlab.optim.groups import head_parameters, split_decay

logger = logging.getLogger(__name__)

ROOT_BLOCK = "<root>"
Block = tuple[str, list[tuple[str, nn.Parameter]]]


def model_blocks(model: nn.Module) -> list[Block]:
    """``(block name, [(parameter name, parameter)])`` in model order; each parameter once, every one covered."""
    seen: set[int] = set()
    blocks: list[Block] = []

    def add(name: str, named: list[tuple[str, nn.Parameter]]) -> None:
        fresh = [(n, p) for n, p in named if id(p) not in seen]
        seen.update(id(p) for _, p in fresh)
        if fresh:
            blocks.append((name, fresh))

    add(ROOT_BLOCK, list(model.named_parameters(recurse=False)))
    for name, child in model.named_children():
        items = child.named_children() if isinstance(child, (nn.ModuleDict, nn.ModuleList)) else [("", child)]
        for sub, module in items:
            prefix = f"{name}.{sub}" if sub else name
            add(prefix, [(f"{prefix}.{n}", p) for n, p in module.named_parameters()])
    return blocks


def frozen_names(model: nn.Module, cfg: FinetuneConfig) -> set[str]:
    """The parameter names ``cfg`` freezes in ``model``; a block count or pattern that does not fit fails naming it."""
    named = list(model.named_parameters())
    frozen: set[str] = set()
    if cfg.mode == "last":
        blocks = model_blocks(model)
        if cfg.last is None or cfg.last > len(blocks):
            raise ValueError(f"finetune.last={cfg.last}, but {type(model).__name__} has {len(blocks)} blocks "
                             f"({', '.join(name for name, _ in blocks)}); choose 1 to {len(blocks)}")
        frozen = {n for _, params in blocks[:-cfg.last] for n, _ in params}
    elif cfg.mode == "head":
        head = {id(p) for p in head_parameters(model, "finetune.mode=head",
                                               "use finetune.mode=last with finetune.last=1")}
        frozen = {n for n, p in named if id(p) not in head}
    names = [n for n, _ in named]
    for pattern in cfg.freeze:
        matched = fnmatch.filter(names, pattern)
        if not matched:
            raise ValueError(f"finetune.freeze pattern '{pattern}' matches no parameter of {type(model).__name__}; "
                             f"names look like {', '.join(names[:3])} (blocks: "
                             f"{', '.join(name for name, _ in model_blocks(model))}; write e.g. '0.*')")
        frozen.update(matched)
    return frozen


def apply_finetune(model: nn.Module, cfg: FinetuneConfig, announce: bool = True) -> list[str]:
    """Freeze what ``cfg`` asks for (``requires_grad=False``); return the frozen names in model order.

    ``announce`` logs what is frozen (a fresh run; a resume or an evaluation of a saved run stays quiet).
    """
    if not cfg.active():
        return []
    frozen = frozen_names(model, cfg)
    names = [n for n, p in model.named_parameters() if n in frozen]
    for name, param in model.named_parameters():
        if name in frozen:
            param.requires_grad_(False)
    total = sum(1 for _ in model.parameters())
    blocks = [name for name, params in model_blocks(model) if any(n in frozen for n, _ in params)]
    if announce:
        logger.info("finetune mode=%s: %d of %d parameter tensors frozen (blocks: %s)", cfg.mode, len(names), total,
                    ", ".join(blocks) or "none")
    return names


def finetune_groups(model: nn.Module, optim: OptimConfig, cfg: FinetuneConfig) -> list[dict[str, Any]]:
    """One optimizer group per block × head/body × decay/no-decay, empty ones dropped, in block order.

    LR = ``optim.lr`` × (``optim.head_lr_mult`` for the head, ``finetune.body_lr_mult`` otherwise) ×
    ``finetune.layer_decay`` ^ (blocks after this one).  Frozen parameters are in their groups too (see the module
    docstring), so the groups never change during a run.
    """
    blocks = model_blocks(model)
    head_ids = {id(p) for p in head_parameters(model)} if optim.head_lr_mult != 1.0 else set()
    exempt_ids = {id(p) for p in split_decay(model)[1]} if optim.no_decay_norm_bias else set()
    groups = []
    for index, (block, params) in enumerate(blocks):
        depth = cfg.layer_decay ** (len(blocks) - 1 - index) if cfg.layer_decay is not None else 1.0
        for part, mult in (("body", cfg.body_lr_mult), ("head", optim.head_lr_mult)):
            for kind, decay in (("decay", optim.weight_decay), ("no_decay", 0.0)):
                members = [p for _, p in params
                           if (id(p) in head_ids) == (part == "head") and (id(p) in exempt_ids) == (kind == "no_decay")]
                if members:
                    groups.append({"params": members, "lr": optim.lr * mult * depth, "weight_decay": decay,
                                   "name": f"{block}/{part}/{kind}"})
    return groups
