"""What the loop does for recurrent models: carry the hidden state across batches, and clip by default.

Truncated backpropagation through time: when the training loader says ``carries_state`` (sequentially
partitioned text, :mod:`trainlab.data.text_lm`), the model is told to carry its hidden state from one batch to
the next (``model.carry = True``; the model detaches it after each batch, so gradients stop at the batch edge).
The trainer resets the state at every epoch start and around every evaluation (an evaluation starts from zeros
and leaves the training state as it found it), and saves it in checkpoints, so a mid-epoch resume continues
from exactly the state the interrupted run had.  Models without a carried state are left alone by every helper.

Recurrent models also name the gradient clipping they train with (``default_clip_grad_norm``); it applies unless
``train.clip_grad_norm`` is set.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from trainlab.engine.step import StepRecipe


def configure_carry(model: nn.Module, train_loader: Any) -> None:
    """Carry the hidden state across batches when the loader's consecutive batches continue each other."""
    if not getattr(train_loader, "carries_state", False):
        return
    if not hasattr(model, "carry"):
        raise ValueError(f"sequentially partitioned data carries a hidden state across batches, and "
                         f"{type(model).__name__} has none; use a recurrent model (rnn, gru, lstm) or "
                         "data.partition=random")
    model.carry = True


def reset_carry(model: nn.Module) -> None:
    """Forget the carried state (epoch start, before an evaluation)."""
    reset = getattr(model, "reset_state", None)
    if reset is not None:
        reset()


def carry_snapshot(model: nn.Module) -> Any:
    """The carried state as checkpoint-safe tensors, or None."""
    snapshot = getattr(model, "carried_state", None)
    return snapshot() if snapshot is not None else None


def carry_restore(model: nn.Module, state: Any) -> None:
    """Put back a :func:`carry_snapshot` (None: no state)."""
    restore = getattr(model, "load_carried_state", None)
    if restore is not None:
        restore(state)


def with_model_clipping(recipe: StepRecipe, model: nn.Module) -> StepRecipe:
    """``recipe`` with the model's default gradient-norm clipping when the config set none."""
    default = getattr(model, "default_clip_grad_norm", None)
    if recipe.clip_grad_norm is not None or default is None:
        return recipe
    return dataclasses.replace(recipe, clip_grad_norm=default)


def keep_compile(setting: bool | str, model: nn.Module, wanted: bool) -> bool:
    """``train.compile=auto`` leaves recurrent models eager: their time goes to one fused (cuDNN) call per layer
    already, and the carried state is model state that changes every batch; ``compile=true`` still compiles."""
    return wanted and not (setting == "auto" and hasattr(model, "carry"))
