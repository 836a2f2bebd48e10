"""``trainlab export`` of text runs: each recurrent kind exports a language model's per-step next-token probabilities
over a window of the run's training length, and answers like the run's model on real text; the window length is
fixed (``torch.export`` fixes a recurrent layer's time axis) and another length fails loudly.  A passage classifier
and an encoder-decoder export unpacked (``trainlab.models.masked_recurrent``) and answer like ``predict`` on
passages or sources of any length up to the longest of their training data."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import pytest
import torch

import trainlab
from tests.test_model_data_pairing import novels
from trainlab import rundir
from trainlab.data.seq2seq import EOS, decode_outputs
from trainlab.data.text import Vocabulary
from trainlab.data.text_classify import passage_ids
from trainlab.export import FORMATS, ExportError, export_run
from trainlab.export.metadata import text_steps
from trainlab.inference.text import predict_texts

STEPS = 8
TEXT = "It is a truth universally acknowledged, that a single man in possession of a good fortune. " * 12
QUIET = {"callbacks.progress.style": "none", "callbacks.plot_curves": None}


def language_model(tmp_path: Path, model: str, **options: object) -> trainlab.Run:
    text = tmp_path / "tiny.txt"
    text.write_text(TEXT, encoding="utf-8")
    overrides = {**QUIET, "data.name": "text", "data.path": str(text), "data.num_steps": STEPS,
                 "model.hidden": 8, **{f"model.{k}": v for k, v in options.items()}}
    return trainlab.train(model=model, epochs=1, out=tmp_path / "runs", name=model, overrides=overrides)


def window_ids(run: trainlab.Run, text: str) -> torch.Tensor:
    vocab = Vocabulary.from_record(run.meta.preprocess)
    return vocab.encode_text(text)[:STEPS].unsqueeze(0)


@pytest.mark.parametrize(("model", "options"), [("rnn", {}), ("rnn", {"embedding": 4}), ("gru", {}),
                                                ("lstm", {"embedding": 4, "layers": 2})],
                         ids=["rnn-one-hot", "rnn-embedding", "gru-one-hot", "lstm-embedding-2-layers"])
def test_a_language_model_exports_its_next_token_probabilities(tmp_path: Path, model: str,
                                                               options: dict[str, object]) -> None:
    run = language_model(tmp_path, model, **options)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = export_run(run.path, "torch-export", tmp_path / "lm.pt2")
    notes = [str(w.message) for w in caught]  # torch's notes about capturing a recurrent layer reach no user
    assert not [n for n in notes if "were assigned during export" in n or "_check_is_size" in n], notes
    assert result.check is not None and result.check.max_abs_diff < 1e-5
    with open(result.path, "rb") as handle:
        program = torch.export.load(handle).module()
    x = window_ids(run, "It is a truth")
    with torch.no_grad():
        want = run.load_model().eval()(x).softmax(dim=-1)
    got = program(x)
    assert got.shape == (1, STEPS, len(run.meta.preprocess["vocab"]))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    metadata = json.loads(result.metadata_path.read_text())
    assert metadata["input"] == {"name": "token_ids", "shape": [None, STEPS], "dtype": "int64",
                                 "dynamic_axes": {"0": "batch"}}
    assert metadata["output"]["shape"] == [None, STEPS, len(run.meta.preprocess["vocab"])]
    assert metadata["preprocess"]["vocab"] == run.meta.preprocess["vocab"]
    assert f"exactly {STEPS} token ids per row" in metadata["before_graph"]["window"]
    assert "distribution of the token after position t" in metadata["after_graph"]


def test_another_window_length_fails_loudly_and_a_shorter_text_is_read_right_padded(tmp_path: Path) -> None:
    run = language_model(tmp_path, "gru")
    result = export_run(run.path, "torch-export", tmp_path / "lm.pt2")
    with open(result.path, "rb") as handle:
        program = torch.export.load(handle).module()
    with pytest.raises(Exception, match=rf"\[1\] == {STEPS}\b"):  # torch's guard on the window's length
        program(torch.ones(2, STEPS + 3, dtype=torch.long))
    short = window_ids(run, "It is")  # 5 of the window's 8 ids, right-padded as the metadata says
    padded = torch.cat([short, torch.zeros(1, STEPS - short.shape[1], dtype=torch.long)], dim=1)
    with torch.no_grad():
        want = run.load_model().eval()(short).softmax(dim=-1)
        torch.testing.assert_close(program(padded)[:, :short.shape[1]], want, atol=1e-5, rtol=1e-4)
    assert "Right-pad a shorter text with 0" in text_steps(run.meta.preprocess)["window"]


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_the_other_formats_export_a_language_model_and_pass_the_check(tmp_path: Path, fmt: str) -> None:
    for package in FORMATS.entry(fmt).obj.packages:
        pytest.importorskip(package)
    run = language_model(tmp_path, "lstm")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = export_run(run.path, fmt, tmp_path / FORMATS.get(fmt).file_name)
    assert not [w for w in caught if "were assigned during export" in str(w.message)
                or "_check_is_size" in str(w.message)]
    assert result.path.is_file() and result.check is not None and result.check.max_abs_diff < 1e-4


PASSAGES = ["It is a truth universally acknowledged.", "Emma Woodhouse, handsome", "A",
            "Sir Walter Elliot, of Kellynch Hall, in Somersetshire, was a man who"]


def classifier(tmp_path: Path, model: str, **options: object) -> trainlab.Run:
    overrides = {**novels(tmp_path), "model.name": model, **{f"model.{k}": v for k, v in options.items()}}
    return trainlab.train(epochs=1, out=tmp_path / "runs", name=model, overrides=overrides)


@pytest.mark.parametrize(("model", "options"), [
    ("gru", {}), ("lstm", {"bidirectional": True, "layers": 2}),
    ("rnn", {"bidirectional": True, "output": "mean", "embedding": None})],
    ids=["gru-last", "lstm-bidirectional-2-layers", "rnn-bidirectional-mean-one-hot"])
def test_a_passage_classifier_exports_and_answers_like_predict(tmp_path: Path, model: str,
                                                               options: dict[str, object]) -> None:
    run = classifier(tmp_path, model, **options)
    width = run.meta.preprocess["max_length"]
    result = export_run(run.path, "torch-export", tmp_path / "novels.pt2")
    assert result.check is not None and result.check.max_abs_diff < 1e-5  # against the packed model, padded rows
    with open(result.path, "rb") as handle:
        program = torch.export.load(handle).module()
    passages = [text[:width] for text in PASSAGES]  # a longer passage is cut by the caller (the metadata says so)
    assert len({len(text) for text in passages}) == len(passages)  # every row padded differently, one not at all
    got = program(passage_ids(passages, Vocabulary.from_record(run.meta.preprocess), length=width))
    predictions = predict_texts([run.load_model().eval()], passages, run.meta)
    assert [run.meta.classes[int(i)] for i in got.argmax(dim=1)] == [p.label for p in predictions]
    torch.testing.assert_close(got.max(dim=1).values, torch.tensor([p.probability for p in predictions]),
                               atol=1e-5, rtol=1e-4)
    metadata = json.loads(result.metadata_path.read_text())
    assert metadata["input"]["shape"] == [None, width] and metadata["output"]["shape"] == [None, 6]
    assert metadata["classes"] == run.meta.classes and "classes[argmax(probabilities)]" in metadata["after_graph"]
    assert f"right-padded with 0 (<pad>) to exactly {width} per row" in metadata["before_graph"]["window"]


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_the_other_formats_export_a_passage_classifier_and_pass_the_check(tmp_path: Path, fmt: str) -> None:
    for package in FORMATS.entry(fmt).obj.packages:
        pytest.importorskip(package)
    run = classifier(tmp_path, "lstm", bidirectional=True)
    result = export_run(run.path, fmt, tmp_path / FORMATS.get(fmt).file_name)
    assert result.path.is_file() and result.check is not None and result.check.max_abs_diff < 1e-4


SOURCES = ["forty-two", "one thousand five", "seven"]


def test_an_encoder_decoder_exports_its_greedy_translation_and_answers_like_predict(tmp_path: Path, run_cli) -> None:
    overrides = {**QUIET, "model.name": "seq2seq", "data.name": "numbers-to-digits", "data.n": 200,
                 "model.hidden": 16, "model.embedding": 8}
    run = trainlab.train(epochs=2, out=tmp_path / "runs", name="numbers", overrides=overrides)
    record = run.meta.preprocess
    code, out, _ = run_cli("export", run.path)
    assert code == 0 and "export/model.pt2" in out
    metadata = json.loads((run.path / rundir.EXPORT_DIR / "model.pt2.json").read_text())
    assert metadata["input"]["shape"] == [None, record["source_length"]]
    assert metadata["output"]["shape"] == [None, record["target_length"], len(record["vocab"])]
    assert metadata["check"]["max_abs_diff"] < 1e-5  # against the packed model on sources of random lengths
    with open(run.path / rundir.EXPORT_DIR / "model.pt2", "rb") as handle:
        program = torch.export.load(handle).module()
    vocab = Vocabulary.from_record(record)
    sources = torch.zeros(len(SOURCES), record["source_length"], dtype=torch.long)
    for row, text in zip(sources, SOURCES):
        row[:len(text)] = vocab.encode_text(text)
    with torch.no_grad():
        steps = program(sources)
    predictions = predict_texts([run.load_model().eval()], SOURCES, run.meta)
    assert decode_outputs(steps, vocab) == [p.label for p in predictions]
    best = steps.max(dim=-1).values
    for row, prediction in enumerate(predictions):
        ids = steps[row].argmax(dim=-1).tolist()
        length = ids.index(EOS) + 1 if EOS in ids else len(ids)
        assert float(best[row, :length].prod()) == pytest.approx(prediction.probability, rel=1e-5)


@pytest.mark.parametrize(("task", "message"), [
    ("lm", r"records no window length \(num_steps\)"), ("classify", r"records no window length \(max_length\)"),
    ("seq2seq", r"records no window length \(source_length\)"),
    ("tagging", r"names the text task 'tagging', which export does not know \(lm, classify, seq2seq\)")])
def test_a_text_run_export_cannot_read_is_refused_naming_why(tmp_path: Path, task: str, message: str) -> None:
    opened = trainlab.load_run(language_model(tmp_path, "gru").path)
    record = {name: value for name, value in opened.meta.preprocess.items() if name != "num_steps"}
    opened.meta = dataclasses.replace(opened.meta, preprocess={**record, "task": task})
    with pytest.raises(ExportError, match=rf"cannot be exported: its data.json {message}"):
        export_run(opened, out=tmp_path / "x.pt2")
    assert not (tmp_path / "x.pt2").exists()


def test_the_metadata_of_a_style_model_says_how_to_ask_for_a_style() -> None:
    record = {"kind": "text", "level": "word", "lowercase": True, "vocab": ["<pad>", "<unk>", "<emma>"],
              "task": "lm", "num_steps": 16, "styles": {"emma": "<emma>"}}
    steps = text_steps(record)
    assert steps["tokens"].startswith(r"each word or punctuation mark (the matches of the regular expression "
                                      r"\w+|[^\w\s], Python's re) of the text, lowercased, becomes its index")
    assert steps["window"].startswith("exactly 16 token ids per row")
    assert "style token (preprocess.styles)" in steps["styles"]
    assert "styles" not in text_steps({**record, "styles": {}})


class _OwnTranslator(torch.nn.Module):
    """A user's own encoder-decoder: not trainlab's Seq2Seq, so export has no unpacked form of it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[0], 3, 5)


def test_only_trainlabs_packing_models_are_unpacked_for_export() -> None:
    """Passage classifiers and encoder-decoders of the zoo are exported unpacked; a user's own model is exported as
    it is (an encoder-decoder still asked with the source alone), for torch.export to capture or refuse."""
    from types import SimpleNamespace

    from trainlab.data.bundle import DataMeta
    from trainlab.export.save import _predictors
    from trainlab.models import create
    from trainlab.models.masked_recurrent import MaskedRecurrent, MaskedSeq2Seq, SourceInput

    def exported_and_reference(models: list[torch.nn.Module], record: dict[str, object]) -> tuple[list, list]:
        run = SimpleNamespace(load_models=lambda device: models, config=SimpleNamespace(train=SimpleNamespace(
            tta_flip=False)), meta=DataMeta(task="classification", input_shape=(12, 5), preprocess=record))
        exported, reference = _predictors(run)
        return list(exported.models), list(reference.models)

    gru = create("gru", num_classes=6, in_channels=12, input_size=None, hidden=4, output="last")
    own = torch.nn.Linear(2, 2)
    exported, reference = exported_and_reference([gru, own], {"kind": "text", "task": "classify", "max_length": 5})
    assert [type(m) for m in exported] == [MaskedRecurrent, torch.nn.Linear] and reference == [gru, own]
    seq2seq = create("seq2seq", num_classes=12, in_channels=12, input_size=None, hidden=4, embedding=2, layers=1)
    exported, reference = exported_and_reference([seq2seq, _OwnTranslator()],
                                                 {"kind": "text", "task": "seq2seq", "source_length": 5,
                                                  "target_length": 3})
    assert [type(m) for m in exported] == [MaskedSeq2Seq, SourceInput] and exported[1] is reference[1]
    assert [type(m) for m in reference] == [SourceInput, SourceInput] and reference[0].model is seq2seq
