"""Resuming a k-fold run: finished folds are reused untouched, the interrupted fold continues from its checkpoint,
the rest train, and the outputs equal an uninterrupted run's; changed configs, splits and wrong directories are
refused with clear errors.

Every run: digits, a tiny MLP, 3 folds × 2 epochs of 8 batches, deterministic on one CPU thread."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.conftest import cli_subprocess, interrupted_write
from tests.experiments.conftest import tiny_config
from trainlab.config import ConfigError
from trainlab.engine.trainer import Trainer
from trainlab.experiments.kfold import KFoldInterrupted, run_kfold
from trainlab.experiments.kfold_resume import KFoldComplete, resume_kfold
from trainlab.rundir import LOCK_FILE, RunDirError

SETTINGS = {"train.epochs": 2, "train.deterministic": True, "train.seed": 3}
TIMING = ["train_seconds"]


def config(out: Path, name: str) -> Any:
    return tiny_config(out, **SETTINGS, **{"train.name": name})


def interrupt_during(monkeypatch: pytest.MonkeyPatch, fit: int, epoch: int, batch: int) -> None:
    """Ctrl-C in the ``fit``-th training (counting from 1) after batch ``batch`` of 0-based ``epoch``."""
    original, fits = Trainer._emit, []

    def emit(self: Trainer, hook: str) -> None:
        original(self, hook)
        fits.extend([self] if hook == "on_fit_start" else [])
        s = self.state
        if hook == "on_batch_end" and len(fits) == fit and (s.epoch, s.batch_in_epoch) == (epoch, batch):
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_emit", emit)


def count_trainings(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many fits run and how many of them continued from a checkpoint."""
    counts = {"fit": 0, "resume": 0}
    fit, resume = Trainer.fit, Trainer.resume

    def counted_fit(self: Trainer) -> Any:
        counts["fit"] += 1
        return fit(self)

    def counted_resume(self: Trainer, path: Path) -> None:
        counts["resume"] += 1
        resume(self, path)

    monkeypatch.setattr(Trainer, "fit", counted_fit)
    monkeypatch.setattr(Trainer, "resume", counted_resume)
    return counts


def files_and_mtimes(directory: Path) -> dict[str, int]:
    """Every file's modification time, except the ``.lock`` files that record which process holds a directory."""
    return {str(p.relative_to(directory)): p.stat().st_mtime_ns for p in directory.rglob("*")
            if p.is_file() and p.name != LOCK_FILE}


def resume_recording(root: Path, **kwargs: Any) -> list[str]:
    """Resume ``root``; return the first word of each fold's progress line (skipped/resumed/started/…)."""
    seen: list[str] = []
    resume_kfold(root, on_progress=lambda fold, folds, what: seen.append(what.split(":")[0].split()[0]), **kwargs)
    return seen


def assert_same_results(root: Path, reference: Path) -> None:
    """Per-fold metrics, out-of-fold predictions, mean/std and the ensemble's test metrics: all bit-identical."""
    folds, expected = pd.read_csv(root / "folds.csv"), pd.read_csv(reference / "folds.csv")
    pd.testing.assert_frame_equal(folds.drop(columns=TIMING), expected.drop(columns=TIMING), check_exact=True)
    pd.testing.assert_frame_equal(pd.read_csv(root / "oof.csv"), pd.read_csv(reference / "oof.csv"), check_exact=True)
    summary, ref = (json.loads((d / "summary.json").read_text()) for d in (root, reference))
    assert summary["status"] == "completed" and summary["test"] == ref["test"]
    for part in ("mean", "std"):
        assert {k: v for k, v in summary[part].items() if k not in TIMING} == \
            {k: v for k, v in ref[part].items() if k not in TIMING}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run."""
    return run_kfold(config(tmp_path_factory.mktemp("ref"), "cv"), 3).path


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same run stopped by Ctrl-C in fold 2, mid-way through its second epoch (left pristine: copy to change)."""
    out = tmp_path_factory.mktemp("int")
    with pytest.MonkeyPatch.context() as patch:
        interrupt_during(patch, fit=2, epoch=1, batch=3)
        with pytest.raises(KFoldInterrupted) as stop:
            run_kfold(config(out, "cv"), 3)
    assert "trainlab kfold --resume" in str(stop.value)
    return stop.value.path


def copy_of(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / run.name))


def test_an_interrupted_run_records_how_far_it_got(interrupted: Path) -> None:
    summary = json.loads((interrupted / "summary.json").read_text())
    assert summary["kind"] == "kfold" and summary["status"] == "interrupted" and summary["completed_folds"] == 1
    info = json.loads((interrupted / "kfold.json").read_text())
    assert info["completed"] == ["fold-1"] and info["folds"] == 3 and len(info["fingerprint"]) == 64
    assert json.loads((interrupted / "fold-2" / "summary.json").read_text())["status"] == "interrupted"
    assert any((interrupted / "fold-2" / "checkpoints").glob("last-*"))
    assert not (interrupted / "fold-3").exists() and not (interrupted / "folds.csv").exists()


def test_resume_skips_finished_folds_and_ends_as_an_uninterrupted_run(
        interrupted: Path, reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = copy_of(interrupted, tmp_path)
    fold_1 = files_and_mtimes(root / "fold-1")
    leftover = interrupted_write(root, "oof.csv")  # a writer killed mid-write (SIGKILL) left its temporary
    counts = count_trainings(monkeypatch)
    assert resume_recording(root) == ["skipped", "resumed", "started"]
    assert not leftover.exists()
    assert counts == {"fit": 2, "resume": 1}  # fold 2 continued from its checkpoint, fold 3 trained, fold 1 not
    assert files_and_mtimes(root / "fold-1") == fold_1
    assert_same_results(root, reference)
    assert json.loads((root / "kfold.json").read_text())["completed"] == ["fold-1", "fold-2", "fold-3"]
    before = json.loads((interrupted / "summary.json").read_text())["wall_seconds"]
    assert json.loads((root / "summary.json").read_text())["wall_seconds"] > before
    assert (root / "report.html").is_file()


def test_a_fold_stopped_before_its_first_checkpoint_trains_again(
        reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As if killed (SIGKILL) early in fold 3, and between fold 2 finishing and its fold.json being written."""
    root = copy_of(reference, tmp_path)
    for path in (root / "folds.csv", root / "oof.csv", root / "fold-2" / "fold.json"):
        path.unlink()
    shutil.rmtree(root / "fold-3" / "checkpoints")
    for summary_path in (root / "summary.json", root / "fold-3" / "summary.json"):
        summary_path.write_text(json.dumps({**json.loads(summary_path.read_text()), "status": "running"}))
    counts = count_trainings(monkeypatch)
    assert resume_recording(root) == ["skipped", "skipped", "restarted"]
    assert counts == {"fit": 1, "resume": 0}
    assert (root / "fold-2" / "fold.json").read_text() == (reference / "fold-2" / "fold.json").read_text()
    assert_same_results(root, reference)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"overrides": {"optim.lr": 0.5}}, "optim.lr: 0.001 → 0.5"),
    ({"flags": {"epochs": 3}}, "train.epochs: 2 → 3"),
    ({"folds": 4}, "started with --folds 3, not 4"),
    ({"flags": {"seed": 4}, "force": True}, "its folds would change"),
])
def test_a_resume_that_could_not_match_is_refused(interrupted: Path, kwargs: dict[str, Any], message: str) -> None:
    before = files_and_mtimes(interrupted)
    with pytest.raises(ConfigError, match="cannot resume|--folds") as err:
        resume_kfold(interrupted, **kwargs)
    assert message in str(err.value)
    assert files_and_mtimes(interrupted) == before


def test_directories_that_cannot_be_resumed(interrupted: Path, reference: Path, tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="does not exist"):
        resume_kfold(tmp_path / "missing")
    with pytest.raises(RunDirError, match="not a k-fold run directory"):
        resume_kfold(tmp_path)
    with pytest.raises(RunDirError, match=f"trainlab train --resume {interrupted / 'fold-1'}"):
        resume_kfold(interrupted / "fold-1")
    with pytest.raises(KFoldComplete, match=r"already complete \(status: completed\)"):
        resume_kfold(reference)


def test_cli_interrupt_then_resume(run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["kfold", "--model", "mlp", "--epochs", "1", "--folds", "2", "--set", "model.hidden=[8]",
            "--set", "train.batch_size=128", "--set", "callbacks.plot_curves=null", "--out", tmp_path]
    with monkeypatch.context() as patch:
        interrupt_during(patch, fit=1, epoch=0, batch=2)
        code, out, _ = run_cli(*args, "--name", "cv")
    assert code == 130 and f"trainlab kfold --resume {tmp_path / 'cv'}" in " ".join(out.split())
    code, _, err = run_cli("kfold", "--resume", tmp_path / "cv", "--out", tmp_path)
    assert code == 2 and "--out cannot be combined with --resume" in err
    code, out, _ = run_cli("kfold", "--resume", tmp_path / "cv", "--set", "train.device=cpu")
    assert code == 0, out
    assert "fold 1/2: resumed from its last checkpoint (it was interrupted; 0 epochs and 2 batches done)" in \
        " ".join(out.split()) and "fold 2/2: started" in out
    assert "fold ensemble on the test split" in out
    code, out, _ = run_cli("kfold", "--resume", tmp_path / "cv")
    assert code == 0 and "already complete" in " ".join(out.split())


@pytest.mark.slow  # two fresh processes: ~25 s here, mostly imports and start-up
def test_sigterm_stops_a_kfold_run_resumably(tmp_path: Path) -> None:
    """A real signal in a fresh process: exit 130 with the resume command, then ``--resume`` finishes the run."""
    proc = cli_subprocess("kfold", "--model", "mlp", "--folds", "2", "--epochs", "200", "--name", "cv",
                          "--set", "model.hidden=[8]", "--set", "callbacks.plot_curves=null",
                          "--set", "callbacks.progress.style=plain", cwd=tmp_path)
    deadline = time.time() + 120
    while time.time() < deadline and not proc.stdout.readline().startswith("epoch 1/"):
        pass  # wait until fold 1 is training
    proc.terminate()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "trainlab kfold --resume runs/cv" in out
    assert json.loads((tmp_path / "runs" / "cv" / "summary.json").read_text())["status"] == "interrupted"
    resume = cli_subprocess("kfold", "--resume", "runs/cv", "--epochs", "2", "--resume-force",
                            "--set", "callbacks.progress.style=none", cwd=tmp_path)
    out, err = resume.communicate(timeout=120)
    assert resume.returncode == 0, err
    assert "fold 1/2: resumed" in out and "fold 2/2: started" in out
    assert json.loads((tmp_path / "runs" / "cv" / "summary.json").read_text())["status"] == "completed"


def test_a_kfold_run_still_running_cannot_be_resumed_twice(interrupted: Path) -> None:
    import os

    from trainlab import rundir

    assert (interrupted / LOCK_FILE).is_file()  # the first run held it too
    with rundir.exclusive(interrupted):  # as the process still running it holds it
        before = files_and_mtimes(interrupted)
        with pytest.raises(RunDirError, match=f"in use by another training process \\(pid {os.getpid()}\\)"):
            resume_kfold(interrupted)
        assert files_and_mtimes(interrupted) == before
