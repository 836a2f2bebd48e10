"""The shared dataset checks predict the split that `stratified_split` then makes, and `data check` reads CSV files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainlab.data.bundle import stratified_split
from trainlab.data.checks import dataset_findings


@pytest.mark.parametrize("stratify", [True, False])
def test_findings_refuse_exactly_the_splits_that_come_out_empty(stratify: bool) -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        rows, fraction = int(rng.integers(1, 30)), float(rng.choice([0.05, 0.1, 0.2, 0.5, 0.9, 0.97]))
        labels = rng.integers(0, int(rng.integers(2, 5)), rows)
        classes = [str(c) for c in range(int(labels.max()) + 1)] if stratify else None
        keep, held = stratified_split(labels, fraction, seed=int(rng.integers(100)), stratify=stratify)
        found = dataset_findings(labels, task="classification" if stratify else "regression", classes=classes,
                                 val_fraction=fraction, where="t")
        assert bool(found.problems) == (len(keep) == 0 or len(held) == 0), (rows, fraction, found.problems)
        if stratify and not found.problems:
            unseen = set(range(len(classes))) - set(labels[keep].tolist())
            assert any("no training example" in w for w in found.warnings) == bool(unseen), (labels, fraction)


def test_findings_name_the_source_and_the_fix() -> None:
    found = dataset_findings(np.zeros(40), task="classification", classes=["cat"], val_fraction=0.1, where="here",
                             classes_from="class sub-folders")
    assert found.problems == [("here: classification needs at least two classes, found 1 ('cat') among the class "
                               "sub-folders; add examples of another class, or check the data source")]
    found = dataset_findings(np.arange(5.0), task="regression", classes=None, val_fraction=0.0, where="here")
    assert found.problems == [] and found.warnings[0].startswith("here: only 5 training example(s)")
    found = dataset_findings(np.arange(30.0), task="regression", classes=None, val_fraction=0.1, where="here",
                             val_rows=0)
    assert "data.val_fraction=0.1 of 30 example(s) leaves an empty validation split" in found.problems[0]


def test_data_check_reads_a_csv_table(tmp_path: Path, run_cli) -> None:
    table = tmp_path / "t.csv"
    table.write_text("Id,a,kind\n" + "".join(f"{i},{i % 7},{'ab'[i % 2]}\n" for i in range(30)))
    code, out, _ = run_cli("data", "check", table, "--target", "kind", "--id", "Id")
    assert code == 0 and "classification, 2 classes; rows train 27, val 3; 1 model input features" in out
    assert "no problems found" in out
    code, out, _ = run_cli("data", "check", table, "--target", "price")
    assert code == 1 and "data.target column 'price' is not in" in out and "1 problem" in out
    code, _, err = run_cli("data", "check", table)
    assert code == 2 and "needs --target COLUMN" in err
