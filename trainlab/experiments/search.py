"""``trainlab search``: hyperparameter search with Optuna, every trial an ordinary run directory.

The study lives in storage — by default an Optuna journal file inside the search directory — so rerunning the
same command continues it: finished trials are kept, an interrupted trial is queued again, and ``--trials N``
counts the whole study.  Several processes pointed at one storage URL (SQLite on a shared disk, PostgreSQL)
share the study.  A trial that raises or ends in NaN is recorded as failed and the search goes on.

Search directory::

    <out>/<name>/
      search.json      what is searched (space, base config, metric, method): a rerun must match it
      study.journal    the Optuna study (unless --storage points elsewhere)
      trial-0000/ …    one run directory per trial
      trials.csv       every trial: number, state, value, parameters, run directory, error
      search.png       the metric against each parameter
      best.yaml        the base config with the best parameters, ready for `trainlab train -c best.yaml`
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

import optuna
import pandas as pd

from trainlab import atomic, rundir
from trainlab import config as config_mod
from trainlab.config import ConfigError, RunConfig
from trainlab.engine.callbacks.base import Callback, TrainerView
from trainlab.engine.state import TrainState
from trainlab.experiments.kfold import sub_config
from trainlab.experiments.space import Param, grid_size, signature
from trainlab.report.plots import plot_search
from trainlab.rundir import BEST_CONFIG_FILE, SEARCH_FILE, SEARCH_PLOT_FILE, TRIALS_FILE
from trainlab.training import TrainingInterrupted, train_config

Method = Literal["grid", "random", "tpe"]


@dataclass
class SearchResult:
    path: Path
    trials: pd.DataFrame  # one row per trial, best first
    best: dict[str, Any] | None  # the best trial's parameters, or None when no trial completed
    best_value: float | None


class ResumableGrid(optuna.samplers.GridSampler):
    """Optuna's grid sampler, tolerating re-queued trials (fixed parameters, no grid id) after a resume."""

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        if "grid_id" in trial.system_attrs:
            super().after_trial(study, trial, state, values)


class PruneOnEpoch(Callback):
    """Reports the searched metric to the trial after each epoch and stops runs the pruner rejects."""

    order = 85  # after the metrics of the epoch are final, before the checkpoint

    def __init__(self, trial: Any, metric: str) -> None:
        self.trial, self.metric, self.pruned = trial, metric, False

    def on_epoch_end(self, trainer: TrainerView, state: TrainState) -> None:
        value = state.metrics.get(self.metric)
        if value is None or not math.isfinite(value):
            return
        self.trial.report(value, state.epoch)
        if self.trial.should_prune():
            self.pruned = True
            state.stop(f"pruned by the search at epoch {state.epoch} ({self.metric} {value:.4g})")


def default_direction(metric: str) -> str:
    return "maximize" if metric.endswith(("_acc", "_exact")) else "minimize"


def run_search(cfg: RunConfig, space: list[Param], directory: Path, *, trials: int | None = None,
               method: Method = "tpe", metric: str = "val_loss", direction: str | None = None,
               storage: str | None = None, prune: bool = False, seed: int = 0,
               on_trial: Callable[[dict[str, Any]], None] | None = None) -> SearchResult:
    """Run (or continue) the study in ``directory`` until it holds ``trials`` finished trials."""
    with _optuna_warnings_only():
        return _search(cfg, space, directory, trials, method, metric, direction, storage, prune, seed, on_trial)


@contextlib.contextmanager
def _optuna_warnings_only() -> Iterator[None]:
    """Optuna logs every trial at INFO through its own handler; quiet it for this search, then restore it."""
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


def _search(cfg: RunConfig, space: list[Param], directory: Path, trials: int | None, method: Method, metric: str,
            direction: str | None, storage: str | None, prune: bool, seed: int,
            on_trial: Callable[[dict[str, Any]], None] | None) -> SearchResult:
    direction = direction or default_direction(metric)
    _check_space(cfg, space)
    if method == "grid":
        trials = min(trials or grid_size(space), grid_size(space))
    elif trials is None:
        raise ConfigError("--trials is required for random and tpe search (grid search defaults to the grid size)")
    _claim_directory(directory, {"space": signature(space), "base": cfg.to_dict(), "metric": metric,
                                 "direction": direction, "method": method})
    study = optuna.create_study(study_name=directory.name, storage=_storage(storage, directory),
                                direction=direction, load_if_exists=True,
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
                                if prune else optuna.pruners.NopPruner())
    study.sampler = _sampler(method, space, seed + len(study.trials) * (method != "grid"))
    _requeue_interrupted(study)
    remaining = trials - len(_counted(study))
    if remaining > 0:
        objective = _objective(cfg, space, directory, metric, prune, trials)
        study.optimize(objective, n_trials=remaining, catch=(Exception,),
                       callbacks=[_stop_at(trials), *([_report(on_trial)] if on_trial else [])])
    return _finish(cfg, space, directory, study, metric)


def _check_space(cfg: RunConfig, space: list[Param]) -> None:
    """Every key must exist in the config: a typo fails now, not as N failed trials."""
    for param in space:
        try:
            sub_config(cfg, Path(cfg.train.out), "check", {param.key: param.example()})
        except ConfigError as err:
            raise ConfigError(f"search space key {param.key}: {err}") from None


def _claim_directory(directory: Path, description: dict[str, Any]) -> None:
    """Create the search directory, or check that an existing one holds this same search."""
    path = directory / SEARCH_FILE
    if path.is_file():
        previous = rundir.read_json(path)
        differs = [k for k in description if _normal(previous.get(k)) != _normal(description[k])]
        if differs:
            raise ConfigError(f"{directory} already holds a different search ({', '.join(differs)} changed); "
                              "pass --name for a new search or delete that directory")
        return
    directory.mkdir(parents=True, exist_ok=True)
    rundir.write_json(path, description)


def _normal(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=str))


def _storage(url: str | None, directory: Path) -> Any:
    if url:
        return url
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(directory / rundir.SEARCH_JOURNAL_FILE)))


def _sampler(method: Method, space: list[Param], seed: int) -> Any:
    """Grid keeps one seed (its order must agree across resumes); random/TPE are offset per restart."""
    if method == "grid":
        return ResumableGrid({p.key: p.grid() for p in space}, seed=seed)
    if method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if method == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    raise ConfigError(f"unknown search method '{method}'; choose grid, random or tpe")


# A trial a worker started after the study was full: ended at once, never trained, and left out of every table.
SURPLUS = "surplus"


def _counts(trial: Any) -> bool:
    """Whether a trial counts towards --trials: not stopped by Ctrl-C and not a surplus start."""
    return not trial.user_attrs.get("interrupted") and not trial.user_attrs.get(SURPLUS)


def _counted(study: Any) -> list[Any]:
    """Trials that count towards --trials: finished ones, except those stopped by Ctrl-C or surplus."""
    return [t for t in study.trials if t.state.is_finished() and _counts(t)]


def _requeue_interrupted(study: Any) -> None:
    """Queue again the parameters of interrupted trials that no other trial has taken up."""
    taken = [t.params for t in study.trials if not t.user_attrs.get("interrupted")]
    for trial in study.trials:
        if trial.user_attrs.get("interrupted") and trial.params and trial.params not in taken:
            study.enqueue_trial(trial.params)
            taken.append(trial.params)


def _stop_at(total: int) -> Callable[[Any, Any], None]:
    def stop(study: Any, trial: Any) -> None:
        if len(_counted(study)) >= total:
            study.stop()

    return stop


def _report(on_trial: Callable[[dict[str, Any]], None]) -> Callable[[Any, Any], None]:
    def report(study: Any, trial: Any) -> None:
        if trial.user_attrs.get(SURPLUS):
            return
        on_trial({"number": trial.number, "state": trial.state.name, "value": trial.value,
                  **trial.user_attrs.get("params", {}), "error": trial.user_attrs.get("error")})

    return report


def _taken_before(trial: Any) -> int:
    """Trials numbered before ``trial`` that count or will count towards --trials: finished, or running in another
    worker (a worker starts its next trial before it sees the other's last one finish)."""
    return sum(1 for t in trial.study.get_trials(deepcopy=False)
               if t.number < trial.number and _counts(t) and (t.state.is_finished() or t.state == optuna.trial.TrialState.RUNNING))


def _objective(cfg: RunConfig, space: list[Param], directory: Path, metric: str, prune: bool,
               trials: int) -> Callable[[Any], float]:
    def objective(trial: Any) -> float:
        if _taken_before(trial) >= trials:  # several workers share the study and the others already fill it
            trial.set_user_attr(SURPLUS, True)
            trial.study.stop()
            raise optuna.TrialPruned(f"the study already holds its {trials} trials")
        values = {p.key: p.suggest(trial) for p in space}
        trial.set_user_attr("params", values)
        pruner = PruneOnEpoch(trial, metric) if prune else None
        try:
            run = train_config(sub_config(cfg, directory, rundir.TRIAL_DIR.format(number=trial.number), values),
                               callbacks={"search_prune": pruner} if pruner else None)
        except (KeyboardInterrupt, TrainingInterrupted) as stop:
            trial.set_user_attr("interrupted", True)
            if isinstance(stop, TrainingInterrupted):  # an ordinary exception, which optuna's catch would swallow:
                raise KeyboardInterrupt(str(stop)) from None  # Ctrl-C must stop the whole study, as before
            raise
        except Exception as err:
            trial.set_user_attr("error", f"{type(err).__name__}: {str(err).splitlines()[0]}")
            if getattr(err, "run_dir", None):
                trial.set_user_attr("run_dir", str(err.run_dir))
            raise
        trial.set_user_attr("run_dir", str(run.path))
        if pruner is not None and pruner.pruned:
            raise optuna.TrialPruned(run.summary.get("stop_reason"))
        value = run.summary.get("best", {}).get(metric, {}).get("value")
        if value is None or not math.isfinite(value):
            available = ", ".join(run.summary.get("best", {})) or "none"
            message = f"metric {metric} is {'missing' if value is None else value}; available: {available}"
            trial.set_user_attr("error", message)
            raise ValueError(message)
        return float(value)

    return objective


def _finish(cfg: RunConfig, space: list[Param], directory: Path, study: Any, metric: str) -> SearchResult:
    """Write trials.csv, search.png and best.yaml; return the table sorted best first."""
    table = trials_table(study, space, metric)
    rundir.write_csv(directory / TRIALS_FILE, table)
    done = table[table["state"] == "COMPLETE"]
    if done.empty:
        return SearchResult(directory, table, None, None)
    with atomic.atomic_path(directory / SEARCH_PLOT_FILE) as tmp:
        plot_search(done.to_dict("records"), [p.key for p in space], metric, [p.key for p in space if p.log], tmp)
    best = study.best_trial
    params = best.user_attrs.get("params") or {p.key: p.decode(best.params[p.key]) for p in space}
    tree = cfg.to_dict()
    for key, value in params.items():
        config_mod.set_dotted(tree, key, value)
    rundir.write_config(directory / BEST_CONFIG_FILE, config_mod.validate(tree))
    return SearchResult(directory, table, params, float(best.value))


def trials_table(study: Any, space: list[Param], metric: str) -> pd.DataFrame:
    """One row per trial with decoded parameters; completed trials first, best first."""
    rows = []
    for t in (t for t in study.trials if not t.user_attrs.get(SURPLUS)):
        params = t.user_attrs.get("params") or {p.key: p.decode(t.params.get(p.key)) for p in space}
        ended = t.datetime_complete and t.datetime_start
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if ended else None
        rows.append({"number": t.number, "state": t.state.name, metric: t.value,
                     **{k: str(v) if isinstance(v, (list, dict)) else v for k, v in params.items()},
                     "seconds": seconds, "run_dir": t.user_attrs.get("run_dir"), "error": t.user_attrs.get("error")})
    columns = ["number", "state", metric, *[p.key for p in space], "seconds", "run_dir", "error"]
    table = pd.DataFrame(rows, columns=columns)
    ascending = study.direction.name == "MINIMIZE"
    table["_done"] = table["state"] != "COMPLETE"
    table = table.sort_values(["_done", metric, "number"], ascending=[True, ascending, True], na_position="last")
    return table.drop(columns="_done").reset_index(drop=True)
