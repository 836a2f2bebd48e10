"""Recurrent cells written from scratch, the way the d2l-style curriculum writes them by hand.

Like :mod:`trainlab.models.scratch`, these exist for teaching: each cell spells out its update with plain matrix
products and elementwise gates instead of calling ``torch.nn.RNN`` / ``LSTM`` / ``GRU``, and :class:`Recurrent`
unrolls a cell over time with an explicit Python loop, so a student can read how the hidden state (and the LSTM's
memory cell) is carried from one step to the next. They are checked against torch (``tests/test_scratch_rnn.py``:
same outputs, final states and gradients after copying weights through ``state_dict``).

Parameter names and shapes match torch's (``weight_ih``/``weight_hh``/``bias_ih``/``bias_hh`` for the cells,
``weight_ih_l0``… for the unrolled layers, gates stacked in torch's order), so state dicts move both ways. The
loop over time steps is slow; the registered sequence models use torch's fused kernels (cuDNN on CUDA).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

__all__ = ["GRUCell", "LSTMCell", "RNNCell", "Recurrent", "gru_step", "lstm_step", "rnn_step"]

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}  # rows of weight_ih per hidden unit, torch's layout


def _affine(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``x @ W^T + b``: the one product every gate is made of."""
    y = x @ weight.T
    return y if bias is None else y + bias


def rnn_step(x: torch.Tensor, h: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor, b_ih: torch.Tensor | None,
             b_hh: torch.Tensor | None, nonlinearity: str = "tanh") -> torch.Tensor:
    """One step of a plain (Elman) RNN: ``h' = phi(x W_ih^T + b_ih + h W_hh^T + b_hh)``.

    The new state depends on the old one only through ``W_hh``; backpropagating through many steps multiplies by
    it again and again, which is why plain RNNs forget (or explode) over long spans.
    """
    pre = _affine(x, w_ih, b_ih) + _affine(h, w_hh, b_hh)
    return torch.tanh(pre) if nonlinearity == "tanh" else torch.relu(pre)


def lstm_step(x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], w_ih: torch.Tensor, w_hh: torch.Tensor,
              b_ih: torch.Tensor | None, b_hh: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step. Gates, in torch's order: input ``i``, forget ``f``, candidate ``g``, output ``o``::

        i, f, o = sigmoid(.)   g = tanh(.)   c' = f * c + i * g   h' = o * tanh(c')

    The memory cell ``c`` is updated additively, gated by ``f``: a gradient can flow along ``c`` over many steps
    without being squashed by a weight matrix each time — the LSTM's answer to the plain RNN's short memory.
    """
    h, c = state
    i, f, g, o = (_affine(x, w_ih, b_ih) + _affine(h, w_hh, b_hh)).chunk(4, dim=-1)
    c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_next), c_next


def gru_step(x: torch.Tensor, h: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor, b_ih: torch.Tensor | None,
             b_hh: torch.Tensor | None) -> torch.Tensor:
    """One GRU step. Gates, in torch's order: reset ``r``, update ``z``, new ``n``::

        r, z = sigmoid(.)   n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn))   h' = (1 - z) * n + z * h

    ``z`` interpolates between keeping the old state and taking the new one, an LSTM with the cell and hidden
    state merged. The reset gate multiplies the *recurrent product* (bias included), as torch and cuDNN do.
    """
    x_r, x_z, x_n = _affine(x, w_ih, b_ih).chunk(3, dim=-1)
    h_r, h_z, h_n = _affine(h, w_hh, b_hh).chunk(3, dim=-1)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h


def _check_mode(mode: str) -> None:
    if mode not in GATES:
        raise ValueError(f"unknown recurrent mode {mode!r}; choose one of {', '.join(GATES)}")


def _step(mode: str) -> Callable[..., State]:
    """The step function of ``mode``; an RNN's nonlinearity is part of its mode, as in torch's ``RNNBase``."""
    if mode == "lstm":
        return lstm_step
    if mode == "gru":
        return gru_step
    nonlinearity = mode.removeprefix("rnn_")
    return lambda x, h, *weights: rnn_step(x, h, *weights, nonlinearity=nonlinearity)


def _init_uniform(module: nn.Module, hidden_size: int) -> None:
    """Torch's recurrent default: every weight and bias uniform in ``±1/sqrt(hidden_size)``."""
    bound = 1.0 / math.sqrt(hidden_size)
    with torch.no_grad():
        for param in module.parameters():
            param.uniform_(-bound, bound)


class _Cell(nn.Module):
    """One time step with its own weights, named like ``nn.RNNCell``/``nn.LSTMCell``/``nn.GRUCell``."""

    mode = "rnn_tanh"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        rows = GATES[self.mode] * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(rows)) if bias else None
        self.bias_hh = nn.Parameter(torch.empty(rows)) if bias else None
        _init_uniform(self, hidden_size)

    def zero_state(self, batch: int, like: torch.Tensor) -> State:
        """The state a sequence starts from when none is given: zeros (and a zero cell for the LSTM)."""
        h = like.new_zeros(batch, self.hidden_size)
        return (h, h.clone()) if self.mode == "lstm" else h

    def forward(self, x: torch.Tensor, state: State | None = None) -> State:
        if x.ndim != 2 or x.shape[1] != self.input_size:
            raise ValueError(f"{type(self).__name__} expects (batch, {self.input_size}) input, got {tuple(x.shape)}")
        if state is None:
            state = self.zero_state(x.shape[0], x)
        return _step(self.mode)(x, state, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias_ih is not None}"


class RNNCell(_Cell):
    """``h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)`` (or ReLU), the cell of ``nn.RNNCell``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh") -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.mode = f"rnn_{nonlinearity}"
        super().__init__(input_size, hidden_size, bias)


class LSTMCell(_Cell):
    """Input, forget and output gates around an additive memory cell; returns ``(h', c')``, like ``nn.LSTMCell``."""

    mode = "lstm"


class GRUCell(_Cell):
    """Reset and update gates, one state vector; the cell of ``nn.GRUCell``."""

    mode = "gru"


class Recurrent(nn.Module):
    """A stack of ``num_layers`` recurrent layers unrolled over time with a Python loop — ``nn.RNN``/``nn.LSTM``/
    ``nn.GRU`` spelled out (unidirectional, no dropout between layers).

    ``mode`` is ``rnn_tanh``, ``rnn_relu``, ``lstm`` or ``gru``. Input is ``(time, batch, features)``, or
    ``(batch, time, features)`` with ``batch_first``; returns the top layer's output at every step and the final
    state of every layer, ``h_n`` of shape ``(layers, batch, hidden)`` (``(h_n, c_n)`` for the LSTM), exactly
    torch's convention, so passing the returned state back in continues the sequence (truncated BPTT).
    """

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False) -> None:
        super().__init__()
        _check_mode(mode)
        if num_layers < 1:
            raise ValueError(f"Recurrent num_layers must be >= 1, got {num_layers}")
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        rows = GATES[mode] * hidden_size
        for layer in range(num_layers):
            width = input_size if layer == 0 else hidden_size
            self.register_parameter(f"weight_ih_l{layer}", nn.Parameter(torch.empty(rows, width)))
            self.register_parameter(f"weight_hh_l{layer}", nn.Parameter(torch.empty(rows, hidden_size)))
            self.register_parameter(f"bias_ih_l{layer}", nn.Parameter(torch.empty(rows)) if bias else None)
            self.register_parameter(f"bias_hh_l{layer}", nn.Parameter(torch.empty(rows)) if bias else None)
        _init_uniform(self, hidden_size)

    def layer_weights(self, layer: int) -> tuple[torch.Tensor | None, ...]:
        """``(W_ih, W_hh, b_ih, b_hh)`` of one layer."""
        return tuple(getattr(self, f"{kind}_l{layer}") for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        if x.ndim != 3 or x.shape[2] != self.input_size:
            order = "(batch, time, features)" if self.batch_first else "(time, batch, features)"
            raise ValueError(f"Recurrent({self.mode}) expects {order} input with {self.input_size} features, "
                             f"got {tuple(x.shape)}")
        steps = x.transpose(0, 1) if self.batch_first else x
        layer_states = self._split_state(state, steps.shape[1], steps)
        step = _step(self.mode)
        finals: list[State] = []
        for layer in range(self.num_layers):
            weights, carried, outputs = self.layer_weights(layer), layer_states[layer], []
            for x_t in steps:  # the loop over time that cuDNN fuses away
                carried = step(x_t, carried, *weights)
                outputs.append(carried[0] if self.mode == "lstm" else carried)
            steps = torch.stack(outputs)
            finals.append(carried)
        out = steps.transpose(0, 1) if self.batch_first else steps
        return out, self._stack_state(finals)

    def _split_state(self, state: State | None, batch: int, like: torch.Tensor) -> list[State]:
        """Torch's ``(layers, batch, hidden)`` state (or zeros) as one state per layer."""
        if state is None:
            zeros = like.new_zeros(self.num_layers, batch, self.hidden_size)
            state = (zeros, zeros.clone()) if self.mode == "lstm" else zeros
        if self.mode == "lstm":
            h, c = state  # type: ignore[misc]
            return list(zip(h.unbind(0), c.unbind(0)))
        return list(state.unbind(0))  # type: ignore[union-attr]

    def _stack_state(self, finals: list[State]) -> State:
        if self.mode == "lstm":
            return torch.stack([h for h, _ in finals]), torch.stack([c for _, c in finals])  # type: ignore[misc]
        return torch.stack(finals)  # type: ignore[arg-type]

    def extra_repr(self) -> str:
        return (f"{self.mode}, {self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"bias={self.bias}, batch_first={self.batch_first}")
