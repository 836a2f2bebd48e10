"""`trainlab data stats|show` and training with augmentation / tables through the public entry points."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from tests.conftest import TINY
from tests.data.files import write_idx_dataset


def test_data_stats_prints_channel_statistics(tmp_path: Path, run_cli) -> None:
    from trainlab import data as data_mod

    write_idx_dataset(tmp_path)
    code, out, _ = run_cli("data", "stats", "mnist", "--set", f"data.root={tmp_path}")
    assert code == 0 and "train 36" in out and "val 4" in out and "test 20" in out
    # the computed columns are the training split's pixels scaled to [0, 1] (random pixels: about 0.47 and 0.30),
    # worked out here from the images themselves; 0.1307 and 0.3081 are MNIST's stored constants beside them
    pixels = data_mod.build("mnist", root=str(tmp_path), seed=0, val_fraction=0.1).train.tensors[0].double() / 255
    row = next(line for line in out.splitlines() if "0.1307" in line)
    cells = [cell.strip() for cell in row.split("│")[1:5]]
    assert cells == ["0", f"{pixels.mean():.4f}", f"{pixels.std(unbiased=False):.4f}", "0.1307"]


def test_data_stats_table(run_cli) -> None:
    code, out, _ = run_cli("data", "stats", "circles")
    assert code == 0 and "input (2,)" in out and "outer" in out


def test_data_show_saves_a_grid(tmp_path: Path, run_cli) -> None:
    out_file = tmp_path / "grid.png"
    code, out, _ = run_cli("data", "show", "digits", "--set", "data.augment=[hflip, {crop: {padding: 1}}]",
                           "--out", out_file, "-n", "10")
    assert code == 0 and "saved 10" in out
    with Image.open(out_file) as img:
        assert img.width > 100 and img.height > 100


def test_data_cli_errors(run_cli) -> None:
    code, _, err = run_cli("data", "stats", "mnist", "--set", "data.root=/nonexistent")
    assert code == 2 and "data.download=true" in err
    code, _, err = run_cli("data", "show", "moons")
    assert code == 2 and "table" in err


def test_train_with_augmentation_and_torch_loader(tmp_path: Path, run_cli) -> None:
    code, _, err = run_cli("train", "--model", "mlp", "--out", tmp_path, *TINY,
                           "--set", "data.augment=[hflip, {erasing: {p: 0.5}}]")
    assert code == 0 and "notice" not in err
    code, _, err = run_cli("train", "--model", "mlp", "--out", tmp_path, *TINY, "--set", "data.augment=[rotation]")
    assert code == 0 and "DataLoader" in err


def test_train_on_tables(tmp_path: Path, run_cli) -> None:
    for data in ("moons", "synthetic-linear"):
        code, out, err = run_cli("train", "--model", "mlp", "--data", data, "--out", tmp_path, *TINY)
        assert code == 0, err
        assert "test_" in out
