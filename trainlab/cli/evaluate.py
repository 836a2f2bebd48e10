"""``trainlab eval``, ``trainlab predict`` and ``trainlab runs``: use and browse saved runs."""

from __future__ import annotations

import argparse
import json

from rich.table import Table

from trainlab.api import load_run
from trainlab.cli.common import HelpFormatter, console
from trainlab.rundir import find_runs


def print_metrics(label: str, metrics: dict[str, float]) -> None:
    """One line: ``test: test_loss 0.0460  test_acc 99.16%``."""
    parts = [f"{k} {v:.2%}" if k.endswith("_acc") else f"{k} {v:.4g}" for k, v in metrics.items()]
    console.print(f"{label}: " + "  ".join(parts))


def register(subparsers: argparse._SubParsersAction) -> None:
    ev = subparsers.add_parser("eval", help="evaluate a saved run's best weights on its test split",
                               description="Evaluate a run's best checkpoint (or its last, if none was best).",
                               formatter_class=HelpFormatter)
    ev.add_argument("run_dir", help="run directory, e.g. runs/simple-cnn-digits-20261122-101500")
    ev.add_argument("--split", default="test", choices=("train", "val", "test"), help="which split")
    ev.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    ev.set_defaults(handler=run_eval)

    pr = subparsers.add_parser("predict", help="classify image files with a saved run",
                               description="Predict the class of each image; images of any size or mode "
                               "(RGB, gray, RGBA, palette, 16-bit) are converted as the training data was.",
                               formatter_class=HelpFormatter)
    pr.add_argument("run_dir", help="run directory")
    pr.add_argument("inputs", nargs="+", help="image files")
    pr.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    pr.set_defaults(handler=run_predict)

    ls = subparsers.add_parser("runs", help="list runs in a directory as a table",
                               description="List run directories: name, model, data, best metric, epochs, time.",
                               formatter_class=HelpFormatter)
    ls.add_argument("directory", nargs="?", default="runs", help="directory holding runs")
    ls.set_defaults(handler=run_list)


def run_eval(args: argparse.Namespace) -> int:
    print_metrics(args.split, load_run(args.run_dir).evaluate(args.split, device=args.device))
    return 0


def run_predict(args: argparse.Namespace) -> int:
    predictions = load_run(args.run_dir).predict(args.inputs)
    if args.json:
        for p in predictions:
            print(json.dumps(p.__dict__))
        return 0
    table = Table("file", "prediction", "probability / value")
    for p in predictions:
        table.add_row(p.path, p.label or "", f"{p.probability:.3f}" if p.probability is not None else f"{p.value:.4g}")
    console.print(table)
    return 0


def _best_cell(summary: dict) -> str:
    best = summary.get("best", {})
    for key in ("val_acc", "val_rmse", "val_loss", "train_acc", "train_loss"):
        if key in best:
            value = best[key]["value"]
            return f"{key} {value:.2%}" if key.endswith("_acc") else f"{key} {value:.4g}"
    return "-"


def run_list(args: argparse.Namespace) -> int:
    runs = find_runs(args.directory)
    if not runs:
        console.print(f"no runs in {args.directory}")
        return 0
    table = Table("name", "model", "data", "best", "test", "epochs", "time", "status")
    for path in runs:
        summary_path = path / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
        test = summary.get("test", {})
        test_cell = next((f"{v:.2%}" if k.endswith("_acc") else f"{v:.4g}" for k, v in test.items()
                          if not k.endswith("_loss")), "-")
        table.add_row(path.name, summary.get("model", "?"), summary.get("data", "?"), _best_cell(summary), test_cell,
                      str(summary.get("epochs_completed", "-")), f"{summary.get('wall_seconds', 0):.1f}s",
                      summary.get("status", "?"))
    console.print(table)
    return 0
