"""An interrupted 2-rank run resumes exactly: kill -9 mid-epoch, or SIGTERM to one rank, then ``--resume``.

The model has dropout, and each rank draws its own dropout masks, so the final weights match the uninterrupted
run only if every rank got its *own* RNG state (and running metric sums) back from the one checkpoint.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from distributed_jobs import MOONS, Probe, last_weights, outcome, run_job, train_rank

pytestmark = pytest.mark.slow  # five 2-rank runs: ~30 s on an idle 2-core machine, minutes on a busy one

DROPOUT = [*MOONS, "model.dropout=0.3", "callbacks.checkpoint.every_steps=4"]  # 11 steps per epoch, 2 epochs


def _train(out: Path, name: str, probe_for_rank=lambda rank: None):
    def work(rank: int) -> dict:
        return train_rank(DROPOUT, out, name, probe_for_rank(rank))
    return work


def _resume(run_dir: Path):
    def work(rank: int) -> str:
        from trainlab.api import train

        return str(train(resume=run_dir).path)
    return work


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ddp-resume")
    assert run_job(_train(root / "runs", "whole"), 2, root / "job") == [0, 0]
    return root / "runs" / "whole"


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv") as handle:
        return [{k: v for k, v in row.items() if k not in ("seconds", "examples_per_s")}
                for row in csv.DictReader(handle)]


def _assert_same_run(resumed: Path, whole: Path) -> None:
    weights, reference = last_weights(resumed), last_weights(whole)
    for name in reference:
        assert torch.equal(weights[name], reference[name]), name  # bit for bit
    assert _rows(resumed) == _rows(whole)  # train metrics summed over both ranks, across the interruption too
    assert json.loads((resumed / "summary.json").read_text())["status"] == "completed"


def test_kill_9_mid_epoch_then_resume_equals_the_uninterrupted_run(uninterrupted: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "killed"
    codes = run_job(_train(tmp_path / "runs", "killed", lambda rank: Probe(kill_at=6)), 2, tmp_path / "job")
    assert codes == [-9, -9]
    assert [p.name for p in (run_dir / "checkpoints").glob("last-*")] == ["last-000000004"]  # mid-epoch 1
    assert run_job(_resume(run_dir), 2, tmp_path / "resume") == [0, 0]
    _assert_same_run(run_dir, uninterrupted)
    assert json.loads((run_dir / "summary.json").read_text())["resumed_from"] == "last-000000004"


def test_sigterm_to_one_rank_checkpoints_once_then_resumes_exactly(uninterrupted: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "stopped"
    probe = lambda rank: Probe(term_at=7 if rank == 1 else 0)
    codes = run_job(_train(tmp_path / "runs", "stopped", probe), 2, tmp_path / "job")
    assert codes == [1, 1]  # both ranks stop at the same step and raise TrainingInterrupted
    for rank in range(2):
        assert outcome(tmp_path / "job", rank)["error"].startswith("TrainingInterrupted: training interrupted")
    assert [p.name for p in (run_dir / "checkpoints").glob("last-*")] == ["last-000000007"]  # one, at the stop
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
    assert run_job(_resume(run_dir), 2, tmp_path / "resume") == [0, 0]
    _assert_same_run(run_dir, uninterrupted)


def test_resuming_a_2_rank_run_in_one_process_is_refused(uninterrupted: Path, run_cli) -> None:
    summary = (uninterrupted / "summary.json").read_text()
    code, _, err = run_cli("train", "--resume", uninterrupted, "--epochs", "3")
    assert code == 2
    assert "was written by a run of 2 process(es), but this resume has 1" in err
    assert err.count("error:") == 1
    assert (uninterrupted / "summary.json").read_text() == summary  # nothing rewritten
