"""``trainlab eval``, ``trainlab predict`` and ``trainlab runs``: use and browse saved runs."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from trainlab.api import load_run
from trainlab.cli.common import (
    HelpFormatter,
    OutputKind,
    add_force_flag,
    check_output,
    console,
    csv_output,
    make_parent,
    print_table,
)
from trainlab.engine.metrics import format_metric
from trainlab.inference.outputs import Prediction
from trainlab.inference.table import TablePrediction
from trainlab.rundir import SUMMARY_FILE, find_runs


def print_metrics(label: str, metrics: dict[str, float]) -> None:
    """One line: ``test: test_loss 0.0460  test_acc 99.16%``."""
    console.print(f"{label}: " + "  ".join(f"{k} {format_metric(k, v)}" for k, v in metrics.items()))


TABLE_ROWS = 10  # rows of a table prediction shown in the terminal

PREDICT_DESCRIPTION = """\
Predict with a saved run (a k-fold directory predicts with the mean of its fold models).

Image runs: each image is classified; images of any size or mode (RGB, gray, RGBA, palette, 16-bit) are
converted as the training data was.
Table runs (the csv dataset): one CSV file; its columns are encoded with the run's saved preprocessing (a missing
feature column is an error, a category never seen in training a warning), and the target transform is undone
(log_target: expm1), so e.g. SalePrice comes out in dollars. --out writes `<id>,<target>` for every row.

Text classifier runs (the austen-novels dataset): each input is a passage to classify, given as the text
itself or as a UTF-8 text file (an input naming an existing file is read); the novel and its probability
are printed.  Encoder-decoder runs (seq2seq on numbers-to-digits or reverse-string): each input is a source
string, translated by greedy decoding; the output and its probability (the product of its steps' probabilities,
<eos> included) are printed.  Language-model runs sample text with `trainlab generate` instead.

Test-time augmentation: a run trained with train.tta_flip=true was validated and tested on the average logits of
each image and its left-right mirror, so predict does the same by default; --no-tta predicts from the image alone,
--tta forces the averaging for any image run. Tables are never flipped.

--out never overwrites an input, a file inside a run directory, or an existing file that is not an earlier
prediction CSV of the same kind (same header); --force overrides that.

examples:
  trainlab predict runs/simple-cnn-digits-20261122-101500 digit.png scan.jpg
  trainlab predict runs/speedrun digit.png --no-tta
  trainlab predict runs/house-prices path/to/house-prices/test.csv --out submission.csv
  trainlab predict runs/austen-novels "It is a truth universally acknowledged" passage.txt
  trainlab predict runs/numbers-to-digits "forty-two" "one thousand five"
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    ev = subparsers.add_parser("eval", help="evaluate a saved run's best weights on its test split",
                               description="Evaluate a run's best checkpoint (or its last, if none was best).",
                               formatter_class=HelpFormatter)
    ev.add_argument("run_dir", help="run directory, e.g. runs/simple-cnn-digits-20261122-101500")
    ev.add_argument("--split", default="test", choices=("train", "val", "test"), help="which split")
    ev.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    add_tta_flag(ev)
    add_trust_code_flag(ev)
    ev.set_defaults(handler=run_eval)

    pr = subparsers.add_parser("predict",
                               help="predict image files, a CSV table, passages or translations with a saved run",
                               description=PREDICT_DESCRIPTION, formatter_class=HelpFormatter)
    pr.add_argument("run_dir", help="run directory (a k-fold directory averages its fold models)")
    pr.add_argument("inputs", nargs="+", help="image files, one CSV file for a run trained on a table, passages "
                    "(text or text files) for a text classifier run, or source strings for an encoder-decoder run")
    pr.add_argument("--out", default=None, help="write the predictions to this CSV file (for a table run: "
                    "a Kaggle-style submission, id column and target column)")
    add_force_flag(pr)
    pr.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    add_tta_flag(pr)
    add_trust_code_flag(pr)
    pr.set_defaults(handler=run_predict)

    ls = subparsers.add_parser("runs", help="list runs in a directory as a table",
                               description="List run directories: name, model, data, best metric, epochs, time.",
                               formatter_class=HelpFormatter)
    ls.add_argument("directory", nargs="?", default="runs", help="directory holding runs")
    ls.set_defaults(handler=run_list)


def add_tta_flag(parser: argparse.ArgumentParser) -> None:
    """``--tta/--no-tta``; left out, the attribute is absent (no misleading "default: None" in the help) and the
    run's own ``train.tta_flip`` decides."""
    parser.add_argument("--tta", action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                        help="average each image's logits with its left-right mirror's (flip test-time augmentation); "
                        "default: as the run was evaluated (its train.tta_flip), so results match its test metrics")


def add_trust_code_flag(parser: argparse.ArgumentParser) -> None:
    """``--trust-code``: a run of your own model imports its recorded file or module only when asked to."""
    parser.add_argument("--trust-code", action="store_true", help="for a run of your own model "
                        "(--model file.py:Class): import its recorded model file or module, which RUNS that code; "
                        "only for runs you trust (the file must still match the SHA-256 saved with the run)")


def run_eval(args: argparse.Namespace) -> int:
    run = load_run(args.run_dir, trust_code=args.trust_code)
    metrics = run.evaluate(args.split, device=args.device, tta=getattr(args, "tta", None))
    print_metrics(args.split, metrics)
    return 0


PREDICTION_COLUMNS = [field.name for field in dataclasses.fields(Prediction)]  # the CSV header of image predictions
# Before predicting, the header (image or table run) is not known yet: check everything but the header then.
_HEADER_NOT_KNOWN = OutputKind("(checked once the header is known)", lambda path: True)


def _output(args: argparse.Namespace, kind: OutputKind) -> Path | None:
    """``--out`` checked against the run and the input files (nothing is written if it is refused)."""
    if not args.out:
        return None
    return check_output(args.out, kind, inputs=[args.run_dir, *args.inputs], force=args.force)


def run_predict(args: argparse.Namespace) -> int:
    _output(args, _HEADER_NOT_KNOWN)  # a refused --out is reported before any work
    run = load_run(args.run_dir, trust_code=args.trust_code)
    predictions = run.predict(args.inputs, tta=getattr(args, "tta", None))
    if isinstance(predictions, TablePrediction):
        return _print_table_prediction(predictions, args)
    out = _output(args, csv_output(PREDICTION_COLUMNS))
    if out:
        pd.DataFrame([dataclasses.asdict(p) for p in predictions], columns=PREDICTION_COLUMNS).to_csv(
            make_parent(out), index=False)
        console.print(f"wrote {len(predictions)} predictions to {out}")
    if args.json:
        for p in predictions:
            print(json.dumps(p.__dict__))
        return 0
    rows = [[p.path, p.label or "", f"{p.probability:.3f}" if p.probability is not None else f"{p.value:.4g}"]
            for p in predictions]
    print_table(("file", "prediction", "probability / value"), rows)
    return 0


def _print_table_prediction(prediction: TablePrediction, args: argparse.Namespace) -> int:
    """Write the submission when asked; print every row as JSON, or the first rows as a table."""
    frame = prediction.frame()
    out = _output(args, csv_output([prediction.id_col, prediction.target_col]))
    if out:
        prediction.write(out)
        console.print(f"wrote {len(prediction)} rows ({prediction.id_col},{prediction.target_col}) to {out}")
    if args.json:
        for row in frame.to_dict(orient="records"):
            print(json.dumps(row, default=str))
        return 0
    shown = frame.head(TABLE_ROWS)
    rows = [[f"{v:,.6g}" if isinstance(v, float) else str(v) for v in row] for row in shown.itertuples(index=False)]
    print_table([str(c) for c in shown.columns], rows)
    if len(frame) > TABLE_ROWS and not args.out:
        console.print(f"… {len(frame) - TABLE_ROWS} more rows; pass --out FILE.csv to write them all")
    return 0


HEADLINE = ("exact", "ppl", "acc", "rmse")  # a run's own measure first: translations, language models, the rest


def _best_cell(summary: dict) -> str:
    best = summary.get("best", {})
    for key in (f"{split}_{name}" for split in ("val", "train") for name in (*HEADLINE, "loss")):
        if key in best:
            value = best[key]["value"]
            return f"{key} {format_metric(key, value)}"
    return "-"


RUN_COLUMNS = ("name", "model", "data", "best", "test", "epochs", "time", "status")


def run_list(args: argparse.Namespace) -> int:
    """One row per run; a run whose summary.json cannot be read is one row saying why, and the others still list."""
    directory = Path(args.directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"{directory} is a file; `trainlab runs` lists the run directories inside a directory")
    runs = find_runs(directory)
    if not runs:
        console.print(f"no runs in {args.directory}")
        return 0
    rows, unreadable = [], []
    for path in runs:
        row, problem = _run_row(path)
        rows.append(row)
        if problem:
            unreadable.append(f"{path}: {problem}")
    print_table(RUN_COLUMNS, rows)
    for line in unreadable:
        print(f"warning: {line}", file=sys.stderr)
    return 0


def _run_row(path: Path) -> tuple[list[str], str | None]:
    """The table row of one run and, if its summary.json cannot be read, what is wrong with it."""
    from trainlab.experiments.compare import readable_summary

    summary, problem = readable_summary(path)
    if problem is None:
        try:
            return _summary_row(path, summary), None
        except (AttributeError, KeyError, TypeError, ValueError) as err:  # valid JSON, but not the values we wrote
            problem = f"{SUMMARY_FILE} holds unexpected values ({type(err).__name__}: {err})"
    short = problem.partition(" (")[0]  # the details, on the warning line below the table, would crowd the cell
    return [path.name, "?", "?", "-", "-", "-", "-", f"unreadable: {short}"], problem


def _summary_row(path: Path, summary: dict[str, Any]) -> list[str]:
    test = summary.get("test", {})
    headline = [f"test_{name}" for name in HEADLINE if f"test_{name}" in test]
    test_cell = format_metric(headline[0], test[headline[0]]) if headline else "-"
    return [path.name, str(summary.get("model", "?")), str(summary.get("data", "?")), _best_cell(summary), test_cell,
            str(summary.get("epochs_completed", "-")), f"{float(summary.get('wall_seconds', 0)):.1f}s",
            str(summary.get("status", "?"))]
