"""``trainlab compare``: runs side by side — overlaid curves, a metrics table, and what differs in their configs.

Run arguments may be run directories, or directories of runs (a search, a k-fold run, ``runs/``), which
expand to the runs inside them.
"""

from __future__ import annotations

import html
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
    if len(found) < 2:
        raise ValueError(f"compare needs at least two runs, found {len(found)} in {', '.join(map(str, paths))}")
    return found


def labels(runs: Sequence[Path]) -> list[str]:
    """Directory names, prefixed by the parent where two runs share a name (fold-1 of two k-fold runs)."""
    names = [p.name for p in runs]
    return [f"{p.parent.name}/{p.name}" if names.count(p.name) > 1 else p.name for p in runs]


def config_diff(runs: Sequence[Path]) -> pd.DataFrame:
    """The config keys whose values are not the same in every run (a key missing from a run counts as differing)."""
    import yaml

    flats = [flatten(yaml.safe_load((p / rundir.CONFIG_FILE).read_text()) or {}) for p in runs]
    keys = sorted({k for flat in flats for k in flat} - set(IGNORED_KEYS))
    missing = object()
    rows = []
    for key in keys:
        values = [flat.get(key, missing) for flat in flats]
        if any(v != values[0] for v in values[1:]):
            rows.append({"key": key, **{name: "(unset)" if v is missing else _text(v)
                                         for name, v in zip(labels(runs), values)}})
    return pd.DataFrame(rows, columns=["key", *labels(runs)])


def _text(value: Any) -> str:
    return "null" if value is None else str(value)


def metrics_row(run: Path) -> dict[str, Any]:
    """Best and final metrics, test metrics, time and throughput of one run."""
    summary_path = run / rundir.SUMMARY_FILE
    summary = rundir.read_summary(run) if summary_path.is_file() else {}
    row: dict[str, Any] = {"model": summary.get("model"), "data": summary.get("data"),
                           "status": summary.get("status", "unknown"), "epochs": summary.get("epochs_completed"),
                           "params": summary.get("params")}
    row.update({f"best {k}": v.get("value") for k, v in summary.get("best", {}).items()})
    final = summary.get("final", {})
    row.update({f"final {k}": v for k, v in final.items() if k.startswith(("train_", "val_"))})
    row.update(summary.get("test", {}))
    row["train_seconds"] = summary.get("train_seconds")
    history = _history(run)
    row["examples_per_s"] = sum(r["examples_per_s"] for r in history) / len(history) if history and \
        "examples_per_s" in history[0] else None
    return row


def _history(run: Path) -> list[dict[str, Any]]:
    path = run / rundir.METRICS_FILE
    if not path.is_file() or path.stat().st_size == 0:
        return []
    return [{k: v for k, v in row.items() if pd.notna(v)} for row in pd.read_csv(path).to_dict("records")]


def compare(paths: Sequence[str | Path], out: str | Path | None = None) -> Comparison:
    """Compare runs; with ``out``, write compare.png, compare.csv, config_diff.csv and compare.html there."""
    runs = expand_runs(paths)
    names = labels(runs)
    table = pd.DataFrame([{"run": n, **metrics_row(r)} for n, r in zip(names, runs)])
    diff = config_diff(runs)
    if out is None:
        return Comparison(runs, table, diff, None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    histories = {n: _history(r) for n, r in zip(names, runs)}
    with atomic.atomic_path(out / rundir.COMPARE_PLOT_FILE) as tmp:
        plot_compare(histories, tmp)
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
