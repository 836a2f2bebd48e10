"""Helpers shared by the subcommands: error reporting, the console, how library log messages are shown, and the
one rule for files the user names as outputs (:func:`check_output`)."""

from __future__ import annotations

import argparse
import csv
import logging
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from rich.console import Console
from rich.measure import Measurement
from rich.table import Column, Table
from rich.text import Text

from trainlab.config import ConfigError
from trainlab.data.images import InputError
from trainlab.engine.checkpoint import CheckpointError
from trainlab.registry import UnknownNameError
from trainlab.rundir import CONFIG_FILE, DATA_FILE, SUMMARY_FILE, RunDirError


class OutputError(ValueError):
    """An output path the command refuses to write: it would overwrite an input, a run's files, or a file this
    command did not write (see :func:`check_output`)."""


# Problems caused by user input: reported as one clear message with exit code 2, no traceback (unless --debug).
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError, UnknownNameError, RunDirError, CheckpointError, InputError, FileNotFoundError, ValueError,
)

console = Console(highlight=False)


class NoticeHandler(logging.Handler):
    """Shows the library's log records on stderr as ``notice: …`` (info) or ``warning: …`` (warnings and worse),
    writing to whatever ``sys.stderr`` is at that moment, so redirected or captured stderr gets them too.

    With ``--debug`` (the ``trainlab`` logger at DEBUG) a record's attached traceback is shown too, so a warning
    such as "report.html not written" can be traced to its cause."""

    PREFIXES = {logging.INFO: "notice", logging.WARNING: "warning", logging.ERROR: "error", logging.CRITICAL: "error"}

    def emit(self, record: logging.LogRecord) -> None:
        prefix = self.PREFIXES.get(record.levelno, "debug")
        print(f"{prefix}: {record.getMessage()}", file=sys.stderr, flush=True)
        if record.exc_info and logging.getLogger("trainlab").level <= logging.DEBUG:
            traceback.print_exception(*record.exc_info, file=sys.stderr)


def show_library_messages(level: int = logging.INFO) -> None:
    """Route the ``trainlab`` loggers to stderr (once per process): the CLI's choice, never the library's."""
    logger = logging.getLogger("trainlab")
    if not any(isinstance(h, NoticeHandler) for h in logger.handlers):
        logger.addHandler(NoticeHandler())
    logger.setLevel(level)


def fail(err: BaseException, code: int = 2, debug: bool = False) -> int:
    """Print ``error: …`` on stderr (after the traceback with ``debug``) and return the exit code."""
    if debug:
        traceback.print_exception(err, file=sys.stderr)
    print(f"error: {err}", file=sys.stderr)
    return code


def print_table(columns: Sequence[str], rows: Iterable[Sequence[object]], *, title: str | None = None) -> None:
    """Print a table that never cuts a value (rich's default narrowed columns to ``mlp-dig…`` at 80 columns).

    Piped or redirected (stdout not a terminal): tab-separated plain text, the title (if any) on the line before one
    header line, no box-drawing characters and no wrapping, so ``grep``, ``cut -f`` and ``awk -F'\\t'`` see every
    value whole.  On a terminal: a rich table when it fits the width at its natural size (nothing narrowed), else
    the same rows as space-aligned columns whose long lines the terminal wraps.
    """
    header = [_plain_cell(column) for column in columns]
    cells = [[_plain_cell(value) for value in row] for row in rows]
    titled = [title] if title else []
    if not console.is_terminal:
        lines = [*titled, "\t".join(header), *("\t".join(row) for row in cells)]
        print("\n".join(lines), file=console.file)  # not console.out: rich would expand the tabs to spaces
        return
    table = Table(*(Column(Text(column)) for column in header), title=title)
    for row in cells:
        table.add_row(*(Text(cell) for cell in row))  # Text: a value such as "[sgd]" is not read as markup
    if Measurement.get(console, console.options.update_width(1 << 20), table).maximum <= console.width:
        console.print(table)
    else:
        console.print(Text("\n".join([*titled, *_aligned(header, cells)])), soft_wrap=True)


def _aligned(header: list[str], cells: list[list[str]]) -> list[str]:
    """Header and rows as columns padded to their widest value, two spaces apart: a table too wide for the terminal
    that stays readable when the terminal wraps its lines."""
    rows = [header, *cells]
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(len(header))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]


def _plain_cell(value: object) -> str:
    """A cell as one line of text: tabs and line breaks would split a plain-text row."""
    return " ".join(str(value).split()) if any(c in str(value) for c in "\t\n\r") else str(value)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keep hand-written line breaks in descriptions and show each option's default once.

    argparse's ``ArgumentDefaultsHelpFormatter`` appends ``(default: …)`` to every option, which printed
    ``(default: None)`` for options that are simply not set, ``(default: False)`` for flags, and a second default
    after help texts that already explain theirs (``(default: runs) (default: None)``).  Here a default is shown
    only when it is a real value and the help text does not already say what happens by default.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if _shows_default(action) and "default" not in text.lower():
            text += " (default: %(default)s)"
        return text


def _shows_default(action: argparse.Action) -> bool:
    """Whether ``(default: X)`` tells the reader anything: not for unset options (None, SUPPRESS), on/off flags,
    empty repeatable lists, or positionals that must be given."""
    default = action.default
    if default is None or default is argparse.SUPPRESS or isinstance(default, bool) or default == []:
        return False
    return bool(action.option_strings) or action.nargs in ("?", "*")


# ---------------------------------------------------------------------------------------------------------------
# Outputs never overwrite inputs.
#
# Every option that writes a file or directory the user names (predict --out, summary --csv, lr-find -o,
# schedule plot -o, compare --out) goes through check_output before anything is written.  Without --force it
# refuses a path that
#   (a) is one of the command's inputs (the same file, also through a link),
#   (b) lies inside a run directory (it or a folder above it holds config.yaml and data.json or summary.json):
#       trainlab reads those files, and a run whose data.json or config.yaml was overwritten no longer loads, or
#   (c) already exists and is not an earlier output of the same command: a CSV whose header is not exactly the
#       one this command writes, a PNG that matplotlib did not draw, a non-empty directory without compare.html.
# So rerunning a command with the same output path just works, while a typo that names something else does not
# destroy it.  A path that cannot be written at all (a directory where a file goes, a file where a directory
# goes) is refused even with --force; missing parent directories are created (make_parent) when writing.
# ---------------------------------------------------------------------------------------------------------------

FORCE_HELP = "overwrite the output even if it exists and was not written by this command, is one of the inputs, " \
             "or lies inside a run directory"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class OutputKind:
    """What a command writes, so that its own earlier output is recognised and may be replaced."""

    description: str  # for the refusal: "it already exists and is not <description>"
    matches: Callable[[Path], bool]  # whether an existing path is such an earlier output
    directory: bool = False  # the output is a directory that the command fills


def csv_output(columns: Sequence[object]) -> OutputKind:
    """A CSV file whose header row is exactly ``columns``."""
    header = [str(c) for c in columns]
    return OutputKind(f"a CSV this command wrote (header {','.join(header)})", lambda p: _csv_header(p) == header)


def _csv_header(path: Path) -> list[str] | None:
    """The first row of a CSV file, or None if it is not readable text."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return next(csv.reader([handle.readline(1 << 16)]), None)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def _matplotlib_png(path: Path) -> bool:
    """A PNG whose ``Software`` text chunk (within the first KB) says matplotlib drew it, as every trainlab
    figure is."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(1024)
    except OSError:
        return False
    return head.startswith(PNG_SIGNATURE) and b"tEXtSoftware\x00Matplotlib" in head


PNG_OUTPUT = OutputKind("a PNG figure drawn by matplotlib", _matplotlib_png)


def directory_output(marker: str) -> OutputKind:
    """A directory the command fills; an empty one, or one holding ``marker`` (written last), was its own."""
    return OutputKind(f"an empty directory or one holding {marker}",
                      lambda p: p.is_dir() and (not any(p.iterdir()) or (p / marker).is_file()), directory=True)


def check_output(path: str | Path, kind: OutputKind, inputs: Iterable[str | Path | None] = (), force: bool = False,
                 option: str = "--out") -> Path:
    """``path`` as a Path if the command may write it, else :class:`OutputError` naming the path and the reason.

    The one rule for user-named outputs (see the comment above): (a) not an input, (b) not inside a run
    directory, (c) not an existing file or directory that this command did not write; ``force`` lifts all
    three.  A path whose type is wrong (a directory where a file goes, or a file above it) is refused regardless.
    """
    path = Path(path)
    _check_writable(path, kind, option)
    if force:
        return path
    reason = _same_as_input(path, inputs) or _inside_run(path) or _foreign_existing(path, kind)
    if reason:
        raise OutputError(f"refusing to write {path}: {reason}; choose another {option}, or pass --force to "
                          "overwrite it")
    return path


def _check_writable(path: Path, kind: OutputKind, option: str) -> None:
    if kind.directory:
        if path.exists() and not path.is_dir():
            raise OutputError(f"{option} {path} is a file; {option} names a directory to write into")
        return
    if path.is_dir():
        raise OutputError(f"{option} {path} is a directory; give a file name, e.g. {path / 'out'}")
    existing = next(folder for folder in (path.parent, *path.parent.parents) if folder.exists())
    if not existing.is_dir():
        raise OutputError(f"cannot write {option} {path}: {existing} is a file, not a directory")


def make_parent(path: Path) -> Path:
    """Create the missing directories above an output that :func:`check_output` accepted; returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _same_as_input(path: Path, inputs: Iterable[str | Path | None]) -> str | None:
    for given in inputs:
        if given is None:
            continue
        other = Path(given)
        if _same_path(path, other):
            return f"it is one of this command's inputs ({other})"
    return None


def _same_path(a: Path, b: Path) -> bool:
    """The same file or directory: equal once resolved, or the same inode (a hard link) when both exist."""
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def is_run_directory(folder: Path) -> bool:
    """A run, fold or k-fold directory trainlab wrote: config.yaml beside data.json or summary.json.

    config.yaml alone is not enough: it is a common name for a project's own settings, and refusing every output
    anywhere below such a project would make the rule useless.
    """
    return (folder / CONFIG_FILE).is_file() and ((folder / DATA_FILE).is_file() or (folder / SUMMARY_FILE).is_file())


def _inside_run(path: Path) -> str | None:
    """The run directory that ``path`` is, or lies inside of."""
    resolved = path.resolve()
    for folder in (resolved, *resolved.parents):
        if is_run_directory(folder):
            where = "is the run directory" if folder == resolved else "lies inside the run directory"
            return f"it {where} {folder}, whose files trainlab reads"
    return None


def _foreign_existing(path: Path, kind: OutputKind) -> str | None:
    if not path.exists() or kind.matches(path):
        return None
    return f"it already exists and is not {kind.description}"


def add_force_flag(parser: argparse.ArgumentParser) -> None:
    """``--force``: lift :func:`check_output`'s refusals for this command's outputs."""
    parser.add_argument("--force", action="store_true", help=FORCE_HELP)


def check_name(name: str | None, option: str = "--name") -> None:
    """A directory name given on the command line must stay one directory: no path separator, not ``.``/``..``,
    so it can never write outside the directory it is meant to be created in."""
    if name is None:
        return
    separators = {"/", os.sep, *(os.altsep or "")}
    if not name.strip() or name.strip(".") == "" or any(s in name for s in separators):
        raise ValueError(f"{option} '{name}' must be a plain directory name (letters, digits, '.', '_', '-'), not a "
                         "path; choose where it goes with --out")


def check_runs_root(out: str | None, option: str = "--out") -> None:
    """The directory that will hold new run directories: not a file, and not inside a run directory (a run
    nested in another is hidden from ``trainlab runs`` and would be mistaken for the outer run's content)."""
    if out is None:
        return
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path} is a file; {option} names the directory that holds run directories")
    inside = _inside_run(path)
    if inside:
        raise ValueError(f"{option} {path} {inside.removeprefix('it ')}; new runs go in a directory of runs such "
                         "as runs/, not inside a run")
