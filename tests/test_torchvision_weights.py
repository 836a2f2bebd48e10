"""``train.init_from`` reads torchvision state dicts for the zoo's torchvision-equivalent models: a torchvision
model built here (random weights, no download), saved with ``torch.save(model.state_dict())``, gives the zoo model
the same logits; a file that cannot be mapped is refused naming the first tensor that does not fit."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torchvision.models as tvm
from PIL import Image
from torch import nn

import trainlab
from trainlab import weights
from trainlab.engine.checkpoint import CheckpointError

SLOW = pytest.mark.slow
# zoo name, torchvision builder, image side, zoo options (the ImageNet stem, as torchvision has it)
FAMILIES = [
    pytest.param("resnet18", "resnet18", 32, {}, id="resnet18"),
    pytest.param("mobilenet_v3_small", "mobilenet_v3_small", 32, {}, id="mobilenet_v3_small"),
    pytest.param("shufflenet_v2", "shufflenet_v2_x1_0", 32, {}, id="shufflenet_v2"),
    pytest.param("resnext50_32x4d", "resnext50_32x4d", 32, {}, id="resnext50", marks=SLOW),
    pytest.param("vgg11_bn", "vgg11_bn", 32, {}, id="vgg11_bn", marks=SLOW),
    pytest.param("densenet121", "densenet121", 32, {}, id="densenet121", marks=SLOW),
    pytest.param("mobilenet_v2", "mobilenet_v2", 32, {}, id="mobilenet_v2", marks=SLOW),
    pytest.param("mobilenet_v3_large", "mobilenet_v3_large", 32, {}, id="mobilenet_v3_large", marks=SLOW),
    pytest.param("efficientnet_b0", "efficientnet_b0", 32, {}, id="efficientnet_b0", marks=SLOW),
    pytest.param("googlenet", "googlenet", 64, {}, id="googlenet", marks=SLOW),
    pytest.param("googlenet", "googlenet", 64, {"aux_logits": True}, id="googlenet-aux", marks=SLOW),
    pytest.param("alexnet", "alexnet", 64, {"hidden": 4096}, id="alexnet", marks=SLOW),
]


def torchvision_file(builder: str, path: Path, num_classes: int = 7) -> nn.Module:
    """A torchvision model with random weights and random BatchNorm statistics (so the buffers' mapping counts
    too), its ``state_dict()`` saved at ``path``."""
    extra = {"aux_logits": True, "init_weights": True} if builder == "googlenet" else {}
    model = getattr(tvm, builder)(weights=None, num_classes=num_classes, **extra).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.copy_(torch.randn(buffer.shape, generator=generator) * 0.1)
            elif name.endswith("running_var"):
                buffer.copy_(torch.rand(buffer.shape, generator=generator) + 0.5)
    torch.save(model.state_dict(), path)
    return model


def zoo_model(name: str, size: int, options: dict[str, Any], num_classes: int = 7, channels: int = 3) -> nn.Module:
    return trainlab.create_model(name, num_classes=num_classes, in_channels=channels, input_size=size,
                                 small_input=False, **options)


@pytest.mark.parametrize("ours,theirs,size,options", FAMILIES)
def test_torchvision_weights_give_the_same_logits(ours: str, theirs: str, size: int, options: dict[str, Any],
                                                  tmp_path: Path) -> None:
    reference = torchvision_file(theirs, tmp_path / "tv.pth")
    model = zoo_model(ours, size, options)
    assert weights.init_model(model, tmp_path / "tv.pth") == []
    if ours == "efficientnet_b0":  # the zoo's B0 keeps TensorFlow's BatchNorm eps 1e-3; torchvision's is 1e-5
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eps = 1e-5
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(model.eval()(x), reference(x))


def test_a_torchvision_head_for_other_classes_is_replaced_and_named(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    reference = torchvision_file("resnet18", tmp_path / "tv.pth", num_classes=1000)
    model = zoo_model("resnet18", 32, {}, num_classes=10)
    with caplog.at_level(logging.INFO, logger="trainlab"):
        assert weights.init_model(model, tmp_path / "tv.pth") == ["5.2.bias", "5.2.weight"]
    assert "paired its 122 tensors with the model's by position" in caplog.text
    assert "created a new head: layer(s) 5.2 freshly initialized (5.2.weight [1000, 512] -> [10, 512]" in caplog.text
    assert torch.equal(model.state_dict()["1.0.conv1.0.weight"], reference.state_dict()["layer1.0.conv1.weight"])


@pytest.mark.parametrize("options,channels,first", [
    ({"small_input": True}, 3, "tensor 0 'conv1.weight' has shape [64, 3, 7, 7], the model's '0.0.weight' "
                               "[64, 3, 3, 3]"),
    ({"small_input": False}, 1, "tensor 0 'conv1.weight' has shape [64, 3, 7, 7], the model's '0.0.0.weight' "
                                "[64, 1, 7, 7]"),
])
def test_a_file_that_does_not_map_is_refused_naming_the_tensor(options: dict[str, Any], channels: int, first: str,
                                                               tmp_path: Path) -> None:
    torchvision_file("resnet18", tmp_path / "tv.pth")
    model = trainlab.create_model("resnet18", num_classes=7, in_channels=channels, input_size=32, **options)
    with pytest.raises(CheckpointError) as refused:
        weights.init_model(model, tmp_path / "tv.pth")
    assert first in str(refused.value) and "model.small_input=false" in str(refused.value)


def test_another_family_is_refused_by_tensor_count(tmp_path: Path) -> None:
    torchvision_file("mobilenet_v3_small", tmp_path / "tv.pth")
    with pytest.raises(CheckpointError, match="do not pair up by position either: the file holds 244 tensors, "
                                              "the model 122"):
        weights.init_model(zoo_model("resnet18", 32, {}), tmp_path / "tv.pth")


def rgb_folder(root: Path) -> Path:
    """Two classes of four random 32×32 RGB images, class-per-folder."""
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for index in range(4):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / label / f"{index}.png")
    return root


def test_the_cli_fine_tunes_from_a_torchvision_file(tmp_path: Path, run_cli: Any) -> None:
    torchvision_file("shufflenet_v2_x1_0", tmp_path / "tv.pth", num_classes=1000)
    code, _, err = run_cli("train", "--data", "imagefolder", "--set", f"data.root={rgb_folder(tmp_path / 'img')}",
                           "--set", "data.val_fraction=0.25", "--model", "shufflenet_v2", "--epochs", "1",
                           "--init-from", tmp_path / "tv.pth", "--out", tmp_path, "--name", "ft",
                           "--set", "model.small_input=false", "--set", "finetune.mode=head",
                           "--set", "callbacks.progress.style=none", "--set", "callbacks.plot_curves=null")
    assert code == 0, err
    assert "by position and shape (torchvision layout)" in err and "created a new head: layer(s) 5.2" in err
