"""Encoder-decoder: the synthetic translation datasets, the seq2seq model (teacher forcing in training, greedy
decoding at evaluation) and exact-match scoring in the trainer's metrics."""

from __future__ import annotations

import json

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.testing import assert_close

import trainlab
from trainlab.data import build
from trainlab.data import seq2seq as s2s
from trainlab.engine.metrics import MetricAccumulator
from trainlab.models import create

ENCODER_DECODER = ["numbers-to-digits", "reverse-string"]
SMALL = {"numbers-to-digits": {"n": 60, "max_number": 99}, "reverse-string": {"n": 60, "max_length": 5}}


@pytest.mark.parametrize(("number", "words"), [(0, "zero"), (13, "thirteen"), (40, "forty"), (99, "ninety-nine"),
                                               (342, "three hundred forty-two"), (1005, "one thousand five"),
                                               (21000, "twenty-one thousand")])
def test_spell(number: int, words: str) -> None:
    assert s2s.spell(number) == words


@pytest.mark.parametrize("name", ENCODER_DECODER)
def test_dataset_layout_source_bos_teacher_input_and_padded_labels(name: str) -> None:
    bundle = build(name, seed=1, val_fraction=0.2, **SMALL[name])
    record, meta = bundle.meta.preprocess, bundle.meta
    source_length, target_length = record["source_length"], record["target_length"]
    vocab = s2s.Vocabulary.from_record(record)
    assert record["kind"] == "text" and record["task"] == "seq2seq" and vocab.tokens[:4] == s2s.SPECIALS
    assert meta.task == "classification" and meta.num_classes == len(vocab) == meta.in_channels
    assert meta.input_shape == (len(vocab), source_length + target_length)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (38, 10, 12)
    x, y = bundle.train.tensors
    assert x.dtype == y.dtype == torch.long and y.shape == (38, target_length)
    for row, label in zip(x, y):
        source, decoder_input = row[:source_length], row[source_length:]
        target = label[:(label == s2s.EOS).nonzero()[0, 0]]
        assert decoder_input[0] == s2s.BOS and torch.equal(decoder_input[1:1 + len(target)], target)
        assert (label[len(target) + 1:] == s2s.IGNORE).all() and (decoder_input[1 + len(target):] == 0).all()
        text, translated = vocab.decode(source), vocab.decode(target)
        assert translated == (text[::-1] if name == "reverse-string" else str(_number(text)))


def _number(words: str) -> int:
    return next(k for k in range(100) if s2s.spell(k) == words)


@pytest.mark.parametrize(("name", "options"), [("numbers-to-digits", {"n": 200}),
                                               ("reverse-string", {"n": 100, "max_length": 4, "letters": 3})])
def test_test_split_is_fixed_and_never_seen_in_training(name: str, options: dict) -> None:
    one, other = build(name, seed=1, **options), build(name, seed=2, **options)
    assert torch.equal(one.test.tensors[0], other.test.tensors[0])
    assert not torch.equal(one.val.tensors[0], other.val.tensors[0])  # validation follows the run seed
    seen = {tuple(r) for r in one.train.tensors[0].tolist()} | {tuple(r) for r in one.val.tensors[0].tolist()}
    assert not seen & {tuple(r) for r in one.test.tensors[0].tolist()}


def test_translate_ids_and_decode_outputs_round_trip() -> None:
    vocab = s2s.vocabulary([("abc", "cba")])
    x = s2s.translate_ids(["ab", "c"], vocab, source_length=3, target_length=4)
    assert x.tolist() == [[4, 5, 0, 2, 0, 0, 0], [6, 0, 0, 2, 0, 0, 0]]
    logits = torch.nn.functional.one_hot(torch.tensor([[6, 5, 3, 4], [4, 4, 4, 4]]), len(vocab)).float()
    assert s2s.decode_outputs(logits, vocab) == ["cb", "aaaa"]  # cut at <eos>; no <eos>: every step


def _model(vocab_size: int = 9) -> torch.nn.Module:
    torch.manual_seed(0)
    return create("seq2seq", num_classes=vocab_size, in_channels=vocab_size, hidden=16, embedding=8, layers=2,
                  dropout=0.0)


def _batch() -> torch.Tensor:
    """Sources of 4 (padded), then <bos> and 3 decoder steps."""
    return torch.tensor([[4, 5, 6, 0, 2, 6, 5, 4], [7, 8, 0, 0, 2, 8, 7, 0], [4, 4, 4, 4, 2, 4, 4, 4]])


def test_training_uses_teacher_forcing_and_evaluation_never_reads_the_decoder_input() -> None:
    model, x = _model(), _batch()
    other = x.clone()
    other[:, 5:] = torch.tensor([[8, 8, 8], [4, 5, 6], [0, 0, 0]])
    model.train()
    forced = model(x)
    assert forced.shape == (3, 4, 9)
    assert not torch.allclose(forced, model(other))  # teacher forcing reads the true previous tokens
    model.eval()
    greedy = model(x)
    assert_close(greedy, model(other))  # greedy decoding reads its own previous predictions only


def test_greedy_decoding_equals_teacher_forcing_on_its_own_predictions() -> None:
    model, x = _model(), _batch()
    model.eval()
    with torch.no_grad():
        greedy = model(x)
        own = x.clone()
        own[:, 5:] = greedy.argmax(dim=-1)[:, :-1]  # <bos>, then what greedy decoding chose at each step
        model.train()  # dropout is 0: train mode differs only by teacher forcing
        assert_close(model(own), greedy)


def test_padding_in_the_source_changes_nothing() -> None:
    model, x = _model(), _batch()
    model.eval()
    wider = torch.cat([x[:, :4], torch.zeros(3, 2, dtype=torch.long), x[:, 4:]], dim=1)  # two more pad columns
    assert_close(model(wider), model(x))


def test_metrics_report_exact_match_and_leave_padding_out() -> None:
    """Two sequences: one exactly right, one with a wrong step; the padded steps count nowhere."""
    target = torch.tensor([[1, 2, 0, -100], [1, 1, -100, -100]])
    predicted = torch.tensor([[1, 2, 0, 3], [1, 2, 3, 3]])  # steps under -100 are ignored whatever they are
    logits = torch.nn.functional.one_hot(predicted, 4).float() * 5
    metrics = MetricAccumulator("classification", torch.device("cpu"))
    loss = torch.nn.CrossEntropyLoss()(logits.reshape(-1, 4), target.reshape(-1))
    metrics.update(loss, logits, target)
    result = metrics.read("val")
    assert result["val_exact"] == 0.5
    assert result["val_acc"] == 4 / 5  # five real steps, four right
    assert result["val_loss"] == pytest.approx(float(loss)) and result["val_ppl"] == pytest.approx(math.exp(loss))
    unpadded = MetricAccumulator("classification", torch.device("cpu"))
    unpadded.update(loss, logits[:, :2], torch.tensor([[1, 2], [1, 1]]))
    assert "val_exact" not in unpadded.read("val")  # language models (never padded) get no exact-match column


@pytest.fixture(scope="module")
def reverse_run(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("seq2seq")
    return trainlab.train(model="seq2seq", data="reverse-string", epochs=6, out=str(out), name="reverse", seed=0,
                          overrides=["callbacks.progress.style=none", "optim.name=adam", "optim.lr=0.02",
                                     "train.batch_size=32", "data.n=300", "data.min_length=2", "data.max_length=4",
                                     "data.letters=4", "model.hidden=48", "model.embedding=16", "model.layers=1",
                                     "model.dropout=0"])


def test_training_learns_to_reverse_and_reports_exact_match(reverse_run) -> None:
    history = reverse_run.history
    assert {"train_exact", "val_exact", "val_acc", "val_ppl"} <= set(history.columns)
    assert history["val_exact"].iloc[-1] > 0.5 > history["val_exact"].iloc[0] / 2
    assert reverse_run.summary["best"]["val_exact"]["value"] == history["val_exact"].max()  # higher is better
    test = reverse_run.summary["test"]
    assert test["test_exact"] > 0.5  # chance is about 4^-3 for the 3-letter strings
    assert (reverse_run.path / "report.html").is_file()


def test_predict_translates_source_strings_with_the_probability_of_each_output(reverse_run, run_cli) -> None:
    code, out, err = run_cli("predict", reverse_run.path, "abc", "dca", "bb", "--json")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["path"] for r in rows] == ["abc", "dca", "bb"]
    assert sum(r["label"] == r["path"][::-1] for r in rows) >= 2, rows
    assert all(0.0 < r["probability"] <= 1.0 for r in rows)
    model = reverse_run.load_model()  # the probability is the product of the output's steps, <eos> included
    vocab = s2s.Vocabulary.from_record(reverse_run.meta.preprocess)
    record = reverse_run.meta.preprocess
    with torch.no_grad():
        steps = model(s2s.translate_ids(["abc"], vocab, record["source_length"], record["target_length"]))
    top = steps.softmax(dim=-1).max(dim=-1)
    length = top.indices[0].tolist().index(s2s.EOS) + 1
    assert rows[0]["probability"] == pytest.approx(float(top.values[0, :length].prod()), rel=1e-5)


@pytest.mark.parametrize(("source", "message"), [
    ("", "a source string is empty"),
    ("abcdab", "'abcdab' has 6 characters; this run reads sources of at most 4"),
    ("abz!", "'abz!' holds characters the run's vocabulary lacks: 'z', '!'; it knows 'abcd'"),
])
def test_predict_refuses_a_source_the_run_cannot_read(reverse_run, run_cli, tmp_path: Path, source, message) -> None:
    out_file = tmp_path / "translations.csv"
    code, out, err = run_cli("predict", reverse_run.path, "ab", source, "--out", out_file)
    assert code == 2 and out == "" and not out_file.exists()
    assert message in err and err.count("error:") == 1 and "Traceback" not in err


def test_a_trained_run_translates_new_strings(reverse_run) -> None:
    preprocess = trainlab.load_run(reverse_run.path).meta.preprocess  # the vocabulary and lengths of data.json
    vocab = s2s.Vocabulary.from_record(preprocess)
    model = reverse_run.load_model().eval()
    sources = ["abc", "dca", "bb"]
    x = s2s.translate_ids(sources, vocab, preprocess["source_length"], preprocess["target_length"])
    with torch.no_grad():
        answers = s2s.decode_outputs(model(x), vocab)
    assert sum(a == s[::-1] for a, s in zip(answers, sources)) >= 2, answers


@pytest.mark.parametrize(("args", "message"), [
    (["--data", "numbers-to-digits", "--set", "data.max_number=5"], "max_number must be in 9 … 999999, got 5"),
    (["--data", "numbers-to-digits", "--set", "data.n=500", "--set", "data.max_number=99"],
     "n must be between 10 and 100"),
    (["--data", "reverse-string", "--set", "data.letters=30"], "letters must be in 2 … 26, got 30"),
    (["--data", "reverse-string", "--set", "data.letters=2", "--set", "data.min_length=1",
      "--set", "data.max_length=3"],
     "n must be between 10 and 14 (the distinct examples these options allow), got 5000"),
    (["--data", "reverse-string", "--set", "data.min_length=5", "--set", "data.max_length=3"],
     "need 1 <= min_length <= max_length, got 5 and 3"),
    (["--data", "digits"], "seq2seq is a sequence model: it takes token ids, not images"),
    (["--data", "reverse-string", "--set", "model.hidden=0"], "embedding, hidden and layers must be >= 1"),
    (["--data", "reverse-string", "--set", "model.clip_grad_norm=-1"], "clip_grad_norm must be > 0, or 0 for no"),
])
def test_bad_input_is_one_error_line_and_writes_nothing(run_cli, tmp_path: Path, args, message) -> None:
    code, _, err = run_cli("train", "--model", "seq2seq", *args, "--epochs", "1", "--out", tmp_path / "runs",
                             "--set", "callbacks.progress.style=none")
    assert code == 2
    assert message in err and err.count("error:") == 1 and "Traceback" not in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_model_refuses_input_without_a_bos_marker() -> None:
    with pytest.raises(ValueError, match=r"needs a source, then <bos> \(id 2\)"):
        _model()(torch.ones(2, 6, dtype=torch.long))
    with pytest.raises(ValueError, match="takes .batch, steps. token ids"):
        _model()(torch.ones(2, 6))


def test_vocabulary_order_is_fixed() -> None:
    vocab = s2s.vocabulary([("ba", "ab"), ("c", "c")])
    assert vocab.tokens == ("<pad>", "<unk>", "<bos>", "<eos>", "a", "b", "c")
    assert np.array_equal(vocab.encode(list("cab")).numpy(), [6, 4, 5])


@pytest.mark.parametrize(("metric", "direction"), [("val_exact", "maximize"), ("val_acc", "maximize"),
                                                   ("val_ppl", "minimize")])
def test_a_search_on_exact_match_maximizes_it(metric: str, direction: str) -> None:
    from trainlab.experiments.search import default_direction

    assert default_direction(metric) == direction
