"""Two ``trainlab search`` workers on one study (the journal file in the search directory) share its trials.

Each worker is a separate process running the same search command's library call, as two terminals (or two
machines on a shared disk) would: the study's journal hands each trial number to exactly one worker.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from distributed_jobs import MOONS, outcome, run_job
from trainlab import config
from trainlab.experiments.search import run_search
from trainlab.experiments.space import load_space

TRIALS = 4


def _worker(directory: Path, space_file: Path):
    def work(worker: int) -> list[int]:
        cfg = config.load(None, flags={"model": "mlp", "data": "moons", "epochs": 1, "batch_size": 32,
                                       "out": str(directory.parent)}, overrides=MOONS)
        result = run_search(cfg, load_space(space_file), directory, trials=TRIALS, method="random", seed=worker)
        return sorted(int(n) for n in result.trials["number"])
    return work


@pytest.mark.slow  # two processes training 4-5 tiny runs: ~10 s idle, more on a busy machine
def test_two_search_workers_finish_the_study_without_losing_or_repeating_a_trial(tmp_path: Path) -> None:
    space_file = tmp_path / "space.yaml"
    space_file.write_text("optim.lr: [0.001, 0.003, 0.01, 0.03, 0.1]\n")
    directory = tmp_path / "runs" / "shared-study"
    codes = run_job(_worker(directory, space_file), 2, tmp_path / "job", timeout=300, ranks=False)
    assert codes == [0, 0], [outcome(tmp_path / "job", w) for w in range(2)]
    storage = JournalStorage(JournalFileBackend(str(directory / "study.journal")))
    trials = optuna.load_study(study_name=directory.name, storage=storage).trials
    assert [t.number for t in trials] == list(range(len(trials)))  # one record per trial number
    # A worker that starts a trial when the other worker's running trials already fill the study ends it at once,
    # untrained, as a surplus start (docs/distributed.md): exactly TRIALS trials train, none lost, none run twice.
    trained = [t for t in trials if not t.user_attrs.get("surplus")]
    assert len(trained) == TRIALS
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trained)  # none left RUNNING
    assert all(t.state == optuna.trial.TrialState.PRUNED and "run_dir" not in t.user_attrs
               for t in trials if t not in trained)
    numbers = [t.number for t in trained]
    run_dirs = [t.user_attrs["run_dir"] for t in trained]
    assert sorted(run_dirs) == sorted(str(directory / f"trial-{n:04d}") for n in numbers)
    assert all((Path(d) / "summary.json").is_file() for d in run_dirs)
