"""report.html: one self-contained page per run (config, curves, metrics, confusion matrix, model summary).

Self-contained means no network and no sibling files: figures are PNGs embedded as base64 data URIs and the
style sheet is inline, so the page can be mailed, archived or opened from a CI artifact as is.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import math
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, Tuple

import numpy as np

from trainlab import atomic, rundir
from trainlab.inspect import summary as layer_summary
from trainlab.report import evaluation, plots
from trainlab.run import Run

logger = logging.getLogger(__name__)

# (targets, predicted classes) of the best weights on the test split, handed in by whoever computed them
Predictions = Tuple[np.ndarray, np.ndarray]

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .5em 0; } td, th { border: 1px solid #ddd; padding: .25em .6em; }
th { background: #f4f4f4; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; } pre { background: #f8f8f8; padding: 1em; overflow-x: auto; }
.muted { color: #777; }
"""

def png_data_uri(draw: Callable[[io.BytesIO], Any]) -> str:
    """Render a figure into memory and return it as a ``data:image/png;base64,…`` URI."""
    buffer = io.BytesIO()
    draw(buffer)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")

def fmt(value: Any) -> str:
    """Numbers to 4 significant digits, accuracies left as fractions; everything else as text."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "" if value is None else str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:.4g}"

def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """An escaped HTML table; numeric cells right-aligned."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{html.escape(fmt(c))}</td>' if isinstance(c, (int, float)) and not isinstance(c, bool)
            else f"<td>{html.escape(fmt(c))}</td>" for c in row)
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"

def page(title: str, sections: Sequence[tuple[str, str, str]]) -> str:
    """A full HTML document from ``(id, heading, inner html)`` sections."""
    parts = [f'<section id="{sid}"><h2>{html.escape(heading)}</h2>{inner}</section>'
             for sid, heading, inner in sections]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
            f"<body><h1>{html.escape(title)}</h1>{''.join(parts)}</body></html>\n")

def _overview(summary: Mapping[str, Any]) -> str:
    keys = ("status", "stop_reason", "model", "data", "task", "params", "epochs_completed", "steps", "train_seconds",
            "wall_seconds", "device", "precision", "seed")
    rows = [(k, summary[k]) for k in keys if summary.get(k) is not None]
    rows += [(f"version {k}", v) for k, v in summary.get("versions", {}).items()]
    return table(("field", "value"), rows)

def _metrics(summary: Mapping[str, Any]) -> str:
    final = {k: v for k, v in summary.get("final", {}).items() if k != "epoch"}
    best = summary.get("best", {})
    test = summary.get("test", {})
    keys = sorted(set(final) | set(best) | set(test))
    rows = [(k, final.get(k), best.get(k, {}).get("value"), best.get(k, {}).get("epoch"), test.get(k)) for k in keys]
    return table(("metric", "final epoch", "best", "best epoch", _test_label(summary)), rows)

def _test_label(summary: Mapping[str, Any]) -> str:
    """Say whose test metrics these are: the checkpoint training evaluated (usually ``best-…``, the weights eval
    and predict use), or the fold ensemble of a k-fold directory."""
    if summary.get("test_checkpoint"):
        return f"test ({summary['test_checkpoint']})"
    return "test (fold ensemble)" if summary.get("kind") == "kfold" else "test"

def _curves(run_dir: Path, history: Sequence[Mapping[str, Any]]) -> str:
    """The run's curves.png when the plot_curves callback drew it (no second rendering), else drawn here."""
    if not history:
        return '<p class="muted">no completed epoch</p>'
    drawn = run_dir / rundir.CURVES_FILE
    if drawn.is_file() and drawn.stat().st_mtime >= (run_dir / rundir.METRICS_FILE).stat().st_mtime:
        uri = "data:image/png;base64," + base64.b64encode(drawn.read_bytes()).decode("ascii")
    else:
        uri = png_data_uri(lambda buf: plots.plot_history(history, buf))
    return f'<img alt="training curves" src="{uri}">'

def confusion_table(matrix: np.ndarray, classes: Sequence[str]) -> str:
    """The confusion matrix as an HTML heat map (true class down, predicted across), shaded by row rate.

    A table rather than a picture: exact counts stay selectable text and it costs no figure rendering.
    """
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    head = "<th>true ↓ predicted →</th>" + "".join(f"<th>{html.escape(c)}</th>" for c in classes)
    rows = []
    for i, name in enumerate(classes):
        cells = "".join(
            f'<td class="num" style="background: rgba(31, 119, 180, {rates[i, j]:.2f});'
            f'{" color: white;" if rates[i, j] > 0.5 else ""}">{matrix[i, j] or ""}</td>' for j in range(len(classes)))
        rows.append(f"<tr><th>{html.escape(name)}</th>{cells}</tr>")
    return f'<table class="confusion"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _confusion(run_dir: Path, predictions: Predictions | None, classes: Sequence[str] | None,
               rebuild: bool) -> str | None:
    found = Run(run_dir).test_predictions() if predictions is None and rebuild else predictions
    if found is None:
        return None
    targets, preds = found
    n = len(classes) if classes else int(max(targets.max(), preds.max())) + 1
    names = list(classes) if classes else [str(i) for i in range(n)]
    matrix = evaluation.confusion_matrix(targets, preds, n)
    rows = evaluation.per_class_accuracy(matrix, names)
    accuracy = float(matrix.trace() / max(matrix.sum(), 1))
    return (f"<p>best weights on the test split: accuracy {accuracy:.2%} over {int(matrix.sum())} examples</p>"
            + confusion_table(matrix, names) + "<h3>Per-class accuracy</h3>"
            + table(("class", "support", "correct", "accuracy"), [tuple(r.values()) for r in rows]))


def _folds(run_dir: Path, summary: Mapping[str, Any]) -> str | None:
    """For a k-fold directory: the per-fold table, mean ± std, the ensemble's test metrics, links to the folds."""
    path = run_dir / rundir.FOLDS_TABLE
    if summary.get("kind") != "kfold" or not path.is_file():
        return None
    import pandas as pd

    frame = pd.read_csv(path)
    frame = frame.astype(object).where(frame.notna(), None)
    mean, std = summary.get("mean", {}), summary.get("std", {})
    agg = table(("metric", "mean", "std"), [(k, v, std.get(k)) for k, v in mean.items()])
    test = summary.get("test")
    ensemble = table(("metric", "fold ensemble on test"), list(test.items())) if test else ""
    links = "".join(f'<li><a href="{html.escape(n)}/{rundir.REPORT_FILE}">{html.escape(n)}</a></li>'
                    for n in frame["fold"].map(lambda i: f"fold-{i}"))
    return (table(list(frame.columns), frame.itertuples(index=False)) + "<h3>Over folds</h3>" + agg
            + ensemble + f"<h3>Fold reports</h3><ul>{links}</ul>")


def _model_summary(run_dir: Path, summary: Mapping[str, Any]) -> str:
    """The per-layer table of :mod:`trainlab.inspect` when it is available, else the parameter count."""
    params = f"<p>{fmt(summary.get('params'))} parameters</p>" if summary.get("params") is not None else ""
    if summary.get("kind") == "kfold":
        return params or '<p class="muted">one model per fold: see the fold reports</p>'
    try:
        run = Run(run_dir)
        frame = layer_summary(run.load_model(), tuple(run.meta.input_shape))
        return params + frame.to_html(index=False, border=0)
    except Exception as err:  # noqa: BLE001  (the layer table is an extra; the count above always shows)
        logger.warning("report %s: per-layer model summary unavailable: %s: %s", run_dir, type(err).__name__, err)
        return params or '<p class="muted">model summary unavailable</p>'

def build_report(run_dir: Path, predictions: Predictions | None = None, rebuild: bool = True) -> str:
    """The report page of ``run_dir`` as HTML text, rendered from its files.

    ``predictions`` are the best weights' test predictions when the caller has them (the end of training);
    without them the confusion matrix is computed from the saved run (:meth:`Run.test_predictions`), unless
    ``rebuild`` is False: the caller (training) already knows there are none, and rebuilding the data would only
    repeat that work.
    """
    run_dir = rundir.require_run(run_dir)
    summary_path = run_dir / rundir.SUMMARY_FILE
    summary = rundir.read_summary(run_dir) if summary_path.is_file() else {}
    meta = rundir.read_data_meta(run_dir) if (run_dir / rundir.DATA_FILE).is_file() else None
    history = _history(run_dir)
    sections = [("overview", "Overview", _overview(summary))]
    folds = _folds(run_dir, summary)
    if folds is not None:
        sections.append(("folds", "Folds", folds))
    else:
        sections += [("metrics", "Metrics", _metrics(summary)),
                     ("curves", "Training curves", _curves(run_dir, history))]
    if summary.get("status") == "completed" and meta is not None and meta.task == "classification":
        confusion = _confusion(run_dir, predictions, meta.classes, rebuild)
        if confusion is not None:
            sections.append(("confusion", "Confusion matrix and per-class accuracy", confusion))
    sections.append(("model", "Model", _model_summary(run_dir, summary)))
    config_text = (run_dir / rundir.CONFIG_FILE).read_text()
    sections.append(("config", "Configuration", f"<pre>{html.escape(config_text)}</pre>"))
    return page(f"trainlab report: {run_dir.name}", sections)

def _history(run_dir: Path) -> list[dict[str, Any]]:
    import pandas as pd

    path = run_dir / rundir.METRICS_FILE
    if not path.is_file() or path.stat().st_size == 0:
        return []
    frame = pd.read_csv(path)
    return [{k: v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))}
            for row in frame.to_dict("records")]

def write_report(run_dir: Path, predictions: Predictions | None = None, rebuild: bool = True) -> Path:
    """Write ``run_dir/report.html`` atomically and return its path."""
    text = build_report(Path(run_dir), predictions, rebuild)
    path = Path(run_dir) / rundir.REPORT_FILE
    atomic.write_text(path, text)
    return path

def write_report_safely(run_dir: Path, predictions: Predictions | None = None,
                        rebuild: bool = True) -> Path | None:
    """:func:`write_report` at the end of training, where the run matters more than its report: a failure is
    logged as a warning naming the error (its traceback at debug level) instead of raised."""
    try:
        return write_report(run_dir, predictions, rebuild)
    except Exception as err:  # noqa: BLE001  (any report bug must leave the finished run intact)
        logger.warning("%s not written: %s: %s", Path(run_dir) / rundir.REPORT_FILE, type(err).__name__, err)
        logger.debug("report failure", exc_info=True)
        return None
