"""trainlab compare: config differences, metrics table, figure and page."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.experiments.conftest import tiny_config
from tests.report.test_html import parse
from trainlab.api import train_config
from trainlab.experiments.compare import compare, config_diff, expand_runs, flatten, labels
from trainlab.rundir import RunDirError


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("compare")
    a = train_config(tiny_config(out, **{"train.name": "a", "optim.lr": 0.01})).path
    b = train_config(tiny_config(out, **{"train.name": "b", "optim.lr": 0.001, "optim.name": "sgd",
                                         "optim.momentum": 0.9})).path
    return [a, b]


def test_config_diff_lists_exactly_the_differing_keys(two_runs: list[Path]) -> None:
    diff = config_diff(two_runs)
    assert diff["key"].tolist() == ["optim.lr", "optim.momentum", "optim.name"]
    rows = diff.set_index("key")
    assert rows.loc["optim.name"].tolist() == ["adam", "sgd"]
    assert rows.loc["optim.momentum", "a"] == "(unset)" and rows.loc["optim.momentum", "b"] == "0.9"


def test_identical_configs_have_no_differences(two_runs: list[Path]) -> None:
    assert config_diff([two_runs[0], two_runs[0]]).empty


def test_compare_writes_figure_tables_and_page(two_runs: list[Path], tmp_path: Path) -> None:
    result = compare(two_runs, tmp_path / "cmp")
    table = pd.read_csv(tmp_path / "cmp" / "compare.csv")
    assert table["run"].tolist() == ["a", "b"]
    assert {"best val_acc", "best val_loss", "final val_acc", "test_acc", "train_seconds", "examples_per_s"} <= set(
        table.columns)
    assert (table["examples_per_s"] > 0).all()
    assert (tmp_path / "cmp" / "compare.png").read_bytes()[:4] == b"\x89PNG"
    page = (tmp_path / "cmp" / "compare.html").read_text()
    structure = parse(page)  # a doctype, every element closed in order, nothing left open
    assert structure.ids == ["curves", "metrics", "config-diff", "runs"]
    assert len(structure.images) == 1 and structure.images[0].startswith("data:image/png;base64,")
    metrics, diff = structure.tables
    assert [row[0] for row in metrics[1:]] == ["a", "b"]
    assert diff[0] == ["key", "a", "b"] and [row[0] for row in diff[1:]] == ["optim.lr", "optim.momentum", "optim.name"]
    assert result.diff.equals(pd.read_csv(tmp_path / "cmp" / "config_diff.csv").fillna(""))


def test_a_directory_of_runs_expands(two_runs: list[Path]) -> None:
    assert expand_runs([two_runs[0].parent]) == two_runs


def test_compare_needs_two_runs(two_runs: list[Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least two different runs"):
        expand_runs([two_runs[0]])
    with pytest.raises(ValueError, match="at least two different runs, found 1"):
        expand_runs([two_runs[0], two_runs[0].parent / ".." / two_runs[0].parent.name / two_runs[0].name])
    with pytest.raises(RunDirError, match="neither a run directory"):
        expand_runs([tmp_path])


def test_labels_disambiguate_equal_names() -> None:
    assert labels([Path("x/fold-1"), Path("y/fold-1"), Path("y/fold-2")]) == ["x/fold-1", "y/fold-1", "fold-2"]
    # the same parent name too: the whole path keeps the curves and columns apart
    assert labels([Path("x/cv/fold-1"), Path("y/cv/fold-1")]) == ["x/cv/fold-1", "y/cv/fold-1"]


def test_flatten() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": None}}, "e": {}}) == {"a.b": 1, "a.c.d": None, "e": {}}


def test_compare_cli_prints_the_differences(two_runs: list[Path], run_cli, tmp_path: Path) -> None:
    code, out, _ = run_cli("compare", *two_runs, "--out", tmp_path / "c")
    assert code == 0 and "optim.momentum" in out and "config differences" in out
    assert (tmp_path / "c" / "compare.html").is_file()
