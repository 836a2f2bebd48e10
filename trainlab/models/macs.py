"""Multiply-accumulate counting, the one definition behind ``trainlab summary``'s MACs and the trainer's TFLOP/s."""

from __future__ import annotations

import math

import torch
from torch import nn

from trainlab.models import scratch, scratch_rnn

UNROLLED = (scratch_rnn.RNNCell, scratch_rnn.LSTMCell, scratch_rnn.GRUCell, scratch_rnn.Recurrent)
# the layers that carry nearly all the compute, torch's and the from-scratch ones that do the same arithmetic
COUNTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, scratch.Conv2d, *UNROLLED)


def layer_macs(module: nn.Module, output: torch.Tensor) -> int:
    """Multiply-accumulates ``module`` spent producing ``output`` (the whole batch); 0 for uncounted layers."""
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return output.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)
    if isinstance(module, scratch.Conv2d):  # trainlab.nn's convolution: no groups, the same products
        return output.numel() * module.in_channels * math.prod(module.kernel_size)
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    if isinstance(module, nn.RNNBase):  # rnn, gru, lstm: per step and direction, gates × hidden × (input + hidden)
        return _recurrent_macs(module, output)
    if isinstance(module, UNROLLED):
        return _unrolled_macs(module, output)
    return 0


def _recurrent_macs(module: nn.RNNBase, output: torch.Tensor) -> int:
    """MACs of a (stacked, maybe bidirectional) recurrent layer whose output holds one row per time step."""
    gates = {"LSTM": 4, "GRU": 3}.get(module.mode, 1)
    directions = 2 if module.bidirectional else 1
    steps = output.numel() // (module.hidden_size * directions)
    per_step = sum(gates * module.hidden_size * ((module.input_size if layer == 0 else module.hidden_size * directions)
                                                 + module.hidden_size) for layer in range(module.num_layers))
    return steps * per_step * directions


def _unrolled_macs(module: nn.Module, output: torch.Tensor) -> int:
    """MACs of a from-scratch cell (one step) or unrolled stack, whose first output holds one hidden row per step
    and example: per layer, (gates × hidden) rows of weights times (input + hidden) columns."""
    layers = getattr(module, "num_layers", None)
    suffixes = [""] if layers is None else [f"_l{layer}" for layer in range(layers)]
    per_row = sum(getattr(module, f"weight_ih{s}").shape[0]
                  * (getattr(module, f"weight_ih{s}").shape[1] + module.hidden_size) for s in suffixes)
    return output.numel() // module.hidden_size * per_row
