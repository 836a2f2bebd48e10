"""Every documented ``trainlab`` command is one a user can type (issue #16).

The examples (collected by tests/doc_examples.py from README.md, docs/*.md, the comments of configs/**/*.yaml and
every ``--help`` text) must each parse with the real argument parser, and every config (``-c``, ``configs/…``) or
search space they name must exist and load.  That check is cheap and in the default suite; three representative
examples also run here with their output checked in detail, and tests/test_documented_examples_run.py (slow) runs
every one of them.
"""

from __future__ import annotations

import argparse
import io
import itertools
import re
from pathlib import Path

import pytest
import yaml
from doc_examples import PLACEHOLDER_CONFIGS, ROOT, argv_of, documented_commands, parsers, repo_paths
from rich.console import Console

import trainlab.cli.common as cli_common
from trainlab import config as config_mod
from trainlab.cli import build_parser
from trainlab.experiments.space import load_space

COMMANDS = documented_commands()


def test_the_examples_are_found() -> None:
    """The collector itself: it sees the examples this issue is about (an empty list would pass everything)."""
    commands = {command for _, command in COMMANDS}
    assert len(COMMANDS) > 100
    assert "trainlab train" in commands
    assert "trainlab schedule plot -c configs/recipe/cosine-warmup.yaml" in commands
    assert "trainlab lr-find -c configs/recipe/sgd-momentum.yaml -o lr.png" in commands
    assert "trainlab kfold -c configs/digits.yaml --folds 3 --seed 1 --set optim.lr=0.01" in commands


@pytest.mark.parametrize(("where", "command"), COMMANDS, ids=[f"{w}: {c}" for w, c in COMMANDS])
def test_documented_command_parses(where: str, command: str) -> None:
    parser = build_parser()
    try:
        args = parser.parse_args(argv_of(command))
    except SystemExit as exit_:
        pytest.fail(f"{where}: `{command}` does not parse (exit {exit_.code})")
    assert getattr(args, "handler", None) is not None or args.command is None, f"{where}: `{command}` runs nothing"


def _named_configs(command: str) -> list[tuple[str, str]]:
    """(kind, path) of every config and search space a command names, placeholders replaced by repository files."""
    argv = argv_of(command)
    named = [("config", value) for option, value in itertools.pairwise(argv) if option in ("-c", "--config")]
    named += [("space", value) for option, value in itertools.pairwise(argv) if option == "--space"]
    named += [("file", token) for token in argv if token.startswith("configs/") and ("config", token) not in named
              and ("space", token) not in named]
    resolved = [(kind, PLACEHOLDER_CONFIGS.get(path, path)) for kind, path in named]
    return [(kind, path) for kind, path in resolved if path is not None]


CONFIG_COMMANDS = [(where, command) for where, command in COMMANDS if _named_configs(command)]


@pytest.mark.parametrize(("where", "command"), CONFIG_COMMANDS, ids=[f"{w}: {c}" for w, c in CONFIG_COMMANDS])
def test_documented_configs_exist_and_load(where: str, command: str) -> None:
    for kind, path in _named_configs(command):
        file = ROOT / path
        assert file.is_file(), f"{where}: `{command}` names {path}, which is not in the repository"
        if kind == "space":
            _check_space_fits(command, file)
        else:
            config_mod.load(file)  # raises ConfigError naming the key if the recipe is invalid


def _check_space_fits(command: str, space_file: Path) -> None:
    """Every key of the search space is an option of the config the documented search starts from (a space naming
    optim.momentum with the default adam failed with `optim.momentum: not an option of optimizer 'adam'`)."""
    args = build_parser().parse_args(repo_paths(argv_of(command)))
    base = config_mod.load(args.config, flags={"model": args.model, "data": args.data, "epochs": args.epochs},
                           overrides=args.overrides)
    space = load_space(space_file)
    config_mod.load(overrides={param.key: param.example() for param in space}, base=base.to_dict())


@pytest.mark.parametrize("recipe", sorted((ROOT / "configs").rglob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(recipe: Path) -> None:
    """A recipe, or a search space whose keys are valid for the config it is documented with."""
    if "space" in recipe.name:
        space = load_space(recipe)
        cfg = config_mod.load(ROOT / "configs/digits.yaml")
        config_mod.load(overrides={p.key: p.example() for p in space}, base=cfg.to_dict())
    else:
        assert config_mod.load(recipe).data.name


def test_search_guide_space_forms_fit_the_config_it_names() -> None:
    """docs/experiments.md's second space block is for an SGD base config: every key, e.g. optim.momentum, is valid
    there (with the default adam it was `optim.momentum: not an option of optimizer 'adam'`)."""
    text = (ROOT / "docs/experiments.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)
    forms = next(block for block in blocks if "optim.momentum" in block)
    space = load_space(yaml.safe_load(forms))
    base = config_mod.load(ROOT / "configs/recipe/sgd-momentum.yaml")
    config_mod.load(overrides={p.key: p.example() for p in space}, base=base.to_dict())


# ---- help texts ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("parser", parsers(), ids=lambda p: p.prog)
def test_help_shows_each_default_once_and_never_none(parser: argparse.ArgumentParser) -> None:
    formatter = parser._get_formatter()
    for action in parser._actions:
        if not action.help or action.help == argparse.SUPPRESS:
            continue
        text = formatter._expand_help(action)
        where = f"`{parser.prog} --help`, {'/'.join(action.option_strings) or action.dest}: {text!r}"
        assert text.lower().count("default") <= 1, f"default given twice in {where}"
        assert "(default: None)" not in text and "(default: False)" not in text and "(default: [])" not in text, where
    assert "(default: None)" not in parser.format_help()


def test_help_keeps_real_defaults() -> None:
    """Only meaningless defaults are dropped: a real one is still shown, once, and a help text that explains its
    own default gets no second one."""
    helps = {parser.prog: " ".join(parser.format_help().split()) for parser in parsers()}
    assert helps["trainlab compare"].count("(default: compare)") == 1
    assert "--out OUT directory that holds run directories (default: runs) --init-from" in helps["trainlab train"]


# ---- three documented examples, run (shortened) ----------------------------------------------------------------

FAST = ["--set", "callbacks.progress.style=none", "--set", "callbacks.plot_curves=null"]
LONG_NAME = "simple-cnn-digits-a-long-documented-run-name-20261201"


def _documented(prefix: str) -> list[str]:
    """The argv of the first documented command starting with ``prefix``: the test runs what the docs say."""
    command = next(command for _, command in COMMANDS if command.startswith(prefix))
    return repo_paths(argv_of(command))


def test_readme_train_example_runs_and_lists_its_full_name(run_cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    argv = _documented("trainlab train")
    assert argv == ["train"]  # README: the first command after installing
    code, out, err = run_cli(*argv, "--epochs", "1", "--name", LONG_NAME, *FAST)
    assert code == 0, err
    assert f"run saved in runs/{LONG_NAME}" in " ".join(out.split())

    code, out, _ = run_cli("runs")  # piped (captured): tab-separated, every value whole
    lines = out.splitlines()
    assert lines[0].split("\t") == ["name", "model", "data", "best", "test", "epochs", "time", "status"]
    row = lines[1].split("\t")
    assert code == 0 and row[:3] == [LONG_NAME, "simple-cnn", "digits"] and row[-1] == "completed"
    assert not set(out) & set("│┃━─…")

    screen = io.StringIO()  # an 80-column terminal: the name is never cut to `simple-cnn-dig…`
    monkeypatch.setattr(cli_common, "console", Console(file=screen, force_terminal=True, width=80, color_system=None))
    assert run_cli("runs")[0] == 0
    assert LONG_NAME in screen.getvalue() and "…" not in screen.getvalue()


def test_schedule_plot_example_runs(run_cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    argv = _documented("trainlab schedule plot -c configs/recipe/cosine-warmup.yaml")
    code, out, err = run_cli(*argv)
    assert code == 0, err
    assert (tmp_path / "lr_schedule.png").read_bytes().startswith(b"\x89PNG")
    assert "first lr" in out and "max 0.1," in out  # warmup rises to the recipe's lr 0.1


def test_search_example_runs(run_cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    argv = _documented("trainlab search -c configs/digits.yaml --space configs/digits-space.yaml --trials")
    argv[argv.index("--trials") + 1] = "2"
    code, out, err = run_cli(*argv, "--set", "train.epochs=1", *FAST)
    assert code == 0, err
    header = "number\tstate\tval_acc\toptim.lr\toptim.weight_decay\ttrain.batch_size\tseconds\terror"
    assert f"search: val_acc (best first)\n{header}\n" in out  # piped: whole column names, no `optim.…`
    search = tmp_path / "runs" / "search-simple-cnn-digits"
    assert "error" not in err and (search / "trials.csv").read_text().count("COMPLETE") == 2
    best = config_mod.load(search / "best.yaml")  # `trainlab train -c <out>/<name>/best.yaml` loads
    assert best.model.name == "simple-cnn" and best.optim.lr in (0.001, 0.003, 0.01)
