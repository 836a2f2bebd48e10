"""Summary table: receptive-field arithmetic against hand-computed cases, output-size formula, MACs, totals, CLI."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn

import trainlab
from trainlab.inspect.summary import parse_input_size, summary
from trainlab.models import scratch, scratch_rnn
from trainlab.models.macs import layer_macs


def convs(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["type"].isin(["Conv2d", "MaxPool2d", "AvgPool2d"])]


def test_three_stacked_3x3_convs_see_7x7():
    model = nn.Sequential(*(nn.Conv2d(4 if i else 1, 4, 3, padding=1) for i in range(3)))
    frame = summary(model, (1, 16, 16))
    assert list(frame["rf"]) == [3, 5, 7]
    assert list(frame["jump"]) == [1, 1, 1]


def test_lenet_receptive_fields_by_hand():
    # conv5 → 5; avgpool2 s2 → 5 + 1·1 = 6, jump 2; conv5 → 6 + 4·2 = 14; avgpool2 → 14 + 1·2 = 16, jump 4
    frame = convs(summary("lenet", (1, 28, 28)))
    assert list(frame["rf"]) == [5, 6, 14, 16]
    assert list(frame["jump"]) == [1, 2, 2, 4]
    assert list(frame["output_shape"]) == [(6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5)]


def test_vgg_blocks_by_hand():
    # block 1: conv3 → 3, pool2 → 4 (jump 2); block 2: conv3 → 8 (jump 2), pool2 → 10 (jump 4);
    # block 3: two conv3 → 18, 26 (jump 4), pool → 30 (jump 8)
    frame = convs(summary("vgg11", (3, 32, 32), width_div=16))
    assert list(frame["rf"])[:7] == [3, 4, 8, 10, 18, 26, 30]
    assert list(frame["jump"])[:7] == [1, 2, 2, 4, 4, 4, 8]


def test_dilation_and_residual_paths():
    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Conv2d(2, 2, 3, padding=2, dilation=2)

        def forward(self, x):
            return x + self.body(x)

    frame = summary(nn.Sequential(nn.Conv2d(1, 2, 3, stride=2, padding=1), Residual(), nn.Conv2d(2, 2, 1)),
                    (1, 16, 16))
    # stride-2 conv: 3, jump 2; dilated 3x3 adds (3-1)·2·2 = 8 → 11; the sum takes the wider branch; 1x1 keeps it
    assert list(frame["rf"]) == [3, 11, 11]
    assert list(frame["jump"]) == [2, 2, 2]


@pytest.mark.parametrize(("size", "kernel", "padding", "stride"),
                         [(28, 5, 2, 1), (32, 11, 2, 4), (224, 7, 3, 2), (13, 3, 0, 2), (10, 4, 1, 3)])
def test_output_size_formula(size, kernel, padding, stride):
    frame = summary(nn.Conv2d(1, 1, kernel, stride, padding), (1, size, size))
    expected = (size - kernel + 2 * padding) // stride + 1
    assert frame["output_shape"][0] == (1, expected, expected)


def test_macs_and_params_of_conv_and_linear():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 10 * 10, 5))
    frame = summary(model, (3, 10, 10))
    assert list(frame["params"]) == [8 * 3 * 9 + 8, 0, 800 * 5 + 5]
    assert list(frame["macs"]) == [8 * 10 * 10 * 3 * 9, 0, 800 * 5]
    assert pd.isna(frame["rf"].iloc[2])  # a dense layer sees the whole input
    totals = frame.attrs["totals"]
    assert totals["params"] == totals["trainable_params"] == 8 * 28 + 4005
    assert totals["macs"] == 21600 + 4000
    assert totals["size_mb"] == pytest.approx((8 * 28 + 4005) * 4 / 2**20)


def test_from_scratch_layers_count_the_macs_of_torchs():
    """trainlab.nn's Conv2d and the hand-written recurrent cells and stacks do torch's products: same MACs."""
    def pair(conv: type) -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(conv(3, 8, 3, padding=1), nn.ReLU(), conv(8, 4, 5, stride=2))

    frames = [summary(pair(conv), (3, 12, 12)) for conv in (nn.Conv2d, scratch.Conv2d)]
    assert list(frames[1]["macs"]) == list(frames[0]["macs"]) == [8 * 12 * 12 * 3 * 9, 0, 4 * 4 * 4 * 8 * 25]
    x = torch.randn(9, 2, 5)  # 9 steps, 2 examples
    for mode, theirs in [("rnn_tanh", nn.RNN), ("lstm", nn.LSTM), ("gru", nn.GRU)]:
        gates = {"rnn_tanh": 1, "lstm": 4, "gru": 3}[mode]
        per_step = gates * 7 * (5 + 7) + gates * 7 * (7 + 7)  # two layers: input 5 then 7, hidden 7
        ours, torch_layer = scratch_rnn.Recurrent(mode, 5, 7, num_layers=2), theirs(5, 7, num_layers=2)
        assert layer_macs(ours, ours(x)[0]) == layer_macs(torch_layer, torch_layer(x)[0]) == 9 * 2 * per_step
    cells = [(scratch_rnn.RNNCell(5, 7), 1), (scratch_rnn.LSTMCell(5, 7), 4), (scratch_rnn.GRUCell(5, 7), 3)]
    for cell, gates in cells:
        h = cell(torch.randn(2, 5))
        assert layer_macs(cell, h[0] if isinstance(h, tuple) else h) == 2 * gates * 7 * (5 + 7)


def test_depthwise_separable_saving_matches_formula():
    """dw 3x3 + pw 1x1 costs 1/C_out + 1/9 of a standard 3x3 conv: MobileNet's argument."""
    separable = summary("mobilenet_v1", (3, 32, 32), separable=True)
    standard = summary("mobilenet_v1", (3, 32, 32), separable=False)
    dw, pw = separable[separable["type"] == "Conv2d"].iloc[[1, 2]]["macs"]
    full = standard[standard["type"] == "Conv2d"].iloc[1]["macs"]
    assert (dw + pw) / full == pytest.approx(1 / 64 + 1 / 9)
    assert separable.attrs["totals"]["params"] < standard.attrs["totals"]["params"] / 6


def test_totals_match_model_and_known_macs():
    frame = summary("resnet18", (3, 224, 224), num_classes=1000)
    assert frame.attrs["totals"]["params"] == 11_689_512
    assert frame["params"].sum() == 11_689_512
    assert frame.attrs["totals"]["macs"] == pytest.approx(1.82e9, rel=0.01)  # the published 1.8 GMACs


def test_model_state_is_restored_and_tables_work():
    model = trainlab.create_model("mlp", num_classes=1, in_channels=13, input_size=None)
    model.train()
    frame = trainlab.summary(model, (13,))
    assert model.training
    assert frame["output_shape"].iloc[-1] == (1,)
    assert frame["rf"].isna().all()


def test_googlenet_traces_in_eval_mode_without_aux_heads():
    frame = summary("googlenet", (3, 32, 32), aux_logits=True)
    assert not frame["layer"].str.startswith("aux").any()
    assert frame["output_shape"].iloc[-1] == (10,)


@pytest.mark.parametrize("text", ["3x", "axb", "1x28", "0x28x28"])
def test_bad_input_size_is_explained(text):
    with pytest.raises(ValueError, match="input size"):
        parse_input_size(text)


def test_cli_summary_prints_rows_and_totals(run_cli, tmp_path):
    code, out, _ = run_cli("summary", "lenet-modern", "--input", "1x28x28", "--csv", tmp_path / "s.csv")
    assert code == 0
    assert "Conv2d" in out and "total: 61,706 params" in out
    assert len(pd.read_csv(tmp_path / "s.csv")) == 12


def test_cli_summary_totals_stay_on_one_line_when_piped(run_cli):
    """Piped output is 80 columns wide to rich; the totals line is longer and must not be broken (scripts grep it)."""
    code, out, _ = run_cli("summary", "lstm")
    assert code == 0
    totals = [line for line in out.splitlines() if line.startswith("total:")]
    assert len(totals) == 1 and len(totals[0]) > 80 and totals[0].endswith(" MB")


def test_cli_summary_filters_layers_and_passes_options(run_cli):
    code, out, _ = run_cli("summary", "vgg11", "--input", "3x32x32", "-o", "width_div=4", "--layers", "0.0")
    assert code == 0
    assert "16x32x32" in out and "MaxPool2d" not in out


@pytest.mark.parametrize(("args", "title", "head"), [
    (["lstm", "--input", "40x12"], "input 40x12 · 40 classes", "12x40"),  # a language model: the vocabulary
    (["lstm", "--input", "40x12", "--classes", "6"], "input 40x12 · 6 classes", "12x6"),
    (["mlp", "--input", "13"], "input 13 · 10 classes", "10"),
])
def test_cli_summary_outputs_default_to_the_vocabulary_for_sequence_models(run_cli, args, title, head):
    code, out, _ = run_cli("summary", *args)
    head_row = [line for line in out.splitlines() if "Linear" in line][-1]  # the output layer is the last Linear
    assert code == 0 and title in out and f" {head} " in head_row


@pytest.mark.parametrize(("args", "message"), [
    (["vgg11", "-o", "widht_div=4"], "did you mean 'width_div'"),
    (["lstm", "--classes", "0"], "--classes must be >= 1, got 0"),
    (["vgg1"], "did you mean"),
    (["lenet", "--input", "3x"], "bad input size"),
    (["resnet18", "--input", "13"], "needs image input"),
])
def test_cli_summary_errors(run_cli, args, message):
    code, _, err = run_cli("summary", *args)
    assert code == 2 and message in err
