"""Text datasets (text, austen, austen-novels): vocabulary, partitioning, carried state in training, perplexity,
exact resume, packing in a classifier run, predict on passages, and their bad inputs."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest
import torch

import trainlab
from tests.data.test_registry import OPTIONS
from tests.engine.test_resume import InterruptAt
from trainlab.api import TrainingInterrupted
from trainlab.data import build
from trainlab.data.text import NOVELS, PAD, UNK, Vocabulary
from trainlab import rundir
from trainlab.engine import checkpoint
from trainlab.registry import CALLBACKS, DATASETS, Entry, builder_params

TEXT_DATASETS = ["austen", "austen-novels", "austen-styles", "text"]
PATTERN = "the cat sat on the mat. "
QUIET = {"callbacks.progress.style": "none", "callbacks.plot_curves": None, "train.deterministic": True}


def corpus(tmp: Path, text: str = PATTERN * 60, name: str = "tiny.txt") -> Path:
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    return path


def lm_overrides(path: Path, **extra) -> dict:
    return {**QUIET, "data.name": "text", "data.path": str(path), "data.num_steps": 16, "data.val_fraction": 0.1,
            "model.name": "gru", "model.hidden": 32, "model.embedding": 16, "optim.lr": 0.01,
            "train.batch_size": 4, **extra}


def test_the_text_datasets_are_registered():
    assert sorted(n for n in DATASETS.names() if n in TEXT_DATASETS) == TEXT_DATASETS


@pytest.mark.parametrize("name", TEXT_DATASETS)
def test_text_dataset_contract(name: str, tmp_path: Path):
    """Keyword builders; a JSON-safe text record whose vocabulary sizes the input; integer batches; reproducible."""
    params = builder_params(DATASETS.get(name)).values()
    assert all(p.kind == p.KEYWORD_ONLY and p.default is not p.empty for p in params)
    bundle = build(name, seed=1, val_fraction=0.2, **OPTIONS[name](tmp_path))
    meta, record = bundle.meta, bundle.meta.preprocess
    json.dumps(meta.to_dict())
    assert record["kind"] == "text" and record["vocab"][:2] == [PAD, UNK]
    assert meta.input_shape[0] == len(record["vocab"]) and meta.input_size is None
    loader = bundle.train.make_loader(batch_size=4, device=torch.device("cpu"), shuffle=True, seed=1)
    x, y = next(iter(loader.epoch(0)))
    assert y.dtype == torch.long and y.shape[0] == 4
    assert x.dtype == torch.long and x.shape[0] == 4 and int(x.max()) < meta.input_shape[0]
    again = build(name, seed=1, val_fraction=0.2, **OPTIONS[name](tmp_path))
    first, second = (next(iter(b.val.make_loader(batch_size=4, device=torch.device("cpu"), shuffle=False,
                                                  seed=1).epoch(0))) for b in (bundle, again))
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_vocabulary_comes_from_the_training_head_and_the_tail_validates(tmp_path: Path):
    bundle = build("text", val_fraction=0.1, path=str(corpus(tmp_path, "ab" * 450 + ("xyz" * 34)[:100])), num_steps=4)
    vocab = Vocabulary.from_record(bundle.meta.preprocess)
    assert vocab.tokens == (PAD, UNK, "a", "b")  # x, y, z only occur in the held-out tail
    assert set(bundle.val.ids.tolist()) == {1}  # the tail's unseen characters are <unk>
    assert len(bundle.train.ids) == 900 and len(bundle.val.ids) == 100


def test_sequential_batches_continue_each_other_and_random_ones_do_not_carry(tmp_path: Path):
    path = corpus(tmp_path, "".join(chr(ord("a") + i % 26) for i in range(2000)))
    stream = build("text", val_fraction=0.1, path=str(path), num_steps=5).train
    loader = stream.make_loader(batch_size=3, device=torch.device("cpu"), shuffle=True, seed=0)
    batches = list(loader.epoch(0))
    assert loader.carries_state and len(batches) == len(loader)
    for (x0, y0), (x1, _) in zip(batches, batches[1:]):
        assert torch.equal(x0[:, 1:], y0[:, :-1]) and torch.equal(x1[:, 0], y0[:, -1])  # row b goes on in the next
    assert torch.equal(next(iter(loader.epoch(0)))[0], batches[0][0])  # (seed, epoch) fixes the cut
    assert {int(next(iter(loader.epoch(e)))[0][0, 0]) for e in range(8)} != {int(batches[0][0][0, 0])}  # offsets move
    resumed = list(loader.epoch(0, start=2))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(resumed, batches[2:]))
    random = build("text", val_fraction=0.1, path=str(path), num_steps=5, partition="random").train
    shuffled = random.make_loader(batch_size=3, device=torch.device("cpu"), shuffle=True, seed=0)
    x, y = next(iter(shuffled.epoch(0)))
    assert not shuffled.carries_state and torch.equal(x[:, 1:], y[:, :-1])


@pytest.mark.parametrize(("options", "message"), [
    ({"path": None}, "dataset 'text' needs a file: set data.path=FILE"),
    ({"path": "missing.txt"}, "missing.txt does not exist"),
    ({"path": "empty.txt"}, "holds no text"),
    ({"path": "blank.txt"}, "holds no text"),
    ({"path": "tiny.txt", "num_steps": 0}, "data.num_steps must be >= 1"),
    ({"path": "tiny.txt", "partition": "shuffled"}, "unknown data.partition 'shuffled'"),
    ({"path": "tiny.txt", "num_steps": 400}, r"held-out tail \(data.val_fraction=0.1\) has 144 tokens"),
])
def test_bad_text_options_are_clear_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: dict,
                                           message: str):
    monkeypatch.chdir(tmp_path)
    corpus(tmp_path)
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "blank.txt").write_text(" \n\t\n")
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        build("text", val_fraction=0.1, **options)


def test_austen_reads_other_novels_only_from_a_root(tmp_path: Path):
    with pytest.raises(ValueError, match="only pride-and-prejudice ships with trainlab; for emma set data.root"):
        build("austen", novel="emma")
    with pytest.raises(ValueError, match="unknown novel 'ema'"):
        build("austen", novel="ema")
    with pytest.raises(ValueError, match="dataset 'austen-novels' needs the six novels: set data.root=DIR"):
        build("austen-novels")
    (tmp_path / "emma.txt.gz").write_bytes(gzip.compress(b"Emma Woodhouse, handsome, clever, and rich. " * 50))
    bundle = build("austen", novel="emma", root=str(tmp_path), max_tokens=2000)
    assert "W" in Vocabulary.from_record(bundle.meta.preprocess).tokens


def test_shipped_novel_is_pride_and_prejudice_and_packaged():
    import tomllib

    from trainlab.data.text import SHIPPED, read_text

    assert read_text(SHIPPED).startswith("PRIDE AND PREJUDICE") and SHIPPED.stat().st_size < 400_000
    package_data = tomllib.loads(Path("pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "corpus/*.txt.gz" in package_data["trainlab.data"]


def test_a_tiny_corpus_is_overfit_to_perplexity_near_one(tmp_path: Path):
    overrides = lm_overrides(corpus(tmp_path), **{"optim.lr": 0.02})
    run = trainlab.train(epochs=6, out=tmp_path, name="lm", overrides=overrides)
    history = run.history
    assert {"train_ppl", "val_ppl"} <= set(history.columns)
    assert history["val_ppl"].iloc[-1] < 1.1 < history["val_ppl"].iloc[0]
    assert history["val_ppl"].iloc[-1] == pytest.approx(float(torch.tensor(history["val_loss"].iloc[-1]).exp()))
    summary = run.summary
    assert summary["best"]["val_ppl"]["value"] == pytest.approx(history["val_ppl"].min())
    assert run.config.data.name == "text" and run.meta.preprocess["task"] == "lm"
    assert "<td>val_ppl</td>" in (run.path / rundir.REPORT_FILE).read_text()


def test_recurrent_runs_clip_gradients_by_default(tmp_path: Path):
    from trainlab.config import load
    from trainlab.session import build_session

    base = lm_overrides(corpus(tmp_path))
    clip = [build_session(load(None, overrides=[f"{k}={v}" for k, v in {**base, **extra}.items()
                                                if v is not None]), run_dir=None).trainer.recipe.clip_grad_norm
            for extra in ({}, {"train.clip_grad_norm": 5.0}, {"model.clip_grad_norm": 0})]
    assert clip == [1.0, 5.0, None]


@pytest.fixture
def interrupt_callback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(CALLBACKS._entries, "interrupt_at", Entry("interrupt_at", InterruptAt, "test"))


def test_exact_resume_mid_epoch_carries_the_hidden_state(tmp_path: Path, interrupt_callback: None):
    """Interrupted in the middle of epoch 2 and resumed: the same weights and history as one uninterrupted run."""
    overrides = lm_overrides(corpus(tmp_path), **{"model.dropout": 0.2, "model.layers": 2})
    full = trainlab.train(epochs=3, out=tmp_path, name="full", overrides=overrides)
    with pytest.raises(TrainingInterrupted) as stop:
        trainlab.train(epochs=3, out=tmp_path, name="cut", overrides={**overrides, "callbacks.interrupt_at.step": 29})
    saved = checkpoint.load(checkpoint.latest(stop.value.run_dir / "checkpoints", "last"))
    assert saved.meta["batch_in_epoch"] == 9 and len(saved.state["carried_state"]) == 1  # a GRU: one state tensor
    resumed = trainlab.train(resume=stop.value.run_dir)
    expected, actual = (checkpoint.load(checkpoint.latest(r.path / "checkpoints", "last")).model
                        for r in (full, resumed))
    assert all(torch.equal(expected[name], actual[name]) for name in expected)
    columns = ["epoch", "train_loss", "val_loss", "train_ppl", "val_ppl"]
    pd.testing.assert_frame_equal(full.history[columns], resumed.history[columns])


def test_novel_classifier_trains_evaluates_and_predicts_passages(tmp_path: Path, run_cli):
    root = tmp_path / "novels"
    root.mkdir()
    options = OPTIONS["austen-novels"](root)
    overrides = {**QUIET, "data.name": "austen-novels", **{f"data.{k}": v for k, v in options.items()},
                 "data.level": "word", "model.name": "lstm", "model.hidden": 16, "model.embedding": 8,
                 "model.output": "last",
                 "model.bidirectional": True, "optim.lr": 0.01, "train.batch_size": 16}
    run = trainlab.train(epochs=8, out=tmp_path, name="novels", overrides=overrides)
    assert run.summary["test"]["test_acc"] > 0.9  # each fake novel names itself
    passage = tmp_path / "passage.txt"
    passage.write_text(f"Novel 3 says {NOVELS[3]} again.", encoding="utf-8")
    code, out, err = run_cli("predict", run.path, f"Novel 1 says {NOVELS[1]} again.", passage, "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0, err
    assert [r["label"] for r in rows] == [NOVELS[1], NOVELS[3]] and rows[1]["path"] == str(passage)
    code, _, err = run_cli("predict", run.path, "   ")
    assert code == 2 and "a text argument is empty" in err


def test_data_stats_describes_a_text_dataset_and_show_refuses_it(run_cli, tmp_path):
    code, out, err = run_cli("data", "stats", "austen", "--set", "data.max_tokens=3000")
    assert code == 0, err
    assert "vocabulary:" in out and "char tokens with <pad> and <unk>" in out
    assert "train: 2,700 tokens" in out and "val: 300 tokens" in out
    code, _, err = run_cli("data", "show", "austen", "--out", tmp_path / "grid.png")
    assert code == 2 and "data show draws images; 'austen' is text" in err and not (tmp_path / "grid.png").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["-c", "configs/austen-novels.yaml"], "dataset 'austen-novels' needs the six novels: set data.root=DIR"),
    (["--set", "data.name=text", "--set", "model.name=lstm"], "dataset 'text' needs a file: set data.path=FILE"),
    (["--set", "data.name=text", "--set", "data.path=empty.txt", "--set", "model.name=lstm"], "holds no text"),
    (["--set", "data.name=austen", "--set", "model.name=mlp"], "gives token ids; train a sequence model on it"),
    (["--set", "data.name=austen", "--set", "data.max_tokens=500", "--set", "model.name=gru"],
     "too few for a batch of 64 × data.num_steps=35"),
])
def test_bad_text_runs_are_one_error_line_and_leave_nothing(run_cli, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.txt").write_text("")
    config = Path(__file__).resolve().parents[1] / "configs" / "austen-novels.yaml"
    args = [str(config) if a == "configs/austen-novels.yaml" else a for a in args]
    code, _, err = run_cli("train", *args, "--set", f"train.out={tmp_path / 'runs'}")
    assert code == 2 and err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_curves_get_a_perplexity_panel_for_language_models(tmp_path: Path):
    from trainlab.report.plots import plot_history

    history = [{"epoch": e, "train_loss": 2.0 / e, "val_loss": 2.1 / e, "train_acc": 0.3, "val_acc": 0.3,
                "train_ppl": 7.4 / e, "val_ppl": 8.2 / e} for e in (1, 2)]
    import matplotlib.pyplot as plt

    panels = []
    original = plt.subplots
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(plt, "subplots", lambda *a, **k: panels.append(a) or original(*a, **k))
        plot_history(history, tmp_path / "c.png")
        plot_history([{k: v for k, v in row.items() if "ppl" not in k} for row in history], tmp_path / "d.png")
    assert panels == [(1, 3), (1, 2)] and (tmp_path / "c.png").stat().st_size > 0
