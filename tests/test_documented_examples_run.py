"""Every documented example runs (issue #16): each ``trainlab …`` command and each Python snippet of the README,
the guides, the recipes' comments and every ``--help`` text, as collected by tests/doc_examples.py.

Each example runs in its own empty directory holding a small *world*: the runs, files and data folders the docs
refer to (``runs/NAME``, ``digit.png``, ``photos/``, ``train.csv``, ``DIR`` …), built once from tiny data.  The
examples are shortened, never changed in kind: one epoch, two folds or trials, a few LR-finder steps, no progress
bar, curve plot or compilation.  An example documented as an error (a typo'd option) must fail with its documented message.
A new documented placeholder needs an entry below, or the example fails naming it.
"""

from __future__ import annotations

import gzip
import importlib
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from doc_examples import ROOT, argv_of, documented_commands, python_snippets, repo_paths

from tests.data.files import write_cifar, write_idx_dataset, write_image_folder, write_mnist_csv
from trainlab.cli import main
from trainlab.data import embedded
from trainlab.engine.trainer import Trainer

pytestmark = pytest.mark.slow

# No progress bar or curve plot, and no torch.compile (the speedrun recipes compile: 20 s per example on a CPU;
# compiling is tested in tests/speed).
QUIET = ["--set", "callbacks.progress.style=none", "--set", "callbacks.plot_curves=null", "--set", "train.compile=false"]
TRAINS = {"train", "kfold", "search"}
# Shortening, appended after the documented arguments (argparse keeps the last value of a flag).
SHORTER = {"train": ["--epochs", "1"], "kfold": ["--epochs", "1", "--folds", "2"],
           "search": ["--epochs", "1", "--trials", "2"], "lr-find": ["--steps", "12"]}
# Runs the docs name, each made from one of the world's runs (a symlink in every example's directory).
RUN_ALIASES = {
    "NAME": "cnn", "pretrained": "cnn", "speedrun": "cnn", "x": "cnn",
    "mlp-digits-20261122-101500": "mlp", "simple-cnn-digits-20261122-102000": "cnn",
    "simple-cnn-digits-20261122-101500": "cnn", "house-prices": "houses",
    "mlp-digits-kfold5-20261122-101500": "kfold-interrupted", "mlp-cv": "kfold-interrupted",
    "search-mlp-digits": "search", "austen-char-lm": "char-lm", "austen-styles": "styles", "austen-novels": "novels",
    "numbers-to-digits": "numbers",
}
# Documented values that stand for something the reader has: replaced in the command's text.
TEXT_PLACEHOLDERS = {
    "~/data/fashion-mnist": "DIR",
    "last-000000420": "{checkpoint}",
    "x.yaml": "configs/digits.yaml",
    "CONFIG": "configs/digits.yaml",
    "configs/recipe/NAME.yaml": "configs/recipe/mlp-baseline.yaml",
    "<out>/<name>/best.yaml": "runs/search-mlp-digits/best.yaml",
}
# Examples that show an error on purpose: the message they must print.
DOCUMENTED_ERRORS = {
    "trainlab train --set model.dropuot=0.5": "did you mean 'dropout'",
}
# Language models on a whole novel: trained on its first 20,000 tokens.
LANGUAGE_MODEL = re.compile(r"data\.name=(austen|text)(\s|$)|configs/austen-char-lm\.yaml")
# Resuming a finished one-epoch run needs a larger epoch count than the documented 30 would cost.
RESUME_EPOCHS = ["--epochs", "2"]
# Recipes whose warmup lasts two epochs: the shortened run must be longer than that.
LONGER = {"configs/recipe/cosine-warmup.yaml": ["--epochs", "3"], "configs/recipe/sched-cosine-warmup.yaml": ["--epochs", "3"]}


def _house_table(rows: int, seed: int, with_target: bool) -> str:
    """A CSV with House Prices' id, target and a few of its numeric and categorical columns."""
    rng = np.random.default_rng(seed)
    area = rng.integers(600, 3000, rows)
    quality = rng.integers(1, 10, rows)
    zoning = rng.choice(["RL", "RM", "FV"], rows)
    lines = ["Id,LotArea,OverallQual,MSZoning" + (",SalePrice" if with_target else "")]
    for i in range(rows):
        price = f",{int(40 * area[i] + 15000 * quality[i] + rng.integers(0, 9000))}" if with_target else ""
        lines.append(f"{i + 1},{area[i]},{quality[i]},{zoning[i]}{price}")
    return "\n".join(lines) + "\n"


def _write_tables(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.csv").write_text(_house_table(120, 0, with_target=True))
    (folder / "test.csv").write_text(_house_table(30, 1, with_target=False))


def _write_images(world: Path) -> None:
    """The image files the docs predict on, made from real digits so they look like what a model was trained on."""
    from PIL import Image

    bundle = embedded.digits(seed=0)
    for number, name in enumerate(("digit.png", "photo.jpg", "img.png", "scan.jpg")):
        pixels = (bundle.test[number][0][0].numpy().astype(np.float32) * 255 / 16).astype(np.uint8)
        Image.fromarray(pixels, mode="L").resize((28, 28)).convert("RGB").save(world / name)
    write_image_folder(world / "photos")


def _write_datasets(world: Path) -> None:
    """Tiny stand-ins in each dataset's own format, where the docs' data.root values and the default cache point."""
    cache = world / "data-cache"
    for folder in (world / "DIR", cache / "fashion-mnist", cache / "mnist"):
        write_idx_dataset(folder, n_train=60, n_test=20, size=28)
    for folder in (world / "DIR", cache / "cifar10"):
        write_cifar(folder / "cifar-10-batches-py")
    for folder in (world / "DIR", world / "house-prices", world / "path/to/house-prices", world):
        _write_tables(folder)
    write_mnist_csv(world / "mnist_5k.csv.gz", per_class=6)
    _write_images(world)
    _write_texts(world)


NOVELS = ("emma", "mansfield-park", "northanger-abbey", "persuasion", "pride-and-prejudice", "sense-and-sensibility")


def _write_texts(world: Path) -> None:
    """Six short "novels" for DIR (slices of the Pride and Prejudice that ships with trainlab, one per title) and the
    text files the sequence guide trains and predicts on."""
    book = gzip.decompress((ROOT / "trainlab/data/corpus/pride-and-prejudice.txt.gz").read_bytes()).decode("utf-8")
    for number, novel in enumerate(NOVELS):
        part = book[20_000 + number * 24_000: 20_000 + (number + 1) * 24_000]
        (world / "DIR" / f"{novel}.txt.gz").write_bytes(gzip.compress(part.encode("utf-8")))
    (world / "my-book.txt").write_text(book[:30_000], encoding="utf-8")
    (world / "passage.txt").write_text(book[50_000:50_180], encoding="utf-8")
    (world / "other.txt").write_text(book[90_000:90_150], encoding="utf-8")


def _train(world: Path, name: str, *argv: str) -> Path:
    code = main([*argv, "--name", name, "--out", str(world / "runs"), *QUIET])
    assert code == 0, f"building the examples' world: `trainlab {' '.join(argv)}` failed"
    return world / "runs" / name


def _write_runs(world: Path) -> None:
    _train(world, "cnn", "train", "--epochs", "1")
    _train(world, "mlp", "train", "--model", "mlp", "--epochs", "1")
    _train(world, "houses", "train", "-c", str(ROOT / "configs/house-prices.yaml"), "--set",
           f"data.root={world / 'house-prices'}", "--epochs", "1")
    _train(world, "kfold", "kfold", "--model", "mlp", "--folds", "2", "--epochs", "1")
    _train(world, "search", "search", "--model", "mlp", "--epochs", "1", "--trials", "2", "--space",
           str(ROOT / "configs/digits-space.yaml"))
    _interrupted_kfold(world)
    _train(world, "char-lm", "train", "--set", "data.name=text", "--set", f"data.path={world / 'my-book.txt'}",
           "--set", "model.name=lstm", "--set", "model.hidden=32", "--epochs", "1")
    _train(world, "styles", "train", "--set", "data.name=austen-styles", "--set", f"data.root={world / 'DIR'}",
           "--set", "model.name=lstm", "--set", "model.hidden=32", "--set", "model.embedding=16", "--epochs", "1")
    _train(world, "novels", "train", "-c", str(ROOT / "configs/austen-novels.yaml"), "--set",
           f"data.root={world / 'DIR'}", "--epochs", "1")
    _train(world, "numbers", "train", "--model", "seq2seq", "--data", "numbers-to-digits", "--set", "data.n=300",
           "--set", "model.hidden=32", "--set", "model.embedding=16", "--epochs", "1")
    checkpoint = next((world / "runs/cnn/checkpoints").iterdir())
    shutil.copy(checkpoint / "model.safetensors", world / "resnet.safetensors")
    from safetensors.torch import load_file

    torch.save(load_file(checkpoint / "model.safetensors"), world / "weights.pth")


def _interrupted_kfold(world: Path) -> None:
    """A k-fold run stopped by Ctrl-C in its second fold, as the docs' `kfold --resume` examples continue."""
    original = Trainer._emit
    fits: list[Trainer] = []

    def emit(self: Trainer, hook: str) -> None:
        original(self, hook)
        fits.extend([self] if hook == "on_fit_start" else [])
        if hook == "on_batch_end" and len(fits) == 2 and self.state.batch_in_epoch == 2:
            raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Trainer, "_emit", emit)
        code = main(["kfold", "--model", "mlp", "--folds", "2", "--epochs", "1", "--name", "kfold-interrupted",
                     "--out", str(world / "runs"), *QUIET])
    assert code != 0 and (world / "runs/kfold-interrupted/kfold.json").is_file()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files and runs every example may refer to, built once."""
    world = tmp_path_factory.mktemp("world")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(embedded, "mnist5k_file", lambda: world / "mnist_5k.csv.gz")
        _write_datasets(world)
        _write_runs(world)
    return world


def _link_world(world: Path, directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``directory`` becomes the current directory, with the world's files and the repository's examples/ linked in
    and an empty runs/."""
    (directory / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    for entry in world.iterdir():
        if entry.name != "runs":
            (directory / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    (directory / "runs").mkdir()
    monkeypatch.chdir(directory)
    monkeypatch.setenv("TRAINLAB_DATA", str(world / "data-cache"))
    monkeypatch.setattr(embedded, "mnist5k_file", lambda: world / "mnist_5k.csv.gz")


@pytest.fixture
def sandbox(world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Path:
    """The world, with its runs copied under their documented names (except the search a documented search is
    about to create)."""
    _link_world(world, tmp_path, monkeypatch)
    searching = argv_of(request.node.callspec.params.get("command", "trainlab"))[:1] == ["search"]
    for alias, source in RUN_ALIASES.items():
        if not (searching and source == "search"):
            shutil.copytree(world / "runs" / source, tmp_path / "runs" / alias, symlinks=True)
    return tmp_path


def _substitute(command: str, sandbox: Path) -> str:
    for placeholder, value in TEXT_PLACEHOLDERS.items():
        if "{checkpoint}" in value and placeholder in command:
            value = value.format(checkpoint=next((sandbox / "runs/x/checkpoints").iterdir()).name)
        command = re.sub(rf"(?<![\w-]){re.escape(placeholder)}(?![\w])", value, command)
    return command


def _runnable(command: str, sandbox: Path) -> list[str]:
    """The documented command's arguments, placeholders filled in and shortened for a test."""
    argv = repo_paths(argv_of(_substitute(command, sandbox)))
    subcommand = argv[0] if argv else ""
    if subcommand == "train" and "--resume" in argv:
        return argv + RESUME_EPOCHS + QUIET
    extra = SHORTER.get(subcommand, []) + [arg for name, epochs in LONGER.items() if name in command for arg in epochs]
    if subcommand == "train" and LANGUAGE_MODEL.search(command):
        extra += ["--set", "data.max_tokens=20000"]
    return argv + extra + (QUIET if subcommand in TRAINS else [])


LAB = "docs/lab/"  # worked experiments: each page's commands build on each other, so they run in order, together


UNIQUE_COMMANDS = sorted({command: where for where, command in documented_commands()
                          if not where.startswith(LAB)}.items())
LAB_PAGES = sorted({where.removesuffix(" (inline)") for where, _ in documented_commands() if where.startswith(LAB)})


@pytest.mark.parametrize(("command", "where"), UNIQUE_COMMANDS, ids=[c for c, _ in UNIQUE_COMMANDS])
def test_documented_command_runs(command: str, where: str, sandbox: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = _runnable(command, sandbox)
    code = main(argv)
    out, err = capsys.readouterr()
    if command in DOCUMENTED_ERRORS:
        assert code == 2 and DOCUMENTED_ERRORS[command] in err, f"{where}: `{command}` should fail as documented"
    else:
        assert code == 0, f"{where}: `{command}` (run as `trainlab {' '.join(argv)}`) failed:\n{out}\n{err}"


@pytest.mark.parametrize("page", LAB_PAGES)
def test_lab_page_runs(page: str, world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                       capsys: pytest.CaptureFixture[str]) -> None:
    """A worked experiment, command after command in one directory, as a reader follows it."""
    _link_world(world, tmp_path, monkeypatch)
    for where, command in documented_commands():
        if where.removesuffix(" (inline)") == page:  # the prose's inline commands come after the page's block
            code = main(_runnable(command, tmp_path))
            out, err = capsys.readouterr()
            assert code == 0, f"{page}: `{command}` failed:\n{out}\n{err}"


# Python snippets: the values they name, shortened like the commands.
PYTHON_SHORTER = {"epochs=5": "epochs=1", '"train.epochs": 10': '"train.epochs": 1', "trials=12": "trials=2"}


def _snippet_namespace(code: str) -> dict[str, object]:
    """The globals a snippet runs in.  A snippet headed ``# in trainlab/data/synthetic.py`` is an addition to that
    module and runs among its names; others get the names they use without defining (the reader's own batch)."""
    module = re.match(r"#\s*(?:in\s+)?(trainlab/[\w/]+)\.py", code)
    if module and (ROOT / f"{module.group(1)}.py").is_file():
        return dict(vars(importlib.import_module(module.group(1).replace("/", "."))))
    return {"__name__": "snippet", "model_ready_batch": torch.zeros(2, 1, 8, 8)}


SNIPPETS = python_snippets()


@pytest.mark.parametrize(("where", "code"), SNIPPETS, ids=[w for w, _ in SNIPPETS])
def test_documented_python_runs(where: str, code: str, sandbox: Path, registries_restored: None) -> None:
    for documented, shorter in PYTHON_SHORTER.items():
        code = code.replace(documented, shorter)
    code = code.replace("configs/", f"{ROOT.as_posix()}/configs/")
    namespace = _snippet_namespace(code)
    exec(compile(code, where, "exec"), namespace)  # noqa: S102 - the documented example itself
    for check in SNIPPET_CHECKS.get(where, []):
        check(namespace, sandbox)


@pytest.fixture
def registries_restored() -> None:
    """Snippets that show how to add a component register it; remove it again so other tests see the real zoo."""
    from trainlab.registry import REGISTRIES

    before = {kind: dict(registry._entries) for kind, registry in REGISTRIES.items()}
    yield
    for kind, registry in REGISTRIES.items():
        registry._entries.clear()
        registry._entries.update(before[kind])


def _check_new_model(namespace: dict[str, object], sandbox: Path) -> None:
    from trainlab.models import create

    model = create("tinynet-s", num_classes=10, in_channels=1, input_size=(8, 8), activation="relu", dropout=0.0)
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def _check_new_dataset(namespace: dict[str, object], sandbox: Path) -> None:
    assert main(["train", "--data", "xor", "--model", "mlp", "--epochs", "1", *QUIET]) == 0


def _check_new_callback(namespace: dict[str, object], sandbox: Path) -> None:
    assert main(["train", "--epochs", "2", "--set", "callbacks.target_metric.target=0.0", *QUIET]) == 0
    new_run = next(run for run in (sandbox / "runs").iterdir() if run.name not in RUN_ALIASES)
    assert "val_acc reached 0.0 at epoch 1" in (new_run / "summary.json").read_text()


def _check_new_command(namespace: dict[str, object], sandbox: Path) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="trainlab")
    namespace["register"](parser.add_subparsers())
    args = parser.parse_args(["status", "runs/NAME"])
    assert args.handler(args) == 0


def _check_passage_export(namespace: dict[str, object], sandbox: Path) -> None:
    """The documented text-to-ids steps and the exported classifier answer what predict answers."""
    from trainlab import load_run

    [prediction] = load_run(sandbox / "runs/austen-novels").predict([namespace["text"]])
    probabilities = namespace["probabilities"]
    assert namespace["meta"]["classes"][int(probabilities.argmax())] == prediction.label
    assert float(probabilities.max()) == pytest.approx(prediction.probability, rel=1e-5)


SNIPPET_CHECKS = {
    "docs/export.md python #2": [_check_passage_export],
    "docs/architecture.md python #1": [_check_new_model],
    "docs/architecture.md python #2": [_check_new_dataset],
    "docs/architecture.md python #3": [_check_new_callback],
    "docs/architecture.md python #4": [_check_new_command],
}


def test_every_example_kind_is_covered() -> None:
    """The collector finds the commands and snippets this test is meant to run (an empty list would pass)."""
    assert len(UNIQUE_COMMANDS) > 80 and len(SNIPPETS) >= 9 and len(LAB_PAGES) >= 8
    assert all(where in {w for w, _ in SNIPPETS} for where in SNIPPET_CHECKS)
