"""A zoo model paired with a dataset it cannot learn from is refused before anything is written; a recurrent model
on passages with one label each predicts once per passage, and the run's config records that choice."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import trainlab
from tests.data.test_registry import OPTIONS
from trainlab import config as config_mod
from trainlab.session import build_session

QUIET = {"callbacks.progress.style": "none", "callbacks.plot_curves": None}


def novels(tmp_path: Path, **extra: object) -> dict[str, object]:
    root = tmp_path / "novels"
    root.mkdir(exist_ok=True)
    data = {f"data.{key}": value for key, value in OPTIONS["austen-novels"](root).items()}
    return {**QUIET, **data, "data.name": "austen-novels", "model.name": "gru", "model.hidden": 8,
            "model.embedding": 8, "train.batch_size": 16, **extra}


def session_for(overrides: dict[str, object]):
    return build_session(config_mod.load(None, overrides=[f"{k}={v}" for k, v in overrides.items()
                                                          if v is not None]), run_dir=None)


def test_a_recurrent_model_on_labelled_passages_predicts_once_per_passage_unless_told(tmp_path: Path):
    chosen = session_for(novels(tmp_path))
    assert chosen.cfg.model.options()["output"] == "last" and chosen.model.output == "last"
    assert session_for(novels(tmp_path, **{"model.output": "mean"})).model.output == "mean"


def test_language_models_keep_predicting_every_step(tmp_path: Path):
    text = tmp_path / "tiny.txt"
    text.write_text("the cat sat on the mat. " * 40, encoding="utf-8")
    session = session_for({**QUIET, "data.name": "text", "data.path": str(text), "data.num_steps": 8,
                           "model.name": "gru", "model.hidden": 8})
    assert "output" not in session.cfg.model.options() and session.model.output == "steps"


def test_the_chosen_output_is_saved_with_the_run_and_rebuilt_from_it(tmp_path: Path):
    run = trainlab.train(epochs=1, out=tmp_path, name="novels", overrides=novels(tmp_path))
    assert run.config.model.options()["output"] == "last"
    assert run.load_model().output == "last" and "test_acc" in run.summary["test"]


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "rnn", "--data", "numbers-to-digits"],
     "'numbers-to-digits' pairs each source sequence with a target sequence of another length, which needs an "
     "encoder-decoder: train it with --model seq2seq"),
    (["--model", "gru", "--data", "sine-series"],
     "gru reads sequences (token ids, or per-step features), and 'sine-series' is a table of rows of 4 values"),
    (["--model", "mlp", "--data", "austen", "--set", "data.max_tokens=3000"],
     "mlp takes images or table rows, and 'austen' gives token ids; train a sequence model on it: --model rnn"),
    (["--model", "linear", "--data", "reverse-string"],
     "linear takes images or table rows, and 'reverse-string' gives token ids; train a sequence model on it: "
     "--model seq2seq"),
    (["--model", "seq2seq", "--data", "austen", "--set", "data.max_tokens=3000"],
     "seq2seq is an encoder-decoder for source and target sequences (numbers-to-digits, reverse-string), and "
     "'austen' has the next token to predict"),
])
def test_a_model_that_cannot_learn_the_data_is_refused_before_anything_is_written(run_cli, tmp_path: Path,
                                                                                   args: list[str], message: str):
    """Each of these crashed in the first batch (some as 'a bug in trainlab'), leaving a crashed run behind."""
    out = tmp_path / "runs"
    code, _, err = run_cli("train", *args, "--epochs", "1", "--out", str(out))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


class TokenBag(torch.nn.Module):
    """An own model on token ids with no hidden state to carry."""

    def __init__(self, num_classes: int, in_channels: int) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(in_channels, 4)
        self.head = torch.nn.Linear(4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def test_an_own_model_without_a_state_is_refused_on_text_that_carries_one(tmp_path: Path):
    """Own models are not checked against the data by name; the carried state still needs a model that has one."""
    text = tmp_path / "tiny.txt"
    text.write_text("the cat sat on the mat. " * 40, encoding="utf-8")
    overrides = {**QUIET, "data.name": "text", "data.path": str(text), "data.num_steps": 8}
    with pytest.raises(ValueError, match="carries a hidden state across batches, and TokenBag has none; use a "
                                         "recurrent model"):
        trainlab.train(model=TokenBag, epochs=1, out=tmp_path, name="bag", overrides=overrides)
    assert not (tmp_path / "bag").exists()


@pytest.mark.parametrize(("model", "data", "extra", "holds"), [
    ("gru", "austen", ["--set", "data.max_tokens=3000"], "one stream of tokens, read in windows"),
    ("gru", "text", ["--set", "data.path=tiny.txt"], "one stream of tokens, read in windows"),
])
def test_kfold_refuses_a_token_stream_before_anything_is_written(run_cli, tmp_path: Path, model: str, data: str,
                                                                 extra: list[str], holds: str,
                                                                 monkeypatch: pytest.MonkeyPatch):
    """A language model's text is one stream read in windows: folds of windows would train on their neighbours.
    (Passages and translation pairs split: tests/experiments/test_kfold_text.py.)"""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.txt").write_text("the cat sat on the mat. " * 40, encoding="utf-8")
    out = tmp_path / "runs"
    code, _, err = run_cli("kfold", "--model", model, "--data", data, "--folds", "2", "--epochs", "1",
                           "--out", str(out), *extra)
    assert code == 2 and f"this text dataset holds {holds}, which it cannot split yet" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
