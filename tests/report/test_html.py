"""report.html: written by every training run, self-contained, structurally valid, and never fatal."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from trainlab import config as config_mod
from trainlab.api import train_config
from trainlab.report import html as report_html
from trainlab.report.evaluation import confusion_matrix, per_class_accuracy

TINY = {"model.name": "mlp", "model.hidden": [8], "train.epochs": 2, "train.batch_size": 128,
        "callbacks.progress.style": "none"}
VOID = {"meta", "img", "br", "hr", "link", "input", "col"}


class Structure(HTMLParser):
    """Checks nesting (every element closed in order) and collects ids, image sources, links and tables."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.ids: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None
        self.doctype = False

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl.lower() == "doctype html"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if "id" in attr:
            self.ids.append(attr["id"] or "")
        if tag == "img":
            self.images.append(attr.get("src") or "")
        if tag in ("a", "link", "script"):
            self.links.append(attr.get("href") or attr.get("src") or "")
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
            return
        self.stack.pop()
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse(text: str) -> Structure:
    parser = Structure()
    parser.feed(text)
    parser.close()
    assert parser.doctype and not parser.errors and not parser.stack, (parser.errors, parser.stack)
    return parser


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    return train_config(config_mod.load(overrides={**TINY, "train.out": str(out), "train.name": "r"})).path


def test_training_writes_a_self_contained_report(trained: Path) -> None:
    page = parse((trained / "report.html").read_text())
    assert {"overview", "metrics", "curves", "confusion", "model", "config"} <= set(page.ids)
    assert page.images and all(src.startswith("data:image/png;base64,") for src in page.images)
    for src in page.images:
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [link for link in page.links if "://" in link]


def test_confusion_matrix_and_per_class_accuracy_come_from_the_test_split(trained: Path) -> None:
    page = parse((trained / "report.html").read_text())
    confusion, per_class = page.tables[2], page.tables[3]
    assert confusion[0][1:] == [str(d) for d in range(10)] and len(confusion) == 11
    counts = [[int(c) if c else 0 for c in row[1:]] for row in confusion[1:]]
    assert sum(map(sum, counts)) == 359  # digits' fixed 20% test split
    assert [row[0] for row in per_class[1:]] == [str(d) for d in range(10)]
    for i, row in enumerate(per_class[1:]):
        assert int(row[1]) == sum(counts[i]) and int(row[2]) == counts[i][i]


def test_report_metrics_match_the_summary(trained: Path) -> None:
    summary = json.loads((trained / "summary.json").read_text())
    page = parse((trained / "report.html").read_text())
    metrics = {row[0]: row for row in page.tables[1][1:]}
    assert metrics["val_acc"][2] == report_html.fmt(summary["best"]["val_acc"]["value"])
    assert metrics["test_acc"][4] == report_html.fmt(summary["test"]["test_acc"])
    text = (trained / "report.html").read_text()
    assert f"{summary['params']:,} parameters" in text and "name: mlp" in text


def test_report_cli_rewrites_it_without_the_curves_file(trained: Path, run_cli) -> None:
    (trained / "curves.png").unlink()
    (trained / "report.html").unlink()
    code, out, _ = run_cli("report", trained)
    assert code == 0 and "report written" in out
    page = parse((trained / "report.html").read_text())
    assert "curves" in page.ids and len(page.images) == 1


def test_model_summary_table_is_used_when_inspect_provides_one(trained: Path, monkeypatch) -> None:
    fake = lambda model, input_size: pd.DataFrame({"layer": ["Linear-1"], "input": [str(input_size)]})  # noqa: E731
    monkeypatch.setattr(report_html, "layer_summary", fake)
    text = report_html.build_report(trained)
    assert "Linear-1" in text and "(1, 8, 8)" in text


def test_a_broken_report_never_costs_the_run(tmp_path: Path, monkeypatch, caplog) -> None:
    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(report_html, "build_report", explode)
    run = train_config(config_mod.load(overrides={**TINY, "train.epochs": 1, "train.out": str(tmp_path),
                                                  "callbacks.plot_curves": None}))
    assert run.summary["status"] == "completed" and not (run.path / "report.html").exists()
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and r.name == "trainlab.report.html"]
    assert len(warnings) == 1 and "report.html not written: RuntimeError: boom" in warnings[0].getMessage()


def test_failed_run_gets_a_report_without_confusion_matrix(tmp_path: Path) -> None:
    from trainlab.api import TrainingFailed

    cfg = config_mod.load(overrides={**TINY, "train.epochs": 1, "train.out": str(tmp_path), "optim.lr": 1e30,
                                     "optim.name": "sgd", "callbacks.plot_curves": None})
    with pytest.raises(TrainingFailed) as failure:
        train_config(cfg)
    page = parse((failure.value.run_dir / "report.html").read_text())
    assert "confusion" not in page.ids and "overview" in page.ids


def test_confusion_helpers() -> None:
    import numpy as np

    matrix = confusion_matrix(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 2, 0]), 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    rows = per_class_accuracy(matrix, ["a", "b", "c"])
    assert [r["accuracy"] for r in rows] == [0.5, 1.0, pytest.approx(2 / 3)]


def test_html_escapes_text() -> None:
    page = report_html.page("<x>", [("s", "a&b", report_html.table(["<h>"], [["<script>"]]))])
    assert "<script>" not in page and "&lt;script&gt;" in page
    parse(page)


def test_confusion_matrix_uses_the_weights_the_test_metrics_used(tmp_path) -> None:
    """With an EMA the run is judged by the averaged weights; the report's matrix must agree with test_acc."""
    import numpy as np

    import trainlab

    run = trainlab.train(model="mlp", epochs=2, out=tmp_path, overrides={
        "train.ema": 0.9, "model.hidden": [16], "callbacks.progress.style": "none"})
    targets, preds = run.test_predictions()
    assert np.mean(targets == preds) == pytest.approx(run.summary["test"]["test_acc"])


def test_the_report_at_the_end_of_training_never_rebuilds_the_data(tmp_path: Path, monkeypatch) -> None:
    """Training hands its test predictions, or their absence (no test split here), to the report, so the report
    never builds the dataset a second time."""
    from tests.data.files import write_image_folder
    from trainlab.run import Run

    write_image_folder(tmp_path / "images", per_class=10)
    monkeypatch.setattr(Run, "test_predictions", lambda self, device="cpu": pytest.fail("data rebuilt"))
    run = train_config(config_mod.load(overrides={**TINY, "data.name": "imagefolder", "train.epochs": 1,
                                                  "data.root": str(tmp_path / "images"), "data.size": 8,
                                                  "train.out": str(tmp_path / "runs"), "callbacks.plot_curves": None}))
    assert run.summary["status"] == "completed" and "test" not in run.summary
    assert (run.path / "report.html").is_file()


def test_a_curves_panel_with_nothing_to_draw_says_so_instead_of_an_empty_legend(tmp_path: Path) -> None:
    """A run that recorded no accuracy (every value missing) still gets its curves, with the empty panel labelled,
    and matplotlib has no reason to warn about a legend without entries."""
    import warnings

    from trainlab.report.plots import plot_history

    history = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.2 / e, "train_acc": None} for e in (1, 2)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot_history(history, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 0
