"""Optimizers, parameter groups and per-step learning-rate schedules, selected by name from the config."""

from trainlab.optim import optimizers, schedules  # noqa: F401  (registration)
from trainlab.optim import torch_schedules  # noqa: F401  (registration: torch.* schedules)
from trainlab.optim.build import Schedule, build_optimizer, build_schedule, lr_curve, updates_per_epoch
from trainlab.optim.finetune import apply_finetune, finetune_groups, model_blocks
from trainlab.optim.groups import L1Penalty, param_groups, split_decay

__all__ = ["L1Penalty", "Schedule", "apply_finetune", "build_optimizer", "build_schedule", "finetune_groups",
           "lr_curve", "model_blocks", "param_groups", "split_decay", "updates_per_epoch"]
