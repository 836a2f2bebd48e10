"""Device loader vs DataLoader: same label stream, same batched augmentation, resumable mid-epoch."""

from __future__ import annotations

import logging

import pytest
import torch
from torch.utils.data import TensorDataset

from trainlab.data.loaders import BatchTransform, DeviceLoader, TorchLoader, make_loader

CPU = torch.device("cpu")
TRANSFORM = BatchTransform(scale=1 / 255, mean=[0.5], std=[0.25])


def _data(n: int = 50) -> TensorDataset:
    gen = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randint(0, 256, (n, 1, 8, 8), dtype=torch.uint8, generator=gen), torch.arange(n) % 10)


def _epoch(loader, epoch: int = 0, start: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return list(loader.epoch(epoch, start=start))


@pytest.mark.parametrize("augment", [None, ["hflip", {"crop": {"padding": 2}}, {"erasing": {"p": 0.5}}],
                                     ["rotation", "hflip", {"erasing": {"p": 0.5}}]])
def test_device_and_torch_paths_give_the_same_label_stream(augment) -> None:
    data = _data()
    kinds = ["torch"] if augment and "rotation" in augment else ["auto", "torch"]
    streams = []
    for kind in kinds:
        loader = make_loader(data, batch_size=8, device=CPU, transform=TRANSFORM, kind=kind, shuffle=True, seed=7,
                             augment=augment)
        streams.append([torch.cat([y for _, y in _epoch(loader, e)]) for e in range(2)])
    reference = [torch.cat([y for _, y in _epoch(DeviceLoader(data, 8, CPU, TRANSFORM, shuffle=True, seed=7), e)])
                 for e in range(2)]
    for stream in streams:
        assert all(torch.equal(a, b) for a, b in zip(stream, reference))
    assert not torch.equal(reference[0], reference[1])


def test_batched_augmentation_is_identical_on_both_paths() -> None:
    data, augment = _data(), ["hflip", {"crop": {"padding": 2}}, {"erasing": {"p": 0.5}}]
    device = make_loader(data, batch_size=8, device=CPU, transform=TRANSFORM, kind="device", shuffle=True, seed=1,
                         augment=augment)
    classic = make_loader(data, batch_size=8, device=CPU, transform=TRANSFORM, kind="torch", shuffle=True, seed=1,
                          augment=augment)
    assert isinstance(device, DeviceLoader) and isinstance(classic, TorchLoader)
    for (xa, _), (xb, _) in zip(_epoch(device, 1), _epoch(classic, 1)):
        assert torch.equal(xa, xb)
    plain = _epoch(make_loader(data, batch_size=8, device=CPU, transform=TRANSFORM, shuffle=True, seed=1), 1)
    assert not torch.equal(_epoch(device, 1)[0][0], plain[0][0])


@pytest.mark.parametrize("augment", [["hflip", {"crop": {"padding": 2}}], ["rotation", {"erasing": {"p": 0.5}}]])
def test_resume_mid_epoch_continues_the_same_batches(augment) -> None:
    loader = make_loader(_data(), batch_size=8, device=CPU, transform=TRANSFORM, shuffle=True, seed=3, augment=augment)
    full, resumed = _epoch(loader, 2), _epoch(loader, 2, start=3)
    assert len(resumed) == len(full) - 3
    for (xa, ya), (xb, yb) in zip(full[3:], resumed):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_per_image_transforms_pick_the_dataloader_with_a_notice(caplog, capsys) -> None:
    with caplog.at_level(logging.INFO, logger="trainlab"):
        loader = make_loader(_data(), batch_size=8, device=CPU, transform=TRANSFORM, shuffle=True,
                             augment=["rotation"])
    assert isinstance(loader, TorchLoader)
    notices = [r.getMessage() for r in caplog.records if r.name == "trainlab.data.loaders"]
    assert len(notices) == 1 and "rotation" in notices[0] and "DataLoader" in notices[0]
    assert capsys.readouterr().err == ""  # the library logs; only the CLI prints
    with pytest.raises(ValueError, match="data.loader=torch"):
        make_loader(_data(), batch_size=8, device=CPU, transform=TRANSFORM, kind="device", augment=["rotation"])


def test_unshuffled_loader_is_in_order_and_normalized() -> None:
    data = _data(20)
    x, y = _epoch(make_loader(data, batch_size=8, device=CPU, transform=TRANSFORM))[0]
    assert torch.equal(y, torch.arange(8) % 10)
    assert torch.allclose(x, (data.tensors[0][:8].float() / 255 - 0.5) / 0.25, atol=1e-6)
