"""Safe loading: no load path runs code hidden in a pickle; foreign full pickles need --trust-pickle."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import trainlab
from tests.reliability.helpers import QUIET, QUIET_ARGS
from trainlab import weights
from trainlab.engine import checkpoint
from trainlab.engine.checkpoint import CheckpointError


class Evil:
    """Unpickling this calls ``open(marker, "w")``: the marker file proves that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def evil_pickle(path: Path, marker: Path) -> Path:
    torch.save({"conv.weight": torch.ones(2), "payload": Evil(marker)}, path)
    return path


def plant_evil_state(run_dir: Path, marker: Path) -> Path:
    """Replace the best and last checkpoints' state.pt with a code-running pickle, with manifests to match
    (so the manifest check passes and only the safe unpickler stands between the file and the marker)."""
    for ckpt in (run_dir / "checkpoints").iterdir():
        evil_pickle(ckpt / checkpoint.STATE_FILE, marker)
        manifest = json.loads((ckpt / checkpoint.MANIFEST_FILE).read_text())
        data = (ckpt / checkpoint.STATE_FILE).read_bytes()
        manifest["files"][checkpoint.STATE_FILE] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        (ckpt / checkpoint.MANIFEST_FILE).write_text(json.dumps(manifest))
    return run_dir


@pytest.fixture
def evil_run(tiny_run: Path, tmp_path: Path) -> Path:
    import shutil

    copy = tmp_path / "evil-run"
    shutil.copytree(tiny_run, copy)
    return plant_evil_state(copy, tmp_path / "MARKER")


def fresh_model() -> torch.nn.Module:
    return trainlab.create_model("simple-cnn", num_classes=10, in_channels=1, input_size=(8, 8), width=4)


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("command", ["resume", "eval", "predict", "init_from"])
def test_every_cli_load_path_refuses_code_in_a_pickle(evil_run: Path, tmp_path: Path, run_cli, command: str) -> None:
    marker = tmp_path / "MARKER"
    image = tmp_path / "digit.png"
    from PIL import Image

    Image.new("L", (8, 8), 0).save(image)
    args = {"resume": ["train", "--resume", evil_run],
            "eval": ["eval", evil_run, "--device", "cpu"],
            "predict": ["predict", evil_run, image],
            "init_from": ["train", "--epochs", "1", "--out", tmp_path / "runs", "--name", "ft",
                          "--init-from", evil_pickle(tmp_path / "evil.pth", marker), *QUIET_ARGS]}[command]
    code, out, err = run_cli(*args)
    assert code != 0 and not marker.exists(), "the pickle's code ran"
    assert ("cannot be loaded safely" in err or "would run code" in err) and "Traceback" not in err
    assert not (tmp_path / "runs" / "ft").exists(), "a refused init_from leaves no run directory"


def test_load_run_refuses_code_in_a_pickle(evil_run: Path, tmp_path: Path) -> None:
    run = trainlab.load_run(evil_run)
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        run.load_model()
    with pytest.raises(CheckpointError):
        trainlab.train(resume=evil_run)
    assert not (tmp_path / "MARKER").exists()


def test_plain_state_dict_pth_loads_with_weights_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = fresh_model().state_dict()
    torch.save(source, tmp_path / "plain.pth")
    torch.save({"epoch": 3, "model_state_dict": source}, tmp_path / "nested.pt")
    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(k.get("weights_only")) or real_load(*a, **k))
    for name in ("plain.pth", "nested.pt"):
        model = fresh_model()
        assert weights.init_model(model, tmp_path / name) == []
        assert_same(model.state_dict(), source)
    assert calls == [True, True]


def test_foreign_full_pickle_needs_trust_pickle_and_warns(tmp_path: Path, caplog) -> None:
    source = fresh_model()
    torch.save(source, tmp_path / "whole-module.pth")  # a pickled nn.Module: not loadable with weights_only
    with pytest.raises(CheckpointError, match="--trust-pickle"):
        weights.read_weights(tmp_path / "whole-module.pth")
    with caplog.at_level("WARNING", logger="trainlab"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = weights.read_weights(tmp_path / "whole-module.pth", trust_pickle=True)
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("trainlab.weights", "WARNING", f"loading {tmp_path / 'whole-module.pth'} with full unpickling "
                                        "(--trust-pickle): this runs any code the file contains")]
    assert not [w for w in caught if "full unpickling" in str(w.message)], "logged once, not also a UserWarning"
    assert_same(loaded, source.state_dict())


def test_trust_pickle_on_the_cli_warns(tmp_path: Path, run_cli) -> None:
    torch.save(fresh_model(), tmp_path / "whole.pth")
    code, _, err = run_cli("train", "--epochs", "1", "--out", tmp_path, "--name", "refused", *QUIET_ARGS,
                           "--init-from", tmp_path / "whole.pth")
    assert code == 2 and "would run code" in err and not (tmp_path / "refused").exists()
    code, _, err = run_cli("train", "--epochs", "1", "--out", tmp_path, "--name", "trusted", *QUIET_ARGS,
                           "--init-from", tmp_path / "whole.pth", "--trust-pickle")
    assert code == 0, err
    assert (f"warning: loading {tmp_path / 'whole.pth'} with full unpickling (--trust-pickle): this runs any code "
            "the file contains\n") in err


@pytest.mark.parametrize("content", [b"", b"\x08\x00\x00\x00\x00\x00\x00\x00{\"a\":", b"not a safetensors file at all",
                                     b"\xff" * 8 + b"{}"])
def test_malformed_safetensors_give_a_clean_error(tmp_path: Path, run_cli, content: bytes) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(content)
    with pytest.raises(CheckpointError, match="is not a valid safetensors file"):
        weights.read_weights(bad)
    code, _, err = run_cli("train", "--epochs", "1", "--out", tmp_path, "--name", "x", *QUIET_ARGS, "--init-from", bad)
    assert code == 2 and f"{bad} is not a valid safetensors file" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_truncated_safetensors_from_a_real_file(tmp_path: Path) -> None:
    save_file(fresh_model().state_dict(), str(tmp_path / "good.safetensors"))
    data = (tmp_path / "good.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.safetensors is not a valid safetensors file"):
        weights.read_weights(tmp_path / "cut.safetensors")


def parameters_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Learned weights equal up to an lr=1e-12 step (BatchNorm running statistics move regardless of lr)."""
    names = [k for k in a if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    return all(torch.allclose(a[k], b[k], atol=1e-6) for k in names)


def test_fine_tuning_starts_from_the_given_weights(tiny_run: Path, tmp_path: Path) -> None:
    """init_from a run directory, a checkpoint directory and a .safetensors file; resume never reloads it."""
    best = checkpoint.load(trainlab.load_run(tiny_run).best_checkpoint())
    save_file(best.model, str(tmp_path / "w.safetensors"))
    almost_frozen = {**QUIET, "optim.lr": 1e-12, "callbacks.checkpoint.save_best": False}
    for source in (tiny_run, best.path, tmp_path / "w.safetensors"):
        run = trainlab.train(epochs=1, out=tmp_path, init_from=str(source), overrides=almost_frozen)
        final = checkpoint.load(checkpoint.latest(run.path / "checkpoints", "last")).model
        assert parameters_close(final, best.model)
    fresh = trainlab.train(epochs=1, out=tmp_path, overrides=almost_frozen)
    final = checkpoint.load(checkpoint.latest(fresh.path / "checkpoints", "last")).model
    assert not parameters_close(final, best.model)
    (tmp_path / "w.safetensors").unlink()  # a resume continues from its own checkpoint, not the init file
    assert trainlab.train(epochs=2, resume=run.path).summary["epochs_completed"] == 2


def test_init_from_another_architecture_fails_clearly(tmp_path: Path) -> None:
    save_file({"encoder.weight": torch.zeros(3, 3)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match="no tensor of .* matches the model by name and shape"):
        weights.init_model(fresh_model(), tmp_path / "other.safetensors")
