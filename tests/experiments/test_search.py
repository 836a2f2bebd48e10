"""Hyperparameter search: grid coverage, resume after an interruption, failed trials, outputs, space parsing."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

from tests.experiments.conftest import tiny_config
from trainlab import config as config_mod
from trainlab.config import ConfigError
from trainlab.experiments import search as search_mod
from trainlab.experiments.search import PruneOnEpoch, SearchResult, run_search
from trainlab.experiments.space import load_space

GRID = {"optim.lr": [0.003, 0.03], "model.hidden": [[4], [8, 4]]}


@pytest.fixture(scope="module")
def grid_search(tmp_path_factory: pytest.TempPathFactory) -> SearchResult:
    out = tmp_path_factory.mktemp("search")
    return run_search(tiny_config(out), load_space(GRID), out / "grid", method="grid", metric="val_acc")


def test_grid_visits_every_combination_exactly_once(grid_search: SearchResult) -> None:
    table = grid_search.trials
    assert (table["state"] == "COMPLETE").all() and len(table) == 4
    seen = sorted(zip(table["optim.lr"], table["model.hidden"]))
    assert seen == sorted((lr, str(h)) for lr, h in itertools.product(*GRID.values()))


def test_every_trial_is_a_run_directory_with_its_parameters(grid_search: SearchResult) -> None:
    for row in grid_search.trials.to_dict("records"):
        cfg = yaml.safe_load((Path(row["run_dir"]) / "config.yaml").read_text())
        assert cfg["optim"]["lr"] == row["optim.lr"] and str(cfg["model"]["hidden"]) == row["model.hidden"]
        summary = json.loads((Path(row["run_dir"]) / "summary.json").read_text())
        assert summary["best"]["val_acc"]["value"] == pytest.approx(row["val_acc"])


def test_results_table_plot_and_best_config(grid_search: SearchResult) -> None:
    directory = grid_search.path
    table = pd.read_csv(directory / "trials.csv")
    assert table["val_acc"].tolist() == sorted(table["val_acc"], reverse=True)
    assert (directory / "search.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best = config_mod.load(directory / "best.yaml")
    assert grid_search.best == {"optim.lr": best.optim.lr, "model.hidden": best.model.options()["hidden"]}
    assert grid_search.best_value == pytest.approx(table["val_acc"].max())


def test_rerunning_a_finished_search_trains_nothing(grid_search: SearchResult, monkeypatch) -> None:
    monkeypatch.setattr(search_mod, "train_config", lambda *a, **k: pytest.fail("a finished trial was repeated"))
    again = run_search(tiny_config(grid_search.path.parent), load_space(GRID), grid_search.path, method="grid",
                       metric="val_acc")
    assert len(again.trials) == 4 and again.best == grid_search.best


def test_a_different_search_in_the_same_directory_is_refused(grid_search: SearchResult) -> None:
    with pytest.raises(ConfigError, match="already holds a different search"):
        run_search(tiny_config(grid_search.path.parent), load_space({"optim.lr": [0.1, 0.2]}), grid_search.path,
                   method="grid", metric="val_acc")


def test_interrupted_search_resumes_without_repeating_finished_trials(tmp_path: Path, monkeypatch) -> None:
    space = load_space({"optim.lr": [0.001, 0.01, 0.1]})
    real = search_mod.train_config
    calls: list[float] = []

    def interrupt_second(cfg, **kwargs):
        calls.append(cfg.optim.lr)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(cfg, **kwargs)

    monkeypatch.setattr(search_mod, "train_config", interrupt_second)
    with pytest.raises(KeyboardInterrupt):
        run_search(tiny_config(tmp_path), space, tmp_path / "s", method="grid", metric="val_loss")
    first, interrupted = calls
    calls.clear()
    monkeypatch.setattr(search_mod, "train_config", lambda cfg, **kw: calls.append(cfg.optim.lr) or real(cfg, **kw))
    result = run_search(tiny_config(tmp_path), space, tmp_path / "s", method="grid", metric="val_loss")
    assert first not in calls and interrupted in calls and len(calls) == 2
    done = result.trials[result.trials["state"] == "COMPLETE"]
    assert sorted(done["optim.lr"]) == [0.001, 0.01, 0.1]


def test_random_search_resume_counts_the_whole_study(tmp_path: Path) -> None:
    space = load_space({"optim.lr": {"low": 1e-3, "high": 1e-1, "log": True}})
    first = run_search(tiny_config(tmp_path), space, tmp_path / "r", trials=1, method="random")
    second = run_search(tiny_config(tmp_path), space, tmp_path / "r", trials=2, method="random")
    assert len(first.trials) == 1 and sorted(second.trials["number"]) == [0, 1]
    assert second.trials.set_index("number").loc[0, "optim.lr"] == first.trials.loc[0, "optim.lr"]
    assert second.trials["optim.lr"].nunique() == 2


def test_a_failing_trial_is_recorded_and_the_study_goes_on(tmp_path: Path) -> None:
    space = load_space({"model.dropout": [0.0, 1.5]})  # the mlp refuses dropout 1.5 when it is built
    result = run_search(tiny_config(tmp_path), space, tmp_path / "f", method="grid", metric="val_loss")
    states = dict(zip(result.trials["model.dropout"], result.trials["state"]))
    assert states == {0.0: "COMPLETE", 1.5: "FAIL"}
    failed = result.trials[result.trials["state"] == "FAIL"].iloc[0]
    assert "dropout must be in [0, 1)" in failed["error"]
    assert result.best == {"model.dropout": 0.0}


def test_a_missing_or_nan_metric_fails_the_trial(tmp_path: Path) -> None:
    space = load_space({"optim.lr": [0.01]})
    result = run_search(tiny_config(tmp_path), space, tmp_path / "m", method="grid", metric="val_rmse")
    assert result.best is None and result.trials["state"].tolist() == ["FAIL"]
    assert "metric val_rmse is missing" in result.trials["error"][0]
    assert not (tmp_path / "m" / "best.yaml").exists()


def test_unknown_config_key_in_the_space_fails_before_any_trial(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="optim.lrr"):
        run_search(tiny_config(tmp_path), load_space({"optim.lrr": [0.1]}), tmp_path / "x", method="grid")
    assert not (tmp_path / "x").exists()


def test_random_and_tpe_need_a_trial_count(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--trials is required"):
        run_search(tiny_config(tmp_path), load_space({"optim.lr": [0.1]}), tmp_path / "x", method="tpe")


class _ScriptedTrial:
    """Stands in for an Optuna trial: prunes once the reported value exceeds a threshold."""

    def __init__(self, threshold: float) -> None:
        self.threshold, self.reports = threshold, []

    def report(self, value: float, step: int) -> None:
        self.reports.append((step, value))

    def should_prune(self) -> bool:
        return self.reports[-1][1] > self.threshold


@pytest.mark.parametrize("values, pruned_at", [([0.5, 0.4, 0.3], None), ([0.5, 2.0, 0.3], 2)])
def test_pruning_callback_stops_bad_trials_by_epoch(values: list[float], pruned_at: int | None) -> None:
    from trainlab.engine.state import TrainState

    trial = _ScriptedTrial(threshold=1.0)
    callback = PruneOnEpoch(trial, "val_loss")
    state = TrainState(epochs=3, steps_per_epoch=1)
    for epoch, value in enumerate(values, start=1):
        state.epoch, state.metrics = epoch, {"val_loss": value}
        callback.on_epoch_end(SimpleNamespace(), state)
        if state.should_stop:
            break
    assert callback.pruned == (pruned_at is not None)
    assert (state.epoch if state.should_stop else None) == pruned_at
    assert not state.failed


class TestSpace:
    def test_kinds_and_grid_values(self) -> None:
        lr, batch, hidden, mom = load_space({
            "optim.lr": {"low": 1e-3, "high": 1e-1, "log": True},
            "train.batch_size": {"low": 32, "high": 128, "step": 32},
            "model.hidden": [[16], [32, 16]],
            "optim.momentum": {"low": 0.0, "high": 0.9, "step": 0.3}})
        assert batch.is_int and batch.grid() == [32, 64, 96, 128]
        assert hidden.encoded and [hidden.decode(v) for v in hidden.grid()] == [[16], [32, 16]]
        assert mom.grid() == [0.0, 0.3, 0.6, 0.9]
        with pytest.raises(ConfigError, match="grid search needs finite values"):
            lr.grid()

    @pytest.mark.parametrize("spec, message", [
        ({"lr": [1]}, "dotted config key"),
        ({"optim.lr": {"low": 1, "high": 0}}, "low < high"),
        ({"optim.lr": {"low": 0, "high": 1, "log": True}}, "log range needs low > 0"),
        ({"optim.lr": {"low": 0.1, "high": 1, "stepp": 0.1}}, "unknown field"),
        ({"optim.lr": {"choices": []}}, "non-empty list"),
        ({"optim.lr": 0.1}, "expected a list of choices"),
        ({}, "empty"),
    ])
    def test_bad_spaces_are_explained(self, spec: dict, message: str) -> None:
        with pytest.raises(ConfigError, match=message):
            load_space(spec)


def test_two_processes_on_one_storage_share_the_study(tmp_path: Path) -> None:
    """Two search directories (two machines) with the same name and storage URL see each other's trials."""
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    space = load_space({"optim.lr": [0.003, 0.03]})
    run_search(tiny_config(tmp_path), space, tmp_path / "m1" / "s", trials=1, method="grid", storage=storage)
    second = run_search(tiny_config(tmp_path), space, tmp_path / "m2" / "s", trials=2, method="grid", storage=storage)
    assert sorted(second.trials["optim.lr"]) == [0.003, 0.03]
    assert len(list((tmp_path / "m2" / "s").glob("trial-*"))) == 1


def test_a_search_leaves_optuna_logging_as_it_found_it(grid_search: SearchResult) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.INFO)
    run_search(tiny_config(grid_search.path.parent), load_space(GRID), grid_search.path, method="grid",
               metric="val_acc")  # quiets optuna while it runs
    assert optuna.logging.get_verbosity() == optuna.logging.INFO
