"""``seq2seq``: a GRU encoder-decoder (many-to-many with different lengths, e.g. translation), d2l's design.

Interface (the input layout of :mod:`trainlab.data.seq2seq`; ids 0 ``<pad>``, 2 ``<bos>``, 3 ``<eos>``):

* ``x`` is ``(N, S + T)`` token ids: the source right-padded with 0, then the decoder input starting with
  ``<bos>`` (the first ``<bos>`` in the row marks where the source ends).  Output: logits ``(N, T, V)``, one
  prediction per target step, ``V = num_classes``.
* The encoder (embedding → GRU, packed so padding never changes the state) reads the source; its final state starts
  the decoder, and its top layer's final state — the *context* — is concatenated to every decoder input step.
* Training mode uses **teacher forcing**: the decoder reads the true previous token (the decoder input) at every
  step, one fused GRU call over all ``T`` steps.  Evaluation mode decodes **greedily**: from ``<bos>``, each step
  feeds back the most likely token of the step before, so validation and test scores are what a user gets, and
  the decoder input in ``x`` is never looked at.
* Per-step outputs against ``(N, T)`` labels padded with -100: :meth:`wrap_loss` makes the loss per step (padding
  ignored), and the metrics add exact match (``*_exact``).  Gradient clipping defaults to norm 1
  (``default_clip_grad_norm``; ``clip_grad_norm=0`` switches it off), as for the other recurrent models.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from trainlab.models.recurrent import PerStepLoss
from trainlab.registry import MODELS

PAD, BOS = 0, 2


class Seq2Seq(nn.Module):
    """Encoder GRU → context → decoder GRU → linear output over the target vocabulary."""

    def __init__(self, vocabulary: int, classes: int, embedding: int, hidden: int, layers: int, dropout: float,
                 clip_grad_norm: float) -> None:
        super().__init__()
        between = dropout if layers > 1 else 0.0
        self.source_embed = nn.Embedding(vocabulary, embedding, padding_idx=PAD)
        self.encoder = nn.GRU(embedding, hidden, num_layers=layers, batch_first=True, dropout=between)
        self.target_embed = nn.Embedding(vocabulary, embedding, padding_idx=PAD)
        self.decoder = nn.GRU(embedding + hidden, hidden, num_layers=layers, batch_first=True, dropout=between)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, classes)
        self.default_clip_grad_norm = clip_grad_norm or None  # 0: no clipping

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        source, decoder_input = split_input(x)
        state = self.encode(source)
        if self.training:
            return self.decode(decoder_input, state)[0]
        return self.greedy(state, decoder_input.shape[1])

    def encode(self, source: torch.Tensor) -> torch.Tensor:
        """The encoder's final state ``(layers, N, hidden)`` after each source's last real token."""
        lengths = (source != PAD).sum(dim=1).clamp_min(1).cpu()
        packed = pack_padded_sequence(self.drop(self.source_embed(source)), lengths, batch_first=True,
                                      enforce_sorted=False)
        return self.encoder(packed)[1]

    def decode(self, tokens: torch.Tensor, state: torch.Tensor,
               context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(N, steps, V)`` and the new state for the given decoder input tokens ``(N, steps)``."""
        context = state[-1] if context is None else context  # the encoder's top layer, repeated at every step
        inputs = torch.cat([self.drop(self.target_embed(tokens)),
                            context[:, None, :].expand(-1, tokens.shape[1], -1)], dim=-1)
        outputs, state = self.decoder(inputs, state)
        return self.head(self.drop(outputs)), state

    def greedy(self, state: torch.Tensor, steps: int) -> torch.Tensor:
        """``steps`` decoding steps from ``<bos>``, each reading the previous step's most likely token."""
        context = state[-1]
        token = torch.full((state.shape[1], 1), BOS, dtype=torch.long, device=state.device)
        logits = []
        for _ in range(steps):
            step_logits, state = self.decode(token, state, context)
            logits.append(step_logits)
            token = step_logits.argmax(dim=-1)
        return torch.cat(logits, dim=1)

    def wrap_loss(self, loss_fn: nn.Module) -> nn.Module:
        """The loss of every target step (``(N, T, V)`` against ``(N, T)``; -100 padding ignored)."""
        return PerStepLoss(loss_fn)

    def example_input(self, dims: tuple[int, ...]) -> torch.Tensor:
        """One example for ``trainlab summary``: ``dims[1]`` ids with ``<bos>`` half-way."""
        width = dims[1] if len(dims) > 1 else 20
        x = torch.ones(1, width, dtype=torch.long, device=self.head.weight.device)
        x[0, width // 2] = BOS
        return x


def split_input(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(source, decoder input)``: the row's columns before and from the first ``<bos>``."""
    if x.dim() != 2 or torch.is_floating_point(x):
        raise ValueError(f"seq2seq takes (batch, steps) token ids, got {x.dtype} of shape {tuple(x.shape)}; "
                         "use an encoder-decoder dataset (numbers-to-digits, reverse-string)")
    marks = (x[0] == BOS).nonzero()
    if len(marks) == 0 or int(marks[0]) == 0 or int(marks[0]) == x.shape[1] - 1:
        raise ValueError("seq2seq input needs a source, then <bos> (id 2), then the decoder steps in every row; "
                         "build it with trainlab.data.seq2seq.translate_ids")
    start = int(marks[0])
    return x[:, :start], x[:, start:]


@MODELS.register("seq2seq", description="GRU encoder-decoder: teacher forcing in training, greedy decoding at "
                 "evaluation (numbers-to-digits, reverse-string)", sequence=True)
def seq2seq(*, num_classes: int, in_channels: int, input_size: tuple[int, int] | None, embedding: int = 32,
            hidden: int = 128, layers: int = 2, dropout: float = 0.1, clip_grad_norm: float = 1.0) -> nn.Module:
    """Encoder-decoder over token ids; ``in_channels`` is the vocabulary size, ``num_classes`` the output tokens."""
    if input_size is not None:
        raise ValueError(f"seq2seq is a sequence model: it takes token ids, not images of size {input_size}; use an "
                         "encoder-decoder dataset (numbers-to-digits, reverse-string)")
    if embedding < 1 or hidden < 1 or layers < 1:
        raise ValueError(f"seq2seq: embedding, hidden and layers must be >= 1, got {embedding}, {hidden}, {layers}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"seq2seq: dropout must be in [0, 1), got {dropout}")
    if clip_grad_norm < 0:
        raise ValueError(f"seq2seq: clip_grad_norm must be > 0, or 0 for no clipping; got {clip_grad_norm}")
    if in_channels <= BOS or num_classes <= BOS:
        raise ValueError(f"seq2seq: the vocabulary must hold <pad>, <unk>, <bos> and tokens, got in_channels="
                         f"{in_channels} and num_classes={num_classes}")
    return Seq2Seq(in_channels, num_classes, embedding, hidden, layers, dropout, clip_grad_norm)
