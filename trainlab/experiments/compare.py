"""``trainlab compare``: runs side by side — overlaid curves, a metrics table, and what differs in their configs.

Run arguments may be run directories, or directories of runs (a search, a k-fold run, ``runs/``), which
expand to the runs inside them; a run reached twice is compared once.  One damaged run does not stop a
comparison: a ``summary.json`` that cannot be read makes its row say ``unreadable: …``, and a run without a
finished epoch (empty or missing ``metrics.csv``) is left out of the figure with a notice.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from trainlab import atomic, rundir
from trainlab.config import flatten
from trainlab.report.html import page, png_data_uri
from trainlab.report.html import table as html_table
from trainlab.report.plots import plot_compare

IGNORED_KEYS = ("train.name", "train.out")  # differ between any two runs and say nothing about them

logger = logging.getLogger(__name__)


@dataclass
class Comparison:
    runs: list[Path]
    table: pd.DataFrame  # one row per run
    diff: pd.DataFrame  # one row per differing config key, one column per run
    out: Path | None


def expand_runs(paths: Sequence[str | Path]) -> list[Path]:
    """Run directories named directly, or found one level inside the directories given."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        inner = rundir.find_runs(path)
        if (path / rundir.CONFIG_FILE).is_file() and not inner:
            found.append(path)
        elif inner:
            found.extend(inner)
        else:
            raise rundir.RunDirError(f"{path} is neither a run directory nor a directory of runs")
    found = _once_each(found)
    if len(found) < 2:
        raise ValueError(f"compare needs at least two different runs, found {len(found)} in "
                         f"{', '.join(map(str, paths))}")
    return found


def _once_each(runs: list[Path]) -> list[Path]:
    """The runs in order, each once: the same directory named twice (or directly and through its parent) would
    be one curve drawn twice and two identical table rows."""
    seen: dict[Path, Path] = {}
    for run in runs:
        key = run.resolve()
        if key in seen:
            logger.info("%s is the same run as %s; comparing it once", run, seen[key])
        else:
            seen[key] = run
    return list(seen.values())


def labels(runs: Sequence[Path]) -> list[str]:
    """Directory names, prefixed by the parent where two runs share a name (fold-1 of two k-fold runs), or the
    whole path where even that is shared: every label is distinct, so no curve or column hides another."""
    names = [p.name for p in runs]
    short = [f"{p.parent.name}/{p.name}" if names.count(p.name) > 1 else p.name for p in runs]
    return [str(p) if short.count(label) > 1 else label for p, label in zip(runs, short)]


def config_diff(runs: Sequence[Path]) -> pd.DataFrame:
    """The config keys whose values are not the same in every run (a key missing from a run counts as differing)."""
    flats = [flatten(_saved_config(p)) for p in runs]
    keys = sorted({k for flat in flats for k in flat} - set(IGNORED_KEYS))
    missing = object()
    rows = []
    for key in keys:
        values = [flat.get(key, missing) for flat in flats]
        if any(v != values[0] for v in values[1:]):
            rows.append({"key": key, **{name: "(unset)" if v is missing else _text(v)
                                         for name, v in zip(labels(runs), values)}})
    return pd.DataFrame(rows, columns=["key", *labels(runs)])


def _saved_config(run: Path) -> dict[str, Any]:
    """config.yaml as a mapping, as saved (not validated: an older run's keys still compare); a file that is not a
    YAML mapping is an error naming it."""
    import yaml

    path = run / rundir.CONFIG_FILE
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise rundir.RunDirError(f"{path} is not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(tree, dict):
        raise rundir.RunDirError(f"{path} holds a {type(tree).__name__}, not the config mapping trainlab writes")
    return tree


def _text(value: Any) -> str:
    return "null" if value is None else str(value)


def readable_summary(run: Path) -> tuple[dict[str, Any], str | None]:
    """A run's summary.json (empty if it has none) and, when it cannot be read, what is wrong with it instead of
    an exception: listings and comparisons show that run as ``unreadable: …`` and go on with the others."""
    try:
        summary = rundir.read_summary(run) if (run / rundir.SUMMARY_FILE).is_file() else {}
    except rundir.DamagedFileError as err:
        return {}, f"{err.path.name} {err.problem}"
    except (rundir.RunDirError, OSError) as err:
        return {}, f"{rundir.SUMMARY_FILE} cannot be read ({err})"
    return summary, None


def metrics_row(run: Path, history: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Best and final metrics, test metrics, time and throughput (from ``history``, read from metrics.csv if not
    given) of one run; status ``unreadable: …`` and no metrics when its summary.json cannot be read."""
    summary, problem = readable_summary(run)
    if problem is None:
        try:
            return _summary_metrics(summary, history_of(run) if history is None else history)
        except (AttributeError, KeyError, TypeError, ValueError) as err:  # valid JSON, but not the values we wrote
            problem = f"{rundir.SUMMARY_FILE} holds unexpected values ({type(err).__name__}: {err})"
    logger.warning("%s: %s", run, problem)
    return {"model": None, "data": None, "status": f"unreadable: {problem}", "epochs": None, "params": None}


def _summary_metrics(summary: dict[str, Any], history: Sequence[dict[str, Any]]) -> dict[str, Any]:
    row: dict[str, Any] = {"model": summary.get("model"), "data": summary.get("data"),
                           "status": summary.get("status", "unknown"), "epochs": summary.get("epochs_completed"),
                           "params": summary.get("params")}
    row.update({f"best {k}": v.get("value") for k, v in summary.get("best", {}).items()})
    final = summary.get("final", {})
    row.update({f"final {k}": v for k, v in final.items() if k.startswith(("train_", "val_"))})
    row.update(summary.get("test", {}))
    row["train_seconds"] = summary.get("train_seconds")
    speeds = [r.get("examples_per_s") for r in history]
    row["examples_per_s"] = sum(speeds) / len(speeds) if speeds and None not in speeds else None
    return row


def history_of(run: Path) -> list[dict[str, Any]]:
    """metrics.csv as one dict per finished epoch; [] for none, and for a file that is not such a table (with a
    warning naming it), so one damaged run does not stop the comparison of the others."""
    path = run / rundir.METRICS_FILE
    if not path.is_file() or path.stat().st_size == 0:
        return []
    try:
        frame = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError) as err:  # pandas' ParserError and EmptyDataError are ValueErrors
        logger.warning("%s is not a metrics table trainlab wrote (%s); its curves are left out", path,
                       str(err).strip())
        return []
    if "epoch" not in frame.columns:
        logger.warning("%s has no epoch column; its curves are left out", path)
        return []
    return [{k: v for k, v in row.items() if pd.notna(v)} for row in frame.to_dict("records")]


def task_of(run: Path) -> str | None:
    """classification or regression, from summary.json or else data.json; None when neither says."""
    summary, _ = readable_summary(run)
    if isinstance(summary.get("task"), str):
        return summary["task"]
    try:
        return rundir.read_data_meta(run).task
    except (rundir.RunDirError, OSError, ValueError):
        return None


def _plotted(histories: dict[str, list[dict[str, Any]]], runs: Sequence[Path]) -> dict[str, list[dict[str, Any]]]:
    """The histories to draw: runs without a finished epoch are left out with a notice; none at all is an error."""
    empty = [n for n, rows in histories.items() if not rows]
    if len(empty) == len(histories):
        raise ValueError(f"none of the runs has a finished epoch ({rundir.METRICS_FILE} empty or missing in "
                         f"{', '.join(map(str, runs))}): there are no curves to compare")
    if empty:
        logger.info("left out of the figure, no finished epoch in %s: %s", rundir.METRICS_FILE, ", ".join(empty))
    return {n: rows for n, rows in histories.items() if rows}


def _note_mixed_tasks(tasks: dict[str, str | None]) -> None:
    """Classification and regression losses are not on one scale: say which runs are which (the figure draws
    each task's loss on its own axes)."""
    groups: dict[str, list[str]] = {}
    for name, task in tasks.items():
        groups.setdefault(task or "unknown task", []).append(name)
    if len(groups) > 1:
        logger.warning("the runs mix tasks, whose losses are not comparable; drawing each task's loss on its own "
                       "axes: %s", "; ".join(f"{task}: {', '.join(names)}" for task, names in groups.items()))


def compare(paths: Sequence[str | Path], out: str | Path | None = None) -> Comparison:
    """Compare runs; with ``out``, write compare.png, compare.csv, config_diff.csv and compare.html there.

    With ``out``, at least one run must have a finished epoch to draw; the directory is made only then.
    """
    runs = expand_runs(paths)
    names = labels(runs)
    histories = {n: history_of(r) for n, r in zip(names, runs)}
    table = pd.DataFrame([{"run": n, **metrics_row(r, histories[n])} for n, r in zip(names, runs)])
    diff = config_diff(runs)
    if out is None:
        return Comparison(runs, table, diff, None)
    drawn = _plotted(histories, runs)
    tasks = {n: task_of(r) for n, r in zip(names, runs) if n in drawn}
    _note_mixed_tasks(tasks)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(out / rundir.COMPARE_PLOT_FILE) as tmp:
        plot_compare(drawn, tmp, tasks=tasks)
    rundir.write_csv(out / rundir.COMPARE_TABLE_FILE, table)
    rundir.write_csv(out / rundir.COMPARE_DIFF_FILE, diff)
    atomic.write_text(out / rundir.COMPARE_PAGE_FILE, _page(table, diff, out / rundir.COMPARE_PLOT_FILE))
    return Comparison(runs, table, diff, out)


def _page(table: pd.DataFrame, diff: pd.DataFrame, plot: Path) -> str:
    """compare.html: the same figure and tables, self-contained."""
    uri = png_data_uri(lambda buf: buf.write(plot.read_bytes()))
    records = table.astype(object).where(table.notna(), None)
    diff_html = html_table(list(diff.columns), diff.itertuples(index=False)) if not diff.empty else \
        '<p class="muted">the configs are identical</p>'
    return page("trainlab comparison", [
        ("curves", "Curves", f'<img alt="curves of the compared runs" src="{uri}">'),
        ("metrics", "Metrics", html_table(list(records.columns), records.itertuples(index=False))),
        ("config-diff", "Config differences", diff_html),
        ("runs", "Runs", "<ul>" + "".join(f"<li>{html.escape(str(r))}</li>" for r in table["run"]) + "</ul>"),
    ])
