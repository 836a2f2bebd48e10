"""Hostile checkpoints and run directories: a checkpoint that does not match its manifest, or that is not a real
checkpoint of this run, is never loaded; resume takes the newest one that passes every check, says so when it
skips one, and records which one it used (``summary.json`` ``resumed_from``)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import trainlab
from tests.reliability.helpers import QUIET
from trainlab.api import TrainingInterrupted
from trainlab.engine import checkpoint
from trainlab.engine.trainer import Trainer

FIRST, SECOND = "last-000000021", "last-000000042"  # digits at batch 64: 21 steps per epoch


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two epochs with two ``last`` checkpoints kept, and a ``best`` one."""
    out = tmp_path_factory.mktemp("runs")
    run = trainlab.train(epochs=2, out=out, name="two", overrides={**QUIET, "callbacks.checkpoint.keep": 2})
    names = sorted(p.name for p in (run.path / "checkpoints").iterdir())
    assert [n for n in names if n.startswith("last-")] == [FIRST, SECOND]
    assert "resumed_from" not in run.summary  # a fresh run resumed from nothing
    return run.path


@pytest.fixture
def run_dir(finished: Path, tmp_path: Path) -> Path:
    """A private copy to damage."""
    return Path(shutil.copytree(finished, tmp_path / "run"))


def best_of(run_dir: Path) -> Path:
    found = checkpoint.latest(run_dir / "checkpoints", "best")
    assert found is not None
    return found


def record(ckpt: Path) -> None:
    """Make the manifest agree with the files as they now are, as a careful forger would."""
    files = {name: {"bytes": (ckpt / name).stat().st_size,
                    "sha256": hashlib.sha256((ckpt / name).read_bytes()).hexdigest()}
             for name in checkpoint.CONTENT_FILES}
    (ckpt / checkpoint.MANIFEST_FILE).write_text(json.dumps({"files": files}))


def zero_weights(ckpt: Path) -> None:
    """Swap in other weights (all zeros: a model that predicts one class) of the same shapes."""
    weights = load_file(str(ckpt / checkpoint.MODEL_FILE))
    save_file({name: torch.zeros_like(t) for name, t in weights.items()}, str(ckpt / checkpoint.MODEL_FILE))


def foreign_checkpoint(run_dir: Path, where: Path) -> Path:
    """A complete checkpoint that passes every check but holds other weights, outside the run."""
    copy = Path(shutil.copytree(run_dir / "checkpoints" / SECOND, where))
    zero_weights(copy)
    record(copy)
    return copy


def one_error_line(err: str) -> str:
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def resume(run_cli, run_dir: Path) -> tuple[str, dict]:
    code, _, err = run_cli("train", "--resume", run_dir, "--epochs", "3")
    assert code == 0, err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_completed"] == 3
    return err, summary


def tamper_lists_nothing(ckpt: Path) -> str:
    zero_weights(ckpt)
    (ckpt / checkpoint.MANIFEST_FILE).write_text(json.dumps({"files": {}}))
    return "manifest.json does not list model.safetensors, state.pt, meta.json"


def tamper_points_outside(ckpt: Path) -> str:
    outside = ckpt.parents[2] / "x"
    outside.write_bytes(b"not part of any checkpoint")
    manifest = json.loads((ckpt / checkpoint.MANIFEST_FILE).read_text())
    manifest["files"]["../../../x"] = {"bytes": outside.stat().st_size,
                                       "sha256": hashlib.sha256(outside.read_bytes()).hexdigest()}
    (ckpt / checkpoint.MANIFEST_FILE).write_text(json.dumps(manifest))
    return "lists '../../../x', which is not a plain file name"


def tamper_not_json(ckpt: Path) -> str:
    (ckpt / checkpoint.MANIFEST_FILE).write_text("{'files': ")
    return "manifest.json is not valid JSON"


def tamper_missing_file(ckpt: Path) -> str:
    (ckpt / checkpoint.STATE_FILE).unlink()
    return "state.pt is listed in manifest.json but missing"


def tamper_huge_size(ckpt: Path) -> str:
    manifest = json.loads((ckpt / checkpoint.MANIFEST_FILE).read_text())
    manifest["files"][checkpoint.MODEL_FILE]["bytes"] = 2 ** 80
    (ckpt / checkpoint.MANIFEST_FILE).write_text(json.dumps(manifest))
    return f"recorded {2 ** 80}"


def tamper_meta_not_json(ckpt: Path) -> str:
    (ckpt / checkpoint.META_FILE).write_text('{"epoch": 2,')
    record(ckpt)
    return "meta.json is not readable JSON"


@pytest.mark.parametrize("tamper", [tamper_lists_nothing, tamper_points_outside, tamper_not_json,
                                    tamper_missing_file, tamper_huge_size, tamper_meta_not_json])
def test_eval_refuses_a_checkpoint_that_does_not_match_its_manifest(run_dir: Path, run_cli, tamper) -> None:
    best = best_of(run_dir)
    problem = tamper(best)
    code, out, err = run_cli("eval", run_dir, "--device", "cpu")
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert line.startswith((f"error: checkpoint {best} is refused: ", f"error: {best}/")), line
    assert problem in line


def test_resume_continues_from_the_newest_checkpoint_and_records_it(run_dir: Path, run_cli) -> None:
    err, summary = resume(run_cli, run_dir)
    assert summary["resumed_from"] == SECOND and summary["steps"] == 63
    assert "warning" not in err


def test_resumed_from_stays_through_an_interrupted_resume_and_follows_the_next(run_dir: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    original = Trainer._emit

    def ctrl_c_at_step_50(self: Trainer, hook: str) -> None:
        original(self, hook)
        if hook == "on_batch_end" and self.state.step == 50:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "_emit", ctrl_c_at_step_50)
        with pytest.raises(TrainingInterrupted) as stop:
            trainlab.train(resume=run_dir, epochs=3)
    assert not isinstance(stop.value, KeyboardInterrupt)  # a normal exception: one failing test, not a dead session
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["status"], summary["resumed_from"]) == ("interrupted", SECOND)
    again = trainlab.train(resume=run_dir, epochs=3)
    assert again.summary["resumed_from"] == "last-000000050" and again.summary["steps"] == 63


def test_a_refused_resume_leaves_the_run_directory_as_it_was(run_dir: Path, run_cli) -> None:
    for name in (FIRST, SECOND):
        (run_dir / "checkpoints" / name / checkpoint.STATE_FILE).unlink()
    before = {name: (run_dir / name).read_bytes() for name in ("config.yaml", "summary.json", "data.json")}
    code, _, err = run_cli("train", "--resume", run_dir, "--epochs", "3")
    line = one_error_line(err)
    assert code == 2 and line.startswith(f"error: {run_dir} has no complete checkpoint to resume from (2 refused, "
                                         f"the newest because: checkpoint {run_dir / 'checkpoints' / SECOND} is refused")
    assert err.count("warning: skipping damaged checkpoint") == 2
    assert {name: (run_dir / name).read_bytes() for name in before} == before


def test_resume_skips_a_corrupt_newest_checkpoint_and_says_so(run_dir: Path, run_cli) -> None:
    newest = run_dir / "checkpoints" / SECOND
    data = bytearray((newest / checkpoint.MODEL_FILE).read_bytes())
    data[-1] ^= 0xFF  # still a loadable safetensors file: only the manifest can tell
    (newest / checkpoint.MODEL_FILE).write_bytes(bytes(data))
    err, summary = resume(run_cli, run_dir)
    assert summary["resumed_from"] == FIRST
    assert f"warning: skipping damaged checkpoint: {newest / checkpoint.MODEL_FILE} does not match manifest.json" in err
    assert f"warning: resuming from the older checkpoint {run_dir / 'checkpoints' / FIRST}" in err


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_resume_never_runs_code_in_state_pt_and_falls_back(run_dir: Path, run_cli, tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return open, (str(tmp_path / "MARKER"), "w")

    newest = run_dir / "checkpoints" / SECOND
    torch.save({"train_state": {}, "payload": Evil()}, newest / checkpoint.STATE_FILE)
    record(newest)
    err, summary = resume(run_cli, run_dir)
    assert not (tmp_path / "MARKER").exists(), "the pickle's code ran"
    assert summary["resumed_from"] == FIRST
    assert f"warning: skipping damaged checkpoint: {newest / checkpoint.STATE_FILE} cannot be loaded safely" in err


def test_resume_skips_a_newest_checkpoint_whose_meta_is_not_json(run_dir: Path, run_cli) -> None:
    newest = run_dir / "checkpoints" / SECOND
    tamper_meta_not_json(newest)
    err, summary = resume(run_cli, run_dir)
    assert summary["resumed_from"] == FIRST
    assert f"warning: skipping damaged checkpoint: checkpoint {newest} is refused: meta.json is not readable" in err


@pytest.mark.parametrize("name, why", [("last-999999999", "not a symlink to"),
                                       ("last-final", "not a checkpoint name (last-<step digits>)")])
def test_resume_ignores_what_only_looks_like_a_newer_checkpoint(run_dir: Path, run_cli, tmp_path: Path, name: str,
                                                                why: str) -> None:
    foreign = foreign_checkpoint(run_dir, tmp_path / "elsewhere")
    planted = run_dir / "checkpoints" / name
    if name == "last-final":
        shutil.copytree(foreign, planted)  # a real, valid checkpoint directory under a name that is no step
    else:
        planted.symlink_to(foreign, target_is_directory=True)
    err, summary = resume(run_cli, run_dir)
    assert summary["resumed_from"] == SECOND
    assert f"warning: ignoring {planted}: " in err and why in err


def test_eval_ignores_a_best_checkpoint_symlinked_from_elsewhere(run_dir: Path, run_cli, tmp_path: Path) -> None:
    foreign = foreign_checkpoint(run_dir, tmp_path / "elsewhere")
    planted = run_dir / "checkpoints" / "best-999999999"
    planted.symlink_to(foreign, target_is_directory=True)
    code, out, err = run_cli("eval", run_dir, "--device", "cpu")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert code == 0 and f"test_acc {summary['test']['test_acc']:.2%}" in out  # the run's own best weights
    assert f"warning: ignoring {planted}: a checkpoint must be a directory inside" in err


def test_a_verified_checkpoint_whose_state_does_not_fit_is_skipped_and_named(run_dir: Path, run_cli) -> None:
    newest = run_dir / "checkpoints" / SECOND
    torch.save({"train_state": {}}, newest / checkpoint.STATE_FILE)  # plain tensors-and-dicts, but not this run's
    record(newest)
    err, summary = resume(run_cli, run_dir)
    assert f"checkpoint {newest} does not fit this run (KeyError" in err
    assert summary["resumed_from"] == FIRST
