"""The unpacked models export uses equal the packed ones on rows of every length: the passage classifier
(``MaskedRecurrent``) for every recurrent kind, one or two directions and layers, both poolings, one-hot or embedded
tokens; the encoder-decoder (``MaskedSeq2Seq``) with one or two layers."""

from __future__ import annotations

import pytest
import torch

from trainlab.models import create
from trainlab.data.seq2seq import BOS, EOS
from trainlab.models.masked_recurrent import MaskedRecurrent, MaskedSeq2Seq, SourceInput
from trainlab.models.recurrent import LAYERS

VOCAB, STEPS = 12, 11
LENGTHS = [11, 1, 5, 3, 11, 7, 2, 9, 0]  # full rows, a one-token row, an empty row (all padding)


def padded_batch() -> torch.Tensor:
    x = torch.randint(1, VOCAB, (len(LENGTHS), STEPS), generator=torch.Generator().manual_seed(0))
    x[torch.arange(STEPS)[None, :] >= torch.tensor(LENGTHS)[:, None]] = 0
    return x


@pytest.mark.parametrize("kind", sorted(LAYERS))
@pytest.mark.parametrize("bidirectional", [False, True], ids=["one-direction", "bidirectional"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("output", ["last", "mean"])
@pytest.mark.parametrize("embedding", [None, 5], ids=["one-hot", "embedding"])
def test_the_unpacked_classifier_equals_the_packed_model(kind: str, bidirectional: bool, layers: int, output: str,
                                                         embedding: int | None) -> None:
    torch.manual_seed(1)
    model = create(kind, num_classes=6, in_channels=VOCAB, input_size=None, hidden=7, layers=layers,
                   bidirectional=bidirectional, output=output, embedding=embedding, dropout=0.3).eval()
    x = padded_batch()
    with torch.no_grad():
        torch.testing.assert_close(MaskedRecurrent(model)(x), model(x), atol=1e-6, rtol=1e-5)


def test_a_relu_rnn_with_tied_weights_unpacks_too() -> None:
    model = create("rnn", num_classes=VOCAB, in_channels=VOCAB, input_size=None, hidden=5, embedding=5,
                   tie_weights=True, nonlinearity="relu", bidirectional=False, output="mean").eval()
    x = padded_batch()
    with torch.no_grad():
        torch.testing.assert_close(MaskedRecurrent(model)(x), model(x), atol=1e-6, rtol=1e-5)


def test_padding_changes_nothing_and_per_step_models_are_refused() -> None:
    model = create("gru", num_classes=6, in_channels=VOCAB, input_size=None, hidden=7, bidirectional=True,
                   output="last").eval()
    masked, x = MaskedRecurrent(model), padded_batch()
    wider = torch.cat([x, torch.zeros(len(LENGTHS), 4, dtype=x.dtype)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(masked(wider), masked(x), atol=1e-6, rtol=1e-5)
    steps = create("gru", num_classes=VOCAB, in_channels=VOCAB, input_size=None, hidden=7)
    with pytest.raises(ValueError, match="pools a passage \\(output last or mean\\); this model's output is 'steps'"):
        MaskedRecurrent(steps)


@pytest.mark.parametrize("layers", [1, 2])
def test_the_unpacked_encoder_decoder_equals_the_packed_model_asked_with_the_source(layers: int) -> None:
    torch.manual_seed(2)
    model = create("seq2seq", num_classes=VOCAB, in_channels=VOCAB, input_size=None, embedding=4, hidden=7,
                   layers=layers).eval()
    source = padded_batch()
    source[(source == BOS) | (source == EOS)] = 5  # a source holds tokens, never <bos> or <eos>
    with torch.no_grad():
        want = SourceInput(model, steps=6)(source)
        torch.testing.assert_close(MaskedSeq2Seq(model, steps=6)(source), want, atol=1e-6, rtol=1e-5)
    assert want.shape == (len(LENGTHS), 6, VOCAB)
