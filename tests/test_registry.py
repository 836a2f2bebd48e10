"""Registry behaviour and per-registry invariants."""

from __future__ import annotations

import pytest

import trainlab  # noqa: F401  (populates the registries)
from trainlab.registry import REGISTRIES, Registry, UnknownNameError, builder_params


def make_registry() -> Registry[object]:
    reg: Registry[object] = Registry("model")
    for name in ("resnet18", "resnet34", "vgg11"):
        reg.add(name, object(), description=f"{name} net")
    return reg


def test_unknown_name_suggests_closest_and_lists_choices() -> None:
    with pytest.raises(UnknownNameError) as err:
        make_registry().get("resnt18")
    message = str(err.value)
    assert "unknown model 'resnt18'; did you mean 'resnet18'?" in message
    assert "choices: resnet18, resnet34, vgg11" in message


def test_unknown_name_without_close_match_has_no_suggestion() -> None:
    with pytest.raises(UnknownNameError) as err:
        make_registry().get("transformer")
    assert "did you mean" not in str(err.value)


def test_duplicate_name_raises() -> None:
    reg = make_registry()
    with pytest.raises(ValueError, match="duplicate model name 'vgg11'"):
        reg.add("vgg11", object())


def test_names_filter_by_pattern_and_description_from_docstring() -> None:
    reg = make_registry()
    assert reg.names("resnet*") == ["resnet18", "resnet34"]

    @reg.register("documented")
    def builder() -> None:
        """First line wins.

        Not this one."""

    assert reg.entry("documented").description == "First line wins."


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_every_registry_is_seeded_and_described(kind: str) -> None:
    registry = REGISTRIES[kind]
    assert len(registry) >= 1, f"registry {kind} is empty"
    for entry in registry.entries():
        assert entry.description, f"{kind} '{entry.name}' has no description"


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_every_builder_takes_typed_keyword_options(kind: str) -> None:
    """Config validation relies on builder signatures: no **kwargs, every option has a default."""
    supplied = {"num_classes", "in_channels", "input_size", "params", "lr", "weight_decay", "total_steps",
                "steps_per_epoch", "seed", "val_fraction", "task", "model", "optimizer", "base_lr"}
    for entry in REGISTRIES[kind].entries():
        for name, param in builder_params(entry.obj).items():
            if name not in supplied:
                assert param.default is not param.empty, f"{kind} '{entry.name}' option '{name}' needs a default"
