"""trainlab's CPU kernel for the plain ``rnn``: the recurrence and its backpropagation through time by hand.

Why: on a CPU, ``torch.nn.RNN`` builds an autograd graph of several nodes per time step, multiplies the one-hot
input by ``W_ih`` as a dense matrix, concatenates the steps' outputs, and backpropagates into ``W_hh`` with one small
product per step.  For the curriculum's models (a few hundred hidden units, 35-step windows) that bookkeeping is a
large share of a batch.  This kernel computes the same function with fewer and larger operations:

* one-hot input is a row lookup of ``W_ih`` (no one-hot tensor, no product with it), and its gradient a scatter-add;
* the recurrence writes every step straight into one preallocated output, in place;
* for token input, that output and the steps' gradients live in buffers reused from batch to batch while nothing
  else refers to them (:class:`_Workspace`): a fresh megabyte costs more than the arithmetic done in it;
* ``tanh(z)`` is computed as ``2·sigmoid(2z) − 1`` (equal up to rounding; torch's CPU ``sigmoid`` is several times
  faster than its ``tanh`` on small tensors), with the scaling folded into the input projection's weights;
* the backward pass walks back through time with one product per step and forms ``dW_hh`` in one large product
  over all steps at the end; autograd sees a single node per layer and direction.

It is used where it is exact: on the CPU, in float32/float64 without autocast, on unpadded input, and not under
``torch.compile``, tracing or export (which need the one ``nn.RNN`` operation) nor while forward hooks watch the
layer (``trainlab summary`` counts its work through them).  Everywhere else (CUDA's cuDNN kernels, packed
sequences, export, hooks) the model calls ``torch.nn.RNN`` itself.  The parameters stay those of the
model's ``nn.RNN``; ``tests/test_rnn_kernel.py`` checks outputs, final states and every gradient against it.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import FunctionCtx, once_differentiable
from torch.utils.weak import WeakIdKeyDictionary

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
    """One layer in one direction: the input projection's weights (autograd), then the recurrence (this kernel)."""
    suffix = f"_l{layer}" + ("_reverse" if direction else "")
    w_ih, w_hh = getattr(rnn, f"weight_ih{suffix}"), getattr(rnn, f"weight_hh{suffix}")
    bias = getattr(rnn, f"bias_ih{suffix}") + getattr(rnn, f"bias_hh{suffix}") if rnn.bias else None
    if rnn.nonlinearity == "tanh":  # the recurrence's input is 2·(x·W_ih^T + b − r): see _tanh_recurrence
        shift = -w_hh.detach().sum(dim=1) if bias is None else bias - w_hh.detach().sum(dim=1)
        w_ih, bias = 2 * w_ih, 2 * shift
    inputs = inputs.flip(0) if direction else inputs
    if torch.is_floating_point(inputs):
        outputs = _Recurrence.apply(F.linear(inputs, w_ih, bias).contiguous(), None, h0, w_hh, rnn.nonlinearity)
    else:  # one-hot tokens: x·W_ih^T + b is the row of (W_ih^T + b) for each token; rows gather fast when contiguous
        table = (w_ih.t() if bias is None else w_ih.t() + bias).contiguous()
        outputs = _Recurrence.apply(inputs, table, h0, w_hh, rnn.nonlinearity)
    return (outputs.flip(0) if direction else outputs), outputs[-1]


class _Recurrence(torch.autograd.Function):
    """``h_t = phi(z_t)``, ``z_t = p_t + h_{t-1} W_hh^T``, over all steps, with its backward pass written out.

    ``p`` comes as float projections ``(T, N, H)`` (then overwritten by the outputs) or as token ids ``(T, N)`` and
    the ``table`` whose rows they pick (then the outputs go to a reused buffer, see :class:`_Workspace`, and the
    table's gradient is a scatter-add).  For tanh, ``p`` is ``2·(p − r)`` (see :func:`_tanh_recurrence`), so its
    gradient is half the pre-activations' one.
    """

    @staticmethod
    def forward(ctx: FunctionCtx, inputs: torch.Tensor, table: torch.Tensor | None, h0: torch.Tensor,
                w_hh: torch.Tensor, nonlinearity: str) -> torch.Tensor:
        if table is None:
            ctx.mark_dirty(inputs)  # the outputs take the projection's memory: no second (T, N, H) buffer
            z = inputs
        else:
            z = _WORKSPACE.take(w_hh, "outputs", (*inputs.shape, table.shape[1]), table.dtype)
            torch.index_select(table, 0, inputs.reshape(-1), out=z.view(-1, table.shape[1]))
        if nonlinearity == "tanh":
            _tanh_recurrence(z, h0, w_hh)
        else:
            weight, previous = w_hh.t(), h0
            for step in z:
                previous = step.addmm_(previous, weight).relu_()
        outputs = z if table is None else z.detach()  # an alias: the workspace sees while the caller holds it
        ctx.save_for_backward(outputs, h0, w_hh, None if table is None else inputs)
        ctx.tanh = nonlinearity == "tanh"  # type: ignore[attr-defined]
        ctx.rows = None if table is None else table.shape[0]  # type: ignore[attr-defined]
        return outputs

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_outputs: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        outputs, h0, w_hh, ids = ctx.saved_tensors  # type: ignore[attr-defined]
        tanh, rows = ctx.tanh, ctx.rows  # type: ignore[attr-defined]
        needs_h0 = ctx.needs_input_grad[2]  # not for zeros or a carried (detached) state
        scale = _input_scale(tanh)
        grad_z = _step_gradients(outputs, grad_outputs, w_hh, tanh, reuse=ids is not None)
        hidden = outputs.shape[-1]
        grad_w = torch.mm(grad_z[1:].reshape(-1, hidden).t(), outputs[:-1].reshape(-1, hidden))
        grad_w.addmm_(grad_z[0].t(), h0).mul_(scale)
        grad_h0 = torch.mm(grad_z[0], w_hh).mul_(scale) if needs_h0 else None
        if ids is None:
            return grad_z, None, grad_h0, grad_w, None
        grad_table = outputs.new_zeros(rows, hidden).index_add_(0, ids.reshape(-1), grad_z.view(-1, hidden))
        return None, grad_table, grad_h0, grad_w, None


def _input_scale(tanh: bool) -> float:
    """2 for tanh, whose input arrives doubled (see :func:`_tanh_recurrence`), 1 for relu."""
    return 2.0 if tanh else 1.0


def _step_gradients(outputs: torch.Tensor, grad_outputs: torch.Tensor, w_hh: torch.Tensor, tanh: bool,
                    reuse: bool) -> torch.Tensor:
    """``g_t = dL/dz_t / scale`` for every step (:func:`_input_scale`): ``phi'(z_t) / scale`` in one pass, then
    times ``dL/dh_t`` from the last step back, with one product per step.  ``reuse``: into the workspace (the
    tokens' path, where ``g`` stays inside the backward pass)."""
    grad_z = _WORKSPACE.take(w_hh, "gradients", outputs.shape, outputs.dtype) if reuse else torch.empty_like(outputs)
    if tanh:
        torch.addcmul(outputs.new_tensor(0.5), outputs, outputs, value=-0.5, out=grad_z)
    else:
        torch.gt(outputs, 0, out=grad_z)
    scale = _input_scale(tanh)
    grad_h = grad_outputs[-1]
    for step in range(len(outputs) - 1, 0, -1):
        grad_h = torch.addmm(grad_outputs[step - 1], grad_z[step].mul_(grad_h), w_hh, alpha=scale)
    grad_z[0].mul_(grad_h)
    return grad_z


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


class _Workspace:
    """The kernel's (T, N, H) buffers, kept per layer and reused while nobody else holds them.

    Why: a fresh megabyte-sized tensor costs more than the arithmetic done in it — it comes from memory the
    allocator just returned to the system (page faults) or that left the caches; the same buffer, step after step,
    stays warm.  A buffer is handed out again only when its storage has no other user (no output, view or saved
    tensor of an earlier call still refers to it), so a caller that keeps outputs gets a new buffer instead.
    Without torch's storage use count (a private function), every call allocates, as torch would.
    """

    def __init__(self) -> None:
        self.buffers = WeakIdKeyDictionary()  # weight → its buffers, gone with the weight

    def take(self, owner: torch.Tensor, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        kept = self.buffers.setdefault(owner, {})
        buffer = kept.get(name)
        alone = _lone_count()
        if (buffer is None or buffer.shape != shape or buffer.dtype != dtype or alone is None
                or _storage_users(buffer) != alone):
            buffer = kept[name] = torch.empty(shape, dtype=dtype, device=owner.device)
        return buffer


def _storage_users(tensor: torch.Tensor) -> int | None:
    use_count = getattr(torch._C, "_storage_Use_Count", None)
    return None if use_count is None else use_count(tensor.untyped_storage()._cdata)


@functools.cache
def _lone_count() -> int | None:
    """What :func:`_storage_users` reads for a tensor nothing else refers to (the probe counts itself), or None
    where torch lacks the count."""
    return _storage_users(torch.empty(1))


_WORKSPACE = _Workspace()
