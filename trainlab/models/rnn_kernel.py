"""trainlab's CPU kernel for the plain ``rnn``: the recurrence and its backpropagation through time by hand.

Why: on a CPU, ``torch.nn.RNN`` builds an autograd graph of several nodes per time step, multiplies the one-hot
input by ``W_ih`` as a dense matrix, concatenates the steps' outputs, and backpropagates into ``W_hh`` with one small
product per step.  For the curriculum's models (a few hundred hidden units, 35-step windows) that bookkeeping is a
large share of a batch.  This kernel computes the same function with fewer and larger operations:

* one-hot input is a row lookup of ``W_ih`` (no one-hot tensor, no product with it), and its gradient a scatter-add;
* the recurrence writes every step straight into one preallocated output, in place;
* ``tanh(z)`` is computed as ``2·sigmoid(2z) − 1`` (equal up to rounding; torch's CPU ``sigmoid`` is several times
  faster than its ``tanh`` on small tensors);
* the backward pass walks back through time with one product per step and forms ``dW_hh`` in one large product
  over all steps at the end; autograd sees a single node per layer and direction.

It is used where it is exact: on the CPU, in float32/float64 without autocast, on unpadded input, and not under
``torch.compile``, tracing or export (which need the one ``nn.RNN`` operation) nor while forward hooks watch the
layer (``trainlab summary`` counts its work through them).  Everywhere else (CUDA's cuDNN kernels, packed
sequences, export, hooks) the model calls ``torch.nn.RNN`` itself.  The parameters stay those of the
model's ``nn.RNN``; ``tests/test_rnn_kernel.py`` checks outputs, final states and every gradient against it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import FunctionCtx, once_differentiable

DTYPES = (torch.float32, torch.float64)


def applies(rnn: nn.Module, inputs: torch.Tensor, padded: bool) -> bool:
    """Whether this kernel runs ``rnn`` on ``inputs`` (see the module docstring for why each condition)."""
    return (isinstance(rnn, nn.RNN) and inputs.device.type == "cpu" and not padded and not _watched(rnn)
            and rnn.weight_hh_l0.dtype in DTYPES and not torch.is_autocast_enabled("cpu")
            and not torch.compiler.is_compiling() and not torch.jit.is_tracing() and not torch.jit.is_scripting())


def _watched(layer: nn.Module) -> bool:
    """Whether forward hooks expect the layer's own forward to run: ``trainlab summary`` and ``inspect`` count its
    work and shapes that way, and so may a user's hook."""
    hooks = nn.modules.module
    return bool(layer._forward_hooks or layer._forward_pre_hooks or hooks._global_forward_hooks
                or hooks._global_forward_pre_hooks)


def run(rnn: nn.RNN, inputs: torch.Tensor, state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``rnn`` over time-major ``inputs`` from ``state`` (zeros when None) → ``(outputs (T, N, D·H), state)``.

    ``inputs``: token ids ``(T, N)`` read as one-hot vectors, or features ``(T, N, F)``.  ``state``:
    ``(layers × directions, N, H)`` as ``nn.RNN`` takes it.
    """
    directions = 2 if rnn.bidirectional else 1
    batch = inputs.shape[1]
    if state is None:
        state = inputs.new_zeros((rnn.num_layers * directions, batch, rnn.hidden_size), dtype=rnn.weight_hh_l0.dtype)
    finals, layer_input = [], inputs
    for layer in range(rnn.num_layers):
        outputs = []
        for direction in range(directions):
            out, last = _direction(rnn, layer, direction, layer_input, state[layer * directions + direction])
            outputs.append(out)
            finals.append(last)
        layer_input = outputs[0] if directions == 1 else torch.cat(outputs, dim=2)
        if layer + 1 < rnn.num_layers and rnn.dropout > 0:
            layer_input = F.dropout(layer_input, rnn.dropout, training=rnn.training)
    return layer_input, torch.stack(finals)


def _direction(rnn: nn.RNN, layer: int, direction: int, inputs: torch.Tensor,
               h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One layer in one direction: the input projection (autograd), then the recurrence (this kernel)."""
    suffix = f"_l{layer}" + ("_reverse" if direction else "")
    w_ih, w_hh = getattr(rnn, f"weight_ih{suffix}"), getattr(rnn, f"weight_hh{suffix}")
    bias = getattr(rnn, f"bias_ih{suffix}") + getattr(rnn, f"bias_hh{suffix}") if rnn.bias else None
    tanh = rnn.nonlinearity == "tanh"
    if tanh:  # the recurrence's input is 2·(x·W_ih^T + b − r): see _tanh_recurrence; a (T, N, H) pass less
        shift = -w_hh.detach().sum(dim=1) if bias is None else bias - w_hh.detach().sum(dim=1)
        w_ih, bias = 2 * w_ih, 2 * shift
    if torch.is_floating_point(inputs):
        projected = F.linear(inputs, w_ih, bias)
    else:  # one-hot tokens: x·W_ih^T + b is the row of (W_ih^T + b) for each token; rows gather fast when contiguous
        projected = F.embedding(inputs, (w_ih.t() if bias is None else w_ih.t() + bias).contiguous())
    projected = projected.flip(0) if direction else projected.contiguous()
    outputs = _Recurrence.apply(projected, h0, w_hh, rnn.nonlinearity)
    return (outputs.flip(0) if direction else outputs), outputs[-1]


class _Recurrence(torch.autograd.Function):
    """``h_t = phi(z_t)``, ``z_t = p_t + h_{t-1} W_hh^T``, over all steps, written over ``p`` (a temporary of
    :func:`_direction`), with its backward pass written out.  For tanh, ``p`` arrives as ``2·(p − r)`` (see
    :func:`_tanh_recurrence`), so its gradient is half the pre-activations' one."""

    @staticmethod
    def forward(ctx: FunctionCtx, projected: torch.Tensor, h0: torch.Tensor, w_hh: torch.Tensor,
                nonlinearity: str) -> torch.Tensor:
        ctx.mark_dirty(projected)  # the outputs take the projection's memory: no second (T, N, H) buffer
        if nonlinearity == "tanh":
            _tanh_recurrence(projected, h0, w_hh)
        else:
            weight, previous = w_hh.t(), h0
            for step in projected:
                previous = step.addmm_(previous, weight).relu_()
        ctx.save_for_backward(projected, h0, w_hh)
        ctx.tanh = nonlinearity == "tanh"  # type: ignore[attr-defined]
        return projected

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None]:
        outputs, h0, w_hh = ctx.saved_tensors  # type: ignore[attr-defined]
        # g_t = dL/dz_t / scale, in place: phi'(z_t) / scale for every step first (one pass), then times dL/dh_t
        # from the back; tanh's input was scaled by 2, so its g is what that input's gradient must be
        if ctx.tanh:  # type: ignore[attr-defined]
            scale = 2.0
            grad_z = torch.addcmul(outputs.new_tensor(0.5), outputs, outputs, value=-0.5)
        else:
            scale, grad_z = 1.0, (outputs > 0).to(outputs.dtype)
        grad_h = grad_outputs[-1]
        for step in range(len(outputs) - 1, 0, -1):
            grad_h = torch.addmm(grad_outputs[step - 1], grad_z[step].mul_(grad_h), w_hh, alpha=scale)
        grad_z[0].mul_(grad_h)
        hidden = outputs.shape[-1]
        grad_w = torch.mm(grad_z[1:].reshape(-1, hidden).t(), outputs[:-1].reshape(-1, hidden))
        grad_w.addmm_(grad_z[0].t(), h0)
        grad_h0 = grad_z[0] @ w_hh
        if ctx.tanh:  # type: ignore[attr-defined]
            grad_w.mul_(scale)
            grad_h0.mul_(scale)
        return grad_z, grad_h0, grad_w, None


def _tanh_recurrence(z: torch.Tensor, h0: torch.Tensor, w_hh: torch.Tensor) -> None:
    """``z_t ← tanh(p_t + h_{t-1} W^T)`` in place, given ``z = 2·(p − r)``, as ``2·sigmoid(2·(…)) − 1`` without a
    per-step rescaling.

    With ``s = sigmoid(2z)`` and ``h = 2s − 1``: ``2·(p_t + h_{t-1} W^T) = 2(p_t − r) + 4·s_{t-1} W^T``, where
    ``r = W·1`` (the row sums, since ``1·W^T`` adds each row).  :func:`_direction` folds ``2(p − r)`` into the input
    projection's weights, so the loop is one product and one sigmoid per step, and ``h = 2s − 1`` is applied once
    to all steps at the end.
    """
    weight, previous = w_hh.t(), h0.add(1).mul_(0.5)  # s_0 from h_0
    for step in z:
        previous = step.addmm_(previous, weight, alpha=4).sigmoid_()
    torch.add(z.new_tensor(-1.0), z, alpha=2, out=z)  # h = 2s − 1 in one pass
