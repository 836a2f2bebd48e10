"""Model options: input sizes as users type them, activations and init schemes by name, small-input stems,
width/depth knobs, auxiliary loss."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import trainlab  # noqa: F401
from trainlab.config import ConfigError, load
from trainlab.models import create
from trainlab.models.init import INITS, init_weights
from trainlab.models.layers import ACTIVATIONS, activation, make_divisible
from trainlab.models.options import normalize_input_size
from trainlab.registry import MODELS

ISSUE_ACTIVATIONS = ["relu", "leaky_relu", "sigmoid", "tanh", "silu", "gelu", "hardswish"]


def small(name: str, **options) -> nn.Module:
    return create(name, num_classes=10, in_channels=1, input_size=(28, 28), **options)


# Deep variants repeat resnet50's code path with more blocks; building them twice is slow, so they run with -m slow.
DEEP = {"resnet101", "resnet152"}
SIDE = 32  # every model in the zoo builds and runs at 32x32 (see test_zoo), and it keeps this test fast


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in DEEP else n for n in MODELS.names()
                                  if not MODELS.entry(n).meta.get("sequence")])  # sequence models take no images
def test_int_input_size_builds_the_same_model_as_the_square_pair(name):
    """``input_size=32`` means 32x32 (as in timm and torchvision): same layers, same logits on the same input."""
    x = torch.randn(1, 3, SIDE, SIDE)
    logits = {}
    for size in (SIDE, (SIDE, SIDE), [SIDE, SIDE]):
        torch.manual_seed(0)
        model = create(name, num_classes=7, in_channels=3, input_size=size).eval()
        with torch.no_grad():
            logits[repr(size)] = (model(x), {k: v.shape for k, v in model.state_dict().items()})
    (int_out, int_shapes), *pairs = logits.values()
    assert int_out.shape == (1, 7)
    for pair_out, pair_shapes in pairs:
        assert pair_shapes == int_shapes
        assert torch.equal(pair_out, int_out)


def test_resnet18_accepts_the_int_size_from_the_issue():
    with torch.device("meta"):
        model = create("resnet18", num_classes=10, in_channels=3, input_size=224)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].kernel_size == (7, 7)  # 224 is a large input: ImageNet stem, as for (224, 224)
    assert [m.out_features for m in model.modules() if isinstance(m, nn.Linear)] == [10]


@pytest.mark.parametrize(("given", "expected"), [
    (224, (224, 224)), ((224, 160), (224, 160)), ([28, 32], (28, 32)), (torch.Size([8, 9]), (8, 9)), (None, None),
])
def test_normalize_input_size_accepts_ints_pairs_and_none(given, expected):
    size = normalize_input_size(given)
    assert size == expected
    assert size is None or all(type(side) is int for side in size)


@pytest.mark.parametrize("bad", [0, -32, (224, 224, 3), (224,), "224", "224x224", True, (224, True), (0, 32),
                                 (32, -1), 224.0, (32.0, 32.0)])
def test_bad_input_size_names_the_option_the_value_and_what_is_accepted(bad):
    with pytest.raises(ValueError) as error:
        create("resnet18", num_classes=10, in_channels=3, input_size=bad)
    message = str(error.value)
    assert message.startswith("input_size must be an int > 0 (224 means 224x224), a (height, width) pair")
    assert "or None for tables" in message
    assert message.endswith(f"got {bad!r}")


@pytest.mark.parametrize("name", ISSUE_ACTIVATIONS)
def test_activation_by_name_matches_torch(name):
    x = torch.linspace(-3, 3, 13)
    reference = {"leaky_relu": nn.LeakyReLU(0.01)}.get(name) or getattr(nn.functional, name)
    assert torch.allclose(activation(name)(x), reference(x))


@pytest.mark.parametrize("name", ISSUE_ACTIVATIONS)
def test_models_use_the_chosen_activation(name):
    model = small("lenet-modern", activation=name)
    assert any(type(m) is type(ACTIVATIONS[name]()) for m in model.modules())
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_lenet_variants_differ_as_designed():
    classic, modern = small("lenet"), small("lenet-modern")
    assert any(isinstance(m, nn.Sigmoid) for m in classic) and any(isinstance(m, nn.AvgPool2d) for m in classic)
    assert any(isinstance(m, nn.ReLU) for m in modern) and any(isinstance(m, nn.MaxPool2d) for m in modern)


def test_unknown_activation_and_init_suggest_the_right_name():
    with pytest.raises(ValueError, match="did you mean 'gelu'"):
        small("mlp", activation="gelo")
    with pytest.raises(ValueError, match="did you mean 'xavier_uniform'"):
        small("resnet18", init="xavier_unifrom")


@pytest.mark.parametrize("scheme", sorted(INITS))
def test_init_schemes_set_weights_and_zero_biases(scheme):
    torch.manual_seed(0)
    model = init_weights(nn.Sequential(nn.Conv2d(16, 64, 3), nn.BatchNorm2d(64), nn.Linear(256, 512)), scheme)
    conv, bn, linear = model
    assert torch.count_nonzero(conv.bias) == 0 and torch.count_nonzero(linear.bias) == 0
    assert torch.all(bn.weight == 1)
    fan_in, fan_out = 256, 512
    expected_std = {"normal": 0.01, "uniform": 0.1 / 12 ** 0.5, "xavier_uniform": (2 / (fan_in + fan_out)) ** 0.5,
                    "xavier_normal": (2 / (fan_in + fan_out)) ** 0.5, "kaiming_uniform": (2 / fan_in) ** 0.5,
                    "kaiming_normal": (2 / fan_in) ** 0.5, "kaiming_uniform_fan_out": (2 / fan_out) ** 0.5,
                    "kaiming_normal_fan_out": (2 / fan_out) ** 0.5, "zeros": 0.0}[scheme]
    assert linear.weight.std().item() == pytest.approx(expected_std, rel=0.05, abs=1e-12)


def test_zero_init_makes_every_hidden_unit_identical_after_training():
    """The curriculum's lesson: with all weights equal, every hidden unit gets the same gradient and stays a copy."""
    torch.manual_seed(0)
    model = init_weights(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)), "zeros")
    nn.init.constant_(model[0].weight, 0.1)  # zeros everywhere would leave no gradient at all; equal is enough
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    for _ in range(20):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    hidden = model[0].weight
    assert torch.allclose(hidden, hidden[:1].expand_as(hidden)) and hidden.std(dim=1).sum() > 0


def test_init_option_reaches_every_family():
    torch.manual_seed(0)
    model = small("vgg11", width_div=8, hidden=64, init="normal")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(abs(m.weight.std().item() - 0.01) < 0.003 for m in convs[2:])


@pytest.mark.parametrize(("name", "kernel"), [("resnet18", 7), ("alexnet", 11), ("densenet121", 7), ("nin", 11)])
def test_small_input_stem_is_automatic(name, kernel):
    first_conv = lambda m: next(c for c in m.modules() if isinstance(c, nn.Conv2d))  # noqa: E731
    assert first_conv(small(name)).kernel_size == (3, 3)
    with torch.device("meta"):
        big = create(name, num_classes=10, in_channels=3, input_size=(224, 224))
        forced = create(name, num_classes=10, in_channels=3, input_size=(32, 32), small_input=False)
    assert first_conv(big).kernel_size == first_conv(forced).kernel_size == (kernel, kernel)


def test_small_stem_keeps_resolution():
    """The CIFAR stem keeps 28x28 into stage 1; the ImageNet stem would leave 7x7."""
    features = small("resnet18")[:2]
    assert features(torch.randn(1, 1, 28, 28)).shape[-1] == 28


def test_vgg_width_div_divides_channels():
    convs = [m for m in small("vgg16", width_div=4).modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs][:3] == [16, 16, 32] and convs[-1].out_channels == 128


def test_efficientnet_multipliers_scale_width_and_depth():
    base, wide = small("efficientnet_b0"), small("efficientnet_b0", width_mult=1.5, depth_mult=2.0)
    count = lambda m: sum(isinstance(x, nn.Conv2d) for x in m.modules())  # noqa: E731
    assert count(wide) > count(base) * 1.8
    assert make_divisible(32 * 1.5) == 48


def test_googlenet_aux_loss_is_main_plus_weighted_aux():
    torch.manual_seed(0)
    model = small("googlenet", aux_logits=True, aux_weight=0.5)
    base = nn.CrossEntropyLoss()
    y = torch.tensor([3, 4])
    main, aux1, aux2 = model.train()(torch.randn(2, 1, 28, 28))
    loss = model.wrap_loss(base)((main, aux1, aux2), y)
    assert loss.item() == pytest.approx((base(main, y) + 0.5 * (base(aux1, y) + base(aux2, y))).item(), rel=1e-5)
    logits = model.eval()(torch.randn(2, 1, 28, 28))
    assert isinstance(logits, torch.Tensor) and model.wrap_loss(base)(logits, y).item() == pytest.approx(
        base(logits, y).item())
    assert small("googlenet").wrap_loss(base) is base


@pytest.mark.parametrize(("model", "key", "value", "message"), [
    ("vgg11", "width_div", 0, "width_div must be > 0"),
    ("mlp", "dropout", 1.5, "dropout must be in"),
    ("shufflenet_v2", "width", 0.7, "width must be one of"),
    ("shufflenet_v1", "groups", 5, "groups must be one of"),
    ("mobilenet_v2", "width_mult", -1.0, "width_mult must be > 0"),
])
def test_bad_option_values_are_explained(model, key, value, message):
    with pytest.raises(ValueError, match=message):
        small(model, **{key: value})


def test_config_validates_model_options_against_the_builder():
    cfg = load(None, flags={"model": "vgg11"}, overrides=["model.width_div=4", "model.activation=gelu"])
    assert cfg.model.options() == {"width_div": 4, "activation": "gelu"}
    with pytest.raises(ConfigError, match="did you mean 'aux_logits'"):
        load(None, flags={"model": "googlenet"}, overrides=["model.aux_logit=true"])


@pytest.mark.slow  # ~40 s on 2 CPU cores: a full epoch of GoogLeNet
def test_googlenet_aux_heads_train_through_the_api(tmp_path):
    """The trainer knows nothing about auxiliary heads: api.py asks the model for its loss via wrap_loss."""
    run = trainlab.train("googlenet", "digits", 1, overrides={"model.aux_logits": True, "train.batch_size": 256,
                                                               "callbacks.progress.style": "none"},
                         out=str(tmp_path))
    summary = run.summary
    assert summary["status"] == "completed"
    # The aux heads' loss trains the network (train_acc about 0.57 in its 6 steps, chance 0.1). test_acc would
    # say nothing: after 6 steps the batch-norm running statistics used in evaluation still lag, near chance.
    assert summary["final"]["train_acc"] > 0.3


def test_mlp_takes_one_dropout_rate_per_hidden_layer():
    model = create("mlp", num_classes=3, in_channels=4, input_size=None, hidden=[16, 8], dropout=[0.2, 0.5])
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.2, 0.5]
    same = create("mlp", num_classes=3, in_channels=4, input_size=None, hidden=[16, 8], dropout=0.3)
    assert [m.p for m in same.modules() if isinstance(m, nn.Dropout)] == [0.3, 0.3]
    with pytest.raises(ValueError, match=r"2 hidden layer\(s\), got 3 rate\(s\)"):
        create("mlp", num_classes=3, in_channels=4, input_size=None, hidden=[16, 8], dropout=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="dropout must be in"):
        create("mlp", num_classes=3, in_channels=4, input_size=None, hidden=[16, 8], dropout=[0.1, 1.0])


def test_per_layer_dropout_through_the_cli(tmp_path, run_cli):
    code, _, err = run_cli("train", "--model", "mlp", "--epochs", "1", "--out", tmp_path, "--name", "d",
                           "--set", "model.hidden=[16, 8]", "--set", "model.dropout=[0.2, 0.5]",
                           "--set", "callbacks.progress.style=none")
    assert code == 0, err
    code, _, err = run_cli("train", "--model", "mlp", "--epochs", "1", "--out", tmp_path, "--name", "bad",
                           "--set", "model.hidden=[16, 8]", "--set", "model.dropout=[0.2]")
    assert code == 2 and "one rate per hidden layer" in err and not (tmp_path / "bad").exists()
