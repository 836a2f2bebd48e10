"""Every documented ``trainlab`` command is one a user can type (issue #16).

The examples are collected from README.md, docs/*.md, the comments of configs/**/*.yaml and every ``--help``
description.  Each must parse with the real argument parser, and every config (``-c``, ``configs/…``) or search
space it names must exist and load.  That check is cheap; three representative examples also run for real (the
README's first ``trainlab train``, a ``schedule plot`` of a recipe, the search guide's search), shortened.
"""

from __future__ import annotations

import argparse
import io
import itertools
import re
import shlex
from pathlib import Path

import pytest
import yaml
from rich.console import Console

import trainlab.cli.common as cli_common
from trainlab import config as config_mod
from trainlab.cli import build_parser
from trainlab.experiments.space import load_space

ROOT = Path(__file__).resolve().parents[1]
COMMAND = re.compile(r"^\s*(?:\$ )?(?:python -m )?trainlab(?= )")
INLINE = re.compile(r"`([^`\n]+)`")

# Placeholders the docs use for files the reader supplies or a command writes, and the repository file that stands
# in for each when the example's config is loaded.  Other placeholders (DIR, runs/NAME, path/to/…, img.png) are
# arguments argparse accepts as they are, so parsing needs no substitute for them.
PLACEHOLDER_CONFIGS = {
    "CONFIG": "configs/digits.yaml",  # lr-find help: "train with the suggested LR: trainlab train -c CONFIG …"
    "x.yaml": "configs/digits.yaml",  # docs/architecture.md walks through `trainlab train -c x.yaml`
    "configs/recipe/NAME.yaml": "configs/recipe/mlp-baseline.yaml",  # docs/recipe.md: one of the ready recipes
    "<out>/<name>/best.yaml": None,  # written by `trainlab search`; test_search_example_runs loads a real one
}
# Usage synopses, not commands: brackets and KEY=VALUE ... describe the syntax.
SYNOPSES = {
    "trainlab summary MODEL [--input 1x28x28] [--classes 10] [-o KEY=VALUE ...] [--layers PATTERN] [--csv FILE]",
}


def _fenced_lines(text: str) -> list[str]:
    """Lines inside ``` code fences, backslash continuations joined."""
    lines, inside, pending = [], False, ""
    for line in text.splitlines():
        if line.strip().startswith("```"):
            inside = not inside
        elif inside and line.rstrip().endswith("\\"):
            pending += line.strip()[:-1].strip() + " "
        elif inside:
            lines.append(pending + line.strip())
            pending = ""
    return lines


def _command(line: str) -> str:
    """The command of an example line: without its prompt, and without the description that follows it after two or
    more spaces (help texts and docs align their explanations that way)."""
    line = re.sub(r"^\$ ", "", line.strip())
    return re.split(r"\s{2,}", line)[0].removeprefix("python -m ").strip()


def _names_a_config(text: str) -> bool:
    return bool(re.search(r"(^|\s)(-c|--config)\s|configs/", text))


def _from_text(text: str, where: str, fenced: bool) -> list[tuple[str, str]]:
    """Example commands of a document: every ``trainlab …`` line (of its code fences when ``fenced``), plus the inline
    `trainlab …` mentions that name a config (other inline mentions such as `trainlab eval` are references to a
    command in prose, not examples)."""
    lines = _fenced_lines(text) if fenced else text.splitlines()
    found = [(where, _command(line)) for line in lines if COMMAND.match(line)]
    found += [(f"{where} (inline)", _command(span)) for span in INLINE.findall(text)
              if COMMAND.match(span) and _names_a_config(span)]
    return found


def _parsers() -> list[argparse.ArgumentParser]:
    """The top-level parser and every (nested) subcommand parser, once each."""
    found, stack = [], [build_parser()]
    while stack:
        parser = stack.pop()
        found.append(parser)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                stack += list(dict.fromkeys(action.choices.values()))
    return found


def documented_commands() -> list[tuple[str, str]]:
    """(where, command) for every documented example, synopses left out."""
    found = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        found += _from_text(doc.read_text(encoding="utf-8"), doc.relative_to(ROOT).as_posix(), fenced=True)
    for recipe in sorted((ROOT / "configs").rglob("*.yaml")):
        comments = [re.sub(r"^#\s*(Run:)?", "", line) for line in recipe.read_text().splitlines() if line.startswith("#")]
        found += _from_text("\n".join(comments), recipe.relative_to(ROOT).as_posix(), fenced=False)
    for parser in _parsers():
        for text in (parser.description, parser.epilog):
            found += _from_text(text or "", f"{parser.prog} --help", fenced=False)
    return [(where, command) for where, command in found if command not in SYNOPSES]


COMMANDS = documented_commands()


def test_the_examples_are_found() -> None:
    """The collector itself: it sees the examples this issue is about (an empty list would pass everything)."""
    commands = {command for _, command in COMMANDS}
    assert len(COMMANDS) > 100
    assert "trainlab train" in commands
    assert "trainlab schedule plot -c configs/recipe/cosine-warmup.yaml" in commands
    assert "trainlab lr-find -c configs/recipe/sgd-momentum.yaml -o lr.png" in commands
    assert "trainlab kfold -c configs/digits.yaml --folds 3 --seed 1 --set optim.lr=0.01" in commands


def _argv(command: str) -> list[str]:
    return shlex.split(command, comments=True)[1:]


@pytest.mark.parametrize(("where", "command"), COMMANDS, ids=[f"{w}: {c}" for w, c in COMMANDS])
def test_documented_command_parses(where: str, command: str) -> None:
    parser = build_parser()
    try:
        args = parser.parse_args(_argv(command))
    except SystemExit as exit_:
        pytest.fail(f"{where}: `{command}` does not parse (exit {exit_.code})")
    assert getattr(args, "handler", None) is not None or args.command is None, f"{where}: `{command}` runs nothing"


def _named_configs(command: str) -> list[tuple[str, str]]:
    """(kind, path) of every config and search space a command names, placeholders replaced by repository files."""
    argv = _argv(command)
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
    args = build_parser().parse_args(_repo_paths(_argv(command)))
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

@pytest.mark.parametrize("parser", _parsers(), ids=lambda p: p.prog)
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
    helps = {parser.prog: " ".join(parser.format_help().split()) for parser in _parsers()}
    assert helps["trainlab compare"].count("(default: compare)") == 1
    assert "--out OUT directory that holds run directories (default: runs) --init-from" in helps["trainlab train"]


# ---- three documented examples, run (shortened) ----------------------------------------------------------------

FAST = ["--set", "callbacks.progress.style=none", "--set", "callbacks.plot_curves=null"]
LONG_NAME = "simple-cnn-digits-a-long-documented-run-name-20261201"


def _repo_paths(argv: list[str]) -> list[str]:
    """Documented commands name configs relative to the repository; the tests run in a temporary directory."""
    return [str(ROOT / arg) if arg.startswith("configs/") else arg for arg in argv]


def _documented(prefix: str) -> list[str]:
    """The argv of the first documented command starting with ``prefix``: the test runs what the docs say."""
    command = next(command for _, command in COMMANDS if command.startswith(prefix))
    return _repo_paths(_argv(command))


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
