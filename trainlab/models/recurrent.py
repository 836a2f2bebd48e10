"""Recurrent sequence models ``rnn``, ``gru`` and ``lstm`` on torch's fused layers (cuDNN on CUDA); on the CPU the
plain ``rnn`` runs :mod:`trainlab.models.rnn_kernel` instead (``cpu_kernel=False``: ``nn.RNN`` there too).

Interface (what the data, the trainer and ``generate`` rely on):

* Built like every zoo model: ``create("lstm", num_classes=…, in_channels=…, input_size=None, **options)``.
  ``in_channels`` is the vocabulary size for token input, or the number of features for float input;
  ``num_classes`` the number of outputs (the vocabulary size for a language model).
* Input ``x``: token ids ``(N, T)`` (any integer dtype; **id 0 is padding**, right-padded) or float features
  ``(N, T, F)`` (``(N, T)`` when ``F == 1``).  Tokens enter one-hot (``embedding=None``) or through an embedding
  of ``embedding`` dimensions; float features enter as they are.
* ``output``: ``"steps"`` (many-to-many, synchronised) returns ``(N, T, num_classes)``, one prediction per step;
  ``"last"`` (many-to-one) the prediction after each sequence's last real token (with ``bidirectional``, the
  backward direction's state after reading back to the first); ``"mean"`` the prediction from the mean of the
  outputs over each sequence's real steps.  For ``last``/``mean``, token batches containing padding are packed
  (``pack_padded_sequence``), so padding never changes a result.
* ``model(x)`` always returns the prediction tensor.  ``model.run(x, state)`` → ``(prediction, new_state)`` is the
  explicit form (generation, tests).  A state is a tensor ``(layers × directions, N, hidden)``, a pair of them
  for an LSTM.
* Carrying the hidden state across batches (truncated backpropagation through time): with ``model.carry = True``,
  each ``model(x)`` starts from the state the previous call left (a zero state at first, or when the batch size
  changes) and keeps its own final state, detached.  The trainer sets ``carry`` for sequentially partitioned
  data and resets the state (:meth:`reset_state`) at every epoch start and around every evaluation; the state is
  saved in checkpoints through :meth:`carried_state` / :meth:`load_carried_state`.
* ``clip_grad_norm`` (default 1.0) is the gradient clipping a recurrent model trains with unless
  ``train.clip_grad_norm`` says otherwise (``model.clip_grad_norm=0`` switches it off), exposed as
  :attr:`default_clip_grad_norm` (None when off).
* Registered with ``sequence=True`` in the registry entry's meta, so image-only tests and tools can skip them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from trainlab.models import rnn_kernel
from trainlab.registry import MODELS

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]
OUTPUTS = ("steps", "last", "mean")
LAYERS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
DESCRIPTIONS = {
    "rnn": "plain (Elman) RNN on tokens or features: stacked, bidirectional, one-hot or embedding input",
    "gru": "GRU (gated recurrent unit) on tokens or features: stacked, bidirectional, one-hot or embedding input",
    "lstm": "LSTM (memory cell) on tokens or features: stacked, bidirectional, one-hot or embedding input",
}


class RecurrentNet(nn.Module):
    """Input encoding → ``nn.RNN``/``GRU``/``LSTM`` stack → dropout → linear output, per step or per sequence.

    ``dropout`` acts on the non-recurrent connections only (Zaremba et al.): after the embedding, between stacked
    layers and before the output layer; never on one-hot or float inputs, and never across time.
    """

    def __init__(self, kind: str, *, in_channels: int, num_classes: int, hidden: int, layers: int,
                 bidirectional: bool, dropout: float, embedding: int | None, tie_weights: bool, output: str,
                 nonlinearity: str, clip_grad_norm: float, cpu_kernel: bool = True) -> None:
        super().__init__()
        self.kind, self.output, self.in_channels = kind, output, in_channels
        self.directions = 2 if bidirectional else 1
        self.embed = nn.Embedding(in_channels, embedding, padding_idx=0) if embedding else None
        extra = {"nonlinearity": nonlinearity} if kind == "rnn" else {}
        self.rnn = LAYERS[kind](embedding or in_channels, hidden, num_layers=layers, batch_first=True,
                                bidirectional=bidirectional, dropout=dropout if layers > 1 else 0.0, **extra)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden * self.directions, num_classes)
        if tie_weights:
            self.head.weight = self.embed.weight  # type: ignore[union-attr]
        self.default_clip_grad_norm = clip_grad_norm or None  # 0: no clipping
        self.cpu_kernel = cpu_kernel  # train a plain rnn on the CPU with trainlab's kernel (rnn_kernel)
        self.carry = False
        self.hidden_state: State | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The prediction for ``x``; with :attr:`carry`, continuing from (and keeping) the carried state."""
        state = self.hidden_state if self.carry and _batch_of(self.hidden_state) == x.shape[0] else None
        prediction, new_state = self.run(x, state)
        if self.carry:
            self.hidden_state = _detach(new_state)
        return prediction

    def run(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """``(prediction, final state)`` for ``x`` starting from ``state`` (zeros when None)."""
        tokens = not torch.is_floating_point(x)
        lengths = self._lengths(x) if tokens and self.output != "steps" else None
        if self.cpu_kernel and rnn_kernel.applies(self.rnn, x, padded=lengths is not None):
            return self._run_kernel(x, state, tokens)
        inputs = self._encode(x) if tokens else self._features(x)
        if lengths is not None:
            packed = pack_padded_sequence(inputs, lengths.cpu(), batch_first=True, enforce_sorted=False)
            packed_out, new_state = self.rnn(packed, state)
            outputs, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=x.shape[1])
        else:
            outputs, new_state = self.rnn(inputs, state)
        return self.head(self.drop(self._pool(outputs, new_state, lengths))), new_state

    def _run_kernel(self, x: torch.Tensor, state: State | None, tokens: bool) -> tuple[torch.Tensor, State]:
        """:meth:`run` through :mod:`~trainlab.models.rnn_kernel`: time-major throughout, one-hot tokens as ids."""
        inputs = self._encode(x, ids=True) if tokens else self._features(x).transpose(0, 1)
        outputs, new_state = rnn_kernel.run(self.rnn, inputs, state)  # type: ignore[arg-type]
        if self.output == "steps":  # the head on time-major outputs, then the (smaller) logits to batch-first
            return self.head(self.drop(outputs)).transpose(0, 1), new_state
        return self.head(self.drop(self._pool(outputs.transpose(0, 1), new_state, None))), new_state

    def _encode(self, x: torch.Tensor, ids: bool = False) -> torch.Tensor:
        """Token ids ``(batch, steps)`` as the layer's input; ``ids``: the kernel's form, time-major, one-hot tokens
        left as ids (it looks their columns up instead of multiplying by one-hot vectors)."""
        if x.dim() != 2:
            raise ValueError(f"{self.kind}: token input must be (batch, steps) ids, got shape {tuple(x.shape)}")
        x = x.t() if ids else x
        if self.embed is not None:
            return self.drop(self.embed(x))
        return x.long() if ids else nn.functional.one_hot(x.long(), self.in_channels).to(self.head.weight.dtype)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        if self.embed is not None:
            raise ValueError(f"{self.kind}: embedding={self.embed.embedding_dim} needs token ids (integers), "
                             "got float input; use embedding=null for float features")
        x = x.unsqueeze(-1) if x.dim() == 2 and self.in_channels == 1 else x
        if x.dim() != 3 or x.shape[-1] != self.in_channels:
            raise ValueError(f"{self.kind}: float input must be (batch, steps, {self.in_channels}) features, "
                             f"got shape {tuple(x.shape)}")
        return x

    @staticmethod
    def _lengths(x: torch.Tensor) -> torch.Tensor | None:
        """Real lengths of right-padded token sequences (id 0 is padding), or None when nothing is padded."""
        lengths = (x != 0).sum(dim=1).clamp_min(1)
        return None if bool((lengths == x.shape[1]).all()) else lengths

    def _pool(self, outputs: torch.Tensor, state: State, lengths: torch.Tensor | None) -> torch.Tensor:
        if self.output == "steps":
            return outputs
        if self.output == "last":
            h = state[0] if isinstance(state, tuple) else state
            return torch.cat(list(h[-self.directions:]), dim=1)  # last layer, every direction
        if lengths is None:
            return outputs.mean(dim=1)
        mask = torch.arange(outputs.shape[1], device=outputs.device)[None, :] < lengths.to(outputs.device)[:, None]
        return (outputs * mask[..., None]).sum(dim=1) / lengths.to(outputs.device)[:, None]

    def wrap_loss(self, loss_fn: nn.Module) -> nn.Module:
        """Per-step outputs ``(N, T, C)`` against class targets ``(N, T)``: the loss of ``N·T`` predictions."""
        return PerStepLoss(loss_fn)

    def reset_state(self) -> None:
        """Forget the carried state: the next batch starts from zeros."""
        self.hidden_state = None

    def carried_state(self) -> list[torch.Tensor] | None:
        """The carried state as plain CPU tensors (a checkpoint holds only tensors and plain containers)."""
        if self.hidden_state is None:
            return None
        parts = self.hidden_state if isinstance(self.hidden_state, tuple) else (self.hidden_state,)
        return [t.detach().cpu() for t in parts]

    def load_carried_state(self, parts: list[torch.Tensor] | None) -> None:
        """Put back a :meth:`carried_state` on this model's device."""
        if not parts:
            self.hidden_state = None
            return
        device = self.head.weight.device
        moved = [t.to(device) for t in parts]
        self.hidden_state = (moved[0], moved[1]) if len(moved) == 2 else moved[0]

    def example_input(self, dims: tuple[int, ...]) -> torch.Tensor:
        """One example for ``trainlab summary``: ``dims[1]`` tokens (or 35 when only the vocabulary is given)."""
        steps = dims[1] if len(dims) > 1 else 35
        return torch.ones(1, steps, dtype=torch.long, device=self.head.weight.device)


class PerStepLoss(nn.Module):
    """``loss_fn`` on every step: ``(N, T, C)`` logits and ``(N, T)`` labels become ``N·T`` examples (the mean over
    all steps, as d2l's perplexity expects); any other shape pair is passed through unchanged."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if output.dim() >= 3 and target.dim() == output.dim() - 1:
            output, target = _steps_as_examples(output, target, getattr(self.inner, "reduction", None))
        return self.inner(output, target)


def _steps_as_examples(output: torch.Tensor, target: torch.Tensor,
                       reduction: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, T, C)`` logits and ``(N, T)`` labels as ``N·T`` examples.  Logits computed time-major and handed out
    transposed (the CPU kernel's) are read in their memory order when the loss only sums or averages over
    examples: the labels are reordered instead, and the logits are neither copied forward nor their gradient
    backward."""
    if (reduction in ("mean", "sum") and output.dim() == 3 and not output.is_contiguous()
            and output.transpose(0, 1).is_contiguous()):
        return output.transpose(0, 1).reshape(-1, output.shape[-1]), target.t().reshape(-1)
    return output.reshape(-1, output.shape[-1]), target.reshape(-1)


def _batch_of(state: State | None) -> int | None:
    if state is None:
        return None
    return (state[0] if isinstance(state, tuple) else state).shape[1]


def _detach(state: State) -> State:
    """Truncated backpropagation: the next batch starts from these values but never backpropagates into them."""
    if isinstance(state, tuple):
        return state[0].detach(), state[1].detach()
    return state.detach()


def check_options(name: str, *, in_channels: int, num_classes: int, hidden: int, layers: int, dropout: float,
                  embedding: int | None, tie_weights: bool, output: str, bidirectional: bool,
                  clip_grad_norm: float) -> None:
    """Refuse impossible option combinations before any layer is built, naming the option and the fix."""
    if hidden < 1 or layers < 1:
        raise ValueError(f"{name}: hidden and layers must be >= 1, got hidden={hidden}, layers={layers}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"{name}: dropout must be in [0, 1), got {dropout}")
    if embedding is not None and embedding < 1:
        raise ValueError(f"{name}: embedding must be >= 1 dimensions (or null for one-hot input), got {embedding}")
    if output not in OUTPUTS:
        raise ValueError(f"{name}: unknown output '{output}'; choices: {', '.join(OUTPUTS)}")
    if clip_grad_norm < 0:
        raise ValueError(f"{name}: clip_grad_norm must be > 0, or 0 for no clipping; got {clip_grad_norm}")
    if in_channels < 1 or num_classes < 1:
        raise ValueError(f"{name}: in_channels (vocabulary or features) and num_classes must be >= 1")
    if tie_weights:
        _check_tying(name, in_channels, num_classes, hidden * (2 if bidirectional else 1), embedding)


def _check_tying(name: str, vocabulary: int, classes: int, hidden_out: int, embedding: int | None) -> None:
    """Tied weights share one matrix between the input embedding and the output layer, so the shapes must agree."""
    if embedding is None:
        raise ValueError(f"{name}: tie_weights shares the embedding with the output layer; set embedding="
                         f"{hidden_out} (the hidden output size) or tie_weights=false")
    if embedding != hidden_out:
        raise ValueError(f"{name}: tie_weights needs embedding == hidden output size, got embedding={embedding} and "
                         f"{hidden_out} (hidden × directions); set embedding={hidden_out} or tie_weights=false")
    if vocabulary != classes:
        raise ValueError(f"{name}: tie_weights needs as many outputs as input tokens (a language model), got "
                         f"vocabulary {vocabulary} and {classes} outputs; set tie_weights=false")


def _builder(kind: str) -> Callable[..., nn.Module]:
    def build(*, num_classes: int, in_channels: int, input_size: tuple[int, int] | None, hidden: int = 256,
              layers: int = 1, bidirectional: bool = False, dropout: float = 0.0, embedding: int | None = None,
              tie_weights: bool = False, output: Literal["steps", "last", "mean"] = "steps",
              nonlinearity: Literal["tanh", "relu"] = "tanh", clip_grad_norm: float = 1.0,
              cpu_kernel: bool = True) -> nn.Module:
        """Recurrent model; see the module docstring for input, output modes and carried state."""
        if input_size is not None:
            raise ValueError(f"{kind} is a sequence model: it takes token ids or per-step features, not images of "
                             f"size {input_size}; use a text or sequence dataset")
        if nonlinearity != "tanh" and kind != "rnn":
            raise ValueError(f"{kind}: nonlinearity is an option of the plain rnn only (gates fix their own)")
        if not cpu_kernel and kind != "rnn":
            raise ValueError(f"{kind}: cpu_kernel is an option of the plain rnn only ({kind} always trains with "
                             "torch's kernels)")
        options = dict(in_channels=in_channels, num_classes=num_classes, hidden=hidden, layers=layers,
                       dropout=dropout, embedding=embedding, tie_weights=tie_weights, output=output,
                       bidirectional=bidirectional, clip_grad_norm=clip_grad_norm)
        check_options(kind, **options)  # type: ignore[arg-type]
        return RecurrentNet(kind, nonlinearity=nonlinearity, cpu_kernel=cpu_kernel,
                            **options)  # type: ignore[arg-type]

    build.__name__ = build.__qualname__ = kind
    return build


for _kind in LAYERS:
    MODELS.add(_kind, _builder(_kind), description=DESCRIPTIONS[_kind], sequence=True)
