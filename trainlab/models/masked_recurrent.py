"""Recurrent models that pack their input, computed without packing: the form ``torch.export`` captures.

Why: a passage classifier (``rnn``/``gru``/``lstm`` with ``output=last`` or ``mean``) and the encoder of an
encoder-decoder pack a padded batch (``pack_padded_sequence``) so padding never changes a prediction, and packing
sorts rows by length and branches on the lengths, which ``torch.export`` cannot capture.  :class:`MaskedRecurrent`
computes the classifier's function with tensor operations only:

* each row's length comes from its padding (id 0 is padding, right-padded), as the model finds it;
* the forward direction runs over the padded rows: the padding comes after a row's real tokens, so it cannot
  change their outputs, and the row's final state is its output at position ``length - 1``;
* the backward direction runs over each row with its real tokens reversed in place (padding stays at the end), so
  it too reads real tokens first; its outputs are put back in order by the same reversal (it undoes itself);
* a stacked layer reads the layer below's outputs, which are exact at every real position;
* ``last`` pools the final states of the top layer's directions, ``mean`` the outputs over the real positions.

An encoder-decoder (``seq2seq``) takes the source alone (:class:`MaskedSeq2Seq`): its encoder runs unpacked the
same way, each layer's final state read at the source's last real token, and the decoder decodes greedily for the
run's fixed number of target steps, as the model does in evaluation.

Each (layer, direction) is a one-layer, one-direction ``nn.RNN``/``GRU``/``LSTM`` sharing that part of the model's
weights, so the arithmetic is torch's own.  ``tests/models/test_masked_recurrent.py`` checks both against the
packed models.
"""

from __future__ import annotations

import torch
from torch import nn

from trainlab.models.recurrent import LAYERS, RecurrentNet
from trainlab.models.seq2seq import BOS, PAD, Seq2Seq

POOLINGS = ("last", "mean")


class MaskedRecurrent(nn.Module):
    """``model``'s prediction for right-padded token ids ``(N, T)`` in operations ``torch.export`` captures
    (inference only: dropout is off, no state is carried; a token model, not one on float features)."""

    def __init__(self, model: RecurrentNet) -> None:
        super().__init__()
        if model.output not in POOLINGS:
            raise ValueError(f"a masked {model.kind} pools a passage (output {' or '.join(POOLINGS)}); this model's "
                             f"output is {model.output!r}")
        self.embed, self.head = model.embed, model.head  # the model's own, as the parts share the rnn's weights
        self.vocabulary, self.pooling = model.in_channels, model.output
        rnn = model.rnn
        self.parts = nn.ModuleList(nn.ModuleList(_one_direction(rnn, layer, direction)
                                                 for direction in range(model.directions))
                                   for layer in range(rnn.num_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lengths = (x != 0).sum(dim=1).clamp_min(1)  # the model's rule: an empty row counts as one (padding) token
        steps = torch.arange(x.shape[1], device=x.device)
        real = steps[None, :] < lengths[:, None]
        reversal = torch.where(real, lengths[:, None] - 1 - steps[None, :], steps[None, :])
        layer_input = (self.embed(x) if self.embed is not None
                       else nn.functional.one_hot(x, self.vocabulary).to(self.head.weight.dtype))
        finals: list[torch.Tensor] = []
        for directions in self.parts:
            outputs, finals = [], []
            for direction, part in enumerate(directions):
                reading = _along_time(layer_input, reversal) if direction else layer_input
                out, _ = part(reading)
                finals.append(_at(out, lengths - 1))
                outputs.append(_along_time(out, reversal) if direction else out)
            layer_input = torch.cat(outputs, dim=2)
        if self.pooling == "last":
            pooled = torch.cat(finals, dim=1)
        else:
            pooled = (layer_input * real[..., None]).sum(dim=1) / lengths[:, None]
        return self.head(pooled)


class MaskedSeq2Seq(nn.Module):
    """``model``'s greedy translation of right-padded source ids ``(N, S)``: per-step logits ``(N, steps, V)``, as
    the model answers for the source followed by ``<bos>`` in evaluation, without packing."""

    def __init__(self, model: Seq2Seq, steps: int) -> None:
        super().__init__()
        self.model, self.steps = model.eval(), steps
        self.parts = nn.ModuleList(_one_direction(model.encoder, layer, 0) for layer in range(model.encoder.num_layers))

    def forward(self, source: torch.Tensor) -> torch.Tensor:
        lengths = (source != PAD).sum(dim=1).clamp_min(1)  # the model's rule (Seq2Seq.encode)
        inputs, finals = self.model.source_embed(source), []
        for part in self.parts:
            inputs, _ = part(inputs)
            finals.append(_at(inputs, lengths - 1))
        return self.model.greedy(torch.stack(finals), self.steps)


class SourceInput(nn.Module):
    """``model`` (an encoder-decoder) asked with the source alone: ``<bos>`` and padding for ``steps`` decoder steps
    are appended, as ``predict`` lays out its input.  The packed model, run as predict runs it: what an exported
    :class:`MaskedSeq2Seq` is checked against."""

    def __init__(self, model: Seq2Seq, steps: int) -> None:
        super().__init__()
        self.model, self.steps = model.eval(), steps

    def forward(self, source: torch.Tensor) -> torch.Tensor:
        decoder_input = torch.full((source.shape[0], self.steps), PAD, dtype=source.dtype, device=source.device)
        decoder_input[:, 0] = BOS
        return self.model(torch.cat([source, decoder_input], dim=1))


def _one_direction(rnn: nn.RNNBase, layer: int, direction: int) -> nn.RNNBase:
    """A one-layer, one-direction layer sharing the weights of ``rnn``'s ``layer`` in ``direction`` (1: the backward
    one): the same parameters, so nothing is copied and an export holds them once."""
    kind = next(name for name, cls in LAYERS.items() if type(rnn) is cls)
    width = rnn.input_size if layer == 0 else rnn.hidden_size * (2 if rnn.bidirectional else 1)
    extra = {"nonlinearity": rnn.nonlinearity} if kind == "rnn" else {}
    part = LAYERS[kind](width, rnn.hidden_size, num_layers=1, bias=rnn.bias, batch_first=True, **extra)
    suffix = f"_l{layer}" + ("_reverse" if direction else "")
    names = [f"weight_ih{suffix}", f"weight_hh{suffix}", *((f"bias_ih{suffix}", f"bias_hh{suffix}") if rnn.bias else ())]
    for name in names:  # nn.RNNBase's __setattr__ keeps its list of flat weights in step
        setattr(part, name.replace(suffix, "_l0"), getattr(rnn, name))
    return part.eval()


def _along_time(values: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """``values (N, T, F)`` with each row's time steps taken in ``order (N, T)``."""
    return values.gather(1, order[..., None].expand(-1, -1, values.shape[2]))


def _at(values: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``values (N, T, F)`` at one time step per row → ``(N, F)``."""
    return _along_time(values, positions[:, None]).squeeze(1)
