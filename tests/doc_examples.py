"""Collecting the documented examples: every ``trainlab …`` command and every Python snippet of README.md, docs/*.md,
the comments of configs/**/*.yaml and every ``--help`` text (issue #16).

Shared by tests/test_documented_examples.py (each command parses, each config it names loads) and
tests/test_documented_examples_run.py (each example runs).
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

from trainlab.cli import build_parser

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
    "runs/NAME/config.yaml": None,  # a run's saved config; the examples run test trains it from a run's copy
    "runs/lab-grid/best.yaml": None,  # written by the search of docs/lab/grid-vs-random.md, which runs it
}
# Usage synopses, not commands: brackets and KEY=VALUE ... describe the syntax.
SYNOPSES = {
    "trainlab summary MODEL [--input 1x28x28] [--classes N] [-o KEY=VALUE ...] [--layers PATTERN] [--csv FILE]",
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


def parsers() -> list[argparse.ArgumentParser]:
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
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        found += _from_text(doc.read_text(encoding="utf-8"), doc.relative_to(ROOT).as_posix(), fenced=True)
    for recipe in sorted((ROOT / "configs").rglob("*.yaml")):
        comments = [re.sub(r"^#\s*(Run:)?", "", line) for line in recipe.read_text().splitlines() if line.startswith("#")]
        found += _from_text("\n".join(comments), recipe.relative_to(ROOT).as_posix(), fenced=False)
    for parser in parsers():
        for text in (parser.description, parser.epilog):
            found += _from_text(text or "", f"{parser.prog} --help", fenced=False)
    return [(where, command) for where, command in found if command not in SYNOPSES]


PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", flags=re.DOTALL)


def python_snippets() -> list[tuple[str, str]]:
    """(where, code) of every ```python block in README.md and docs/*.md."""
    found = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for number, code in enumerate(PYTHON_BLOCK.findall(doc.read_text(encoding="utf-8")), start=1):
            found.append((f"{doc.relative_to(ROOT).as_posix()} python #{number}", code))
    return found


def argv_of(command: str) -> list[str]:
    """The arguments after ``trainlab`` of a documented command, as a shell would split them."""
    return shlex.split(command, comments=True)[1:]


def repo_paths(argv: list[str]) -> list[str]:
    """Documented commands name configs (and example model files) relative to the repository; the tests run in a
    temporary directory."""
    return [str(ROOT / arg) if arg.startswith(("configs/", "examples/")) else arg for arg in argv]
