"""``trainlab generate``: text sampled from a language-model run, deterministic for a seed; bad inputs are one
``error:`` line."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

import trainlab
from trainlab.data.bundle import DataMeta
from trainlab.data.text import Vocabulary
from trainlab.inference.text import generate, language_model_vocabulary

PROMPT = "the cat"


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("generate")
    (out / "tiny.txt").write_text("the cat sat on the mat. " * 40, encoding="utf-8")
    overrides = {"callbacks.progress.style": "none", "callbacks.plot_curves": None, "data.name": "text",
                 "data.path": str(out / "tiny.txt"), "data.num_steps": 8, "model.name": "lstm", "model.hidden": 16,
                 "optim.lr": 0.01, "train.batch_size": 4}
    return trainlab.train(epochs=2, out=out, name="lm", overrides=overrides)


def test_generate_is_deterministic_for_a_seed_and_continues_the_prompt(lm_run, run_cli):
    args = ("generate", lm_run.path, "--prompt", PROMPT, "--length", "60", "--temperature", "0.8")
    code, first, err = run_cli(*args, "--seed", "3")
    assert code == 0, err
    assert run_cli(*args, "--seed", "3")[1] == first
    assert run_cli(*args, "--seed", "4")[1] != first
    text = first.rstrip("\n")
    assert text.startswith(PROMPT) and len(text) == len(PROMPT) + 60
    vocab = Vocabulary.from_record(lm_run.meta.preprocess)
    assert set(text) <= set(vocab.tokens[2:])  # never <pad>/<unk>, only characters of the training text
    assert generate(lm_run.load_model(), vocab, PROMPT, 60, 0.8, seed=3) == text  # the Python API agrees


@pytest.mark.parametrize(("args", "message"), [
    (["--prompt", "the Ωcat é"], "the prompt holds characters the run's vocabulary lacks: 'Ω', 'é'"),
    (["--prompt", ""], "--prompt is empty"),
    (["--prompt", "the", "--length", "0"], "--length must be from 1 to 100000 tokens, got 0"),
    (["--prompt", "the", "--length", "-5"], "--length must be from 1 to 100000 tokens, got -5"),
    (["--prompt", "the", "--temperature", "0"], "--temperature must be a number > 0"),
    (["--prompt", "the", "--temperature", "-1"], "--temperature must be a number > 0"),
    (["--prompt", "the", "--temperature", "nan"], "--temperature must be a number > 0"),
])
def test_bad_generate_input_is_one_error_line(lm_run, run_cli, args, message):
    before = sorted(p.name for p in Path(lm_run.path).rglob("*"))
    code, out, err = run_cli("generate", lm_run.path, *args)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert sorted(p.name for p in Path(lm_run.path).rglob("*")) == before


def test_generate_refuses_runs_that_are_not_language_models(run_cli, tmp_path):
    code, _, err = run_cli("generate", tmp_path / "nothing", "--prompt", "a")
    assert code == 2 and "is not a trainlab run directory" in err
    image = DataMeta(task="classification", input_shape=(1, 8, 8), num_classes=10,
                     preprocess={"kind": "image", "mode": "L"})
    with pytest.raises(ValueError, match="run r was trained on image data; generate needs a language-model run"):
        language_model_vocabulary(image, "run r")
    classifier = DataMeta(task="classification", input_shape=(9, 20), num_classes=6,
                          preprocess=Vocabulary(("<pad>", "<unk>", "a")).record(task="classify", max_length=20))
    with pytest.raises(ValueError, match="run r is a text classifier, not a language model"):
        language_model_vocabulary(classifier, "run r")


def test_predict_refuses_a_language_model_run(lm_run, run_cli):
    code, out, err = run_cli("predict", lm_run.path, "the cat")
    assert code == 2 and out == "" and "this run is a language model: `trainlab generate` samples text" in err


def test_generate_in_the_style_of_a_chosen_novel(tmp_path, run_cli):
    """One-to-many conditioned on a class: two fake novels with their own letters; --style picks the letters."""
    for novel, letter in (("emma", "a"), ("persuasion", "b")):
        paragraphs = "".join(f"{letter * (3 + i % 4)} {letter * (2 + i % 3)}.\n\n" for i in range(150))
        (tmp_path / f"{novel}.txt.gz").write_bytes(gzip.compress(paragraphs.encode()))
    overrides = {"callbacks.progress.style": "none", "callbacks.plot_curves": None, "data.name": "austen-styles",
                 "data.root": str(tmp_path), "data.novels": ["emma", "persuasion"], "data.num_steps": 16,
                 "model.name": "gru", "model.hidden": 32, "model.embedding": 16, "optim.lr": 0.02,
                 "train.batch_size": 4}
    run = trainlab.train(epochs=3, out=tmp_path, name="styles", overrides=overrides)
    texts = {}
    for style in ("emma", "persuasion"):
        code, out, err = run_cli("generate", run.path, "--style", style, "--prompt", " ", "--length", "80")
        assert code == 0, err
        texts[style] = out
    assert texts["emma"].count("a") > 10 * texts["emma"].count("b")
    assert texts["persuasion"].count("b") > 10 * texts["persuasion"].count("a")
    assert "<" not in texts["emma"] + texts["persuasion"]  # style tokens are fed back, never shown
    code, _, err = run_cli("generate", run.path, "--style", "emmma", "--prompt", " ")
    assert code == 2 and "unknown --style 'emmma'; this run knows: emma, persuasion" in err


def test_style_needs_a_run_trained_with_styles(lm_run, run_cli):
    code, out, err = run_cli("generate", lm_run.path, "--style", "emma", "--prompt", "the")
    assert code == 2 and out == "" and "--style emma: this run has no styles; train on dataset austen-styles" in err


def test_word_level_generation_adds_words_and_names_unknown_words():
    from trainlab.models import create

    vocab = Vocabulary.build("the cat sat on the mat .".split(), "word")
    model = create("gru", num_classes=len(vocab), in_channels=len(vocab), input_size=None, hidden=8)
    text = generate(model, vocab, "the cat", 5, seed=1)
    assert text.startswith("the cat ") and len(text.split()) == 2 + 5
    assert set(text.split()) <= set(vocab.tokens[2:])
    with pytest.raises(ValueError, match="the prompt holds words the run's vocabulary lacks: 'dog'"):
        generate(model, vocab, "the dog sat", 5)


@pytest.mark.parametrize("command", ["train", "kfold"])
def test_a_bidirectional_language_model_is_refused_before_anything_is_written(run_cli, tmp_path, command):
    """Its backward direction would read the token each step predicts: a perplexity that means nothing."""
    (tmp_path / "tiny.txt").write_text("the cat sat on the mat. " * 40, encoding="utf-8")
    out = tmp_path / "runs"
    extra = ["--folds", "2"] if command == "kfold" else []
    code, _, err = run_cli(command, "--model", "gru", "--data", "text", "--epochs", "1", "--out", str(out), *extra,
                           "--set", f"data.path={tmp_path / 'tiny.txt'}", "--set", "data.num_steps=8",
                           "--set", "model.bidirectional=true")
    assert code != 0 and "model.bidirectional=true" in err and "language-model dataset" in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_generate_refuses_a_bidirectional_model(lm_run):
    from trainlab.models import create

    vocab = language_model_vocabulary(lm_run.meta, "the run")
    model = create("gru", num_classes=len(vocab.tokens), in_channels=len(vocab.tokens), input_size=None, hidden=8,
                   bidirectional=True)
    with pytest.raises(ValueError, match="bidirectional: its backward direction needs the text that comes after"):
        generate(model, vocab, PROMPT, 10)


def test_eval_of_a_language_model_names_the_splits_it_has(lm_run, run_cli):
    code, _, err = run_cli("eval", lm_run.path)
    assert code == 2 and "dataset 'text' has no test split; it has train and val (choose one with --split" in err
    code, out, err = run_cli("eval", lm_run.path, "--split", "val")
    assert code == 0 and "val_ppl" in out, err


def test_runs_lists_a_language_model_by_its_perplexity(lm_run, run_cli):
    code, out, err = run_cli("runs", Path(lm_run.path).parent)
    row = next(line for line in out.splitlines() if line.startswith("lm"))
    assert code == 0 and f"val_ppl {lm_run.summary['best']['val_ppl']['value']:.4g}" in row, err
