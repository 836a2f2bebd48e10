"""Weights from foreign files, loaded without ever running code hidden in them (``train.init_from``).

A ``.pth``/``.pt`` file is a pickle, and unpickling can call any function the file names — a downloaded
"model" can delete files or open a shell the moment it is loaded.  So trainlab loads such files with
``torch.load(weights_only=True)``, which only rebuilds tensors and plain containers and refuses anything else.
A file that needs more (a whole pickled ``nn.Module``, custom classes) is refused with an explanation unless
the user passes ``--trust-pickle`` (``train.trust_pickle=true``), which loads it fully with a warning.
safetensors files and trainlab's own run and checkpoint directories never involve pickle code.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from trainlab import rundir
from trainlab.engine import checkpoint
from trainlab.engine.checkpoint import CheckpointError

logger = logging.getLogger(__name__)

PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
# Keys under which common training scripts nest the weights of a saved dict.
NESTED_KEYS = ("state_dict", "model_state_dict", "model", "weights", "ema")


def read_weights(source: str | Path, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """The tensors of a run directory (its best weights), a checkpoint directory, a safetensors or a pickle file."""
    path = Path(source).expanduser()
    if path.is_dir():
        return _from_directory(path)
    if not path.is_file():
        raise FileNotFoundError(f"train.init_from: {path} does not exist")
    if path.suffix == ".safetensors":
        return _from_safetensors(path)
    if path.suffix in PICKLE_SUFFIXES:
        return _state_dict_of(_from_pickle(path, trust_pickle), path)
    raise CheckpointError(f"train.init_from: {path} has an unknown type; use a run or checkpoint directory, "
                          f".safetensors, or one of {', '.join(PICKLE_SUFFIXES)}")


def _from_directory(path: Path) -> dict[str, torch.Tensor]:
    if (path / checkpoint.MANIFEST_FILE).is_file():
        return checkpoint.load(path).model
    found = rundir.best_checkpoint(path)
    if found is None:
        raise CheckpointError(f"train.init_from: {path} is neither a checkpoint directory nor a run directory "
                              "with a complete checkpoint")
    return checkpoint.evaluation_weights(checkpoint.load(found))


def _from_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as err:  # safetensors raises SafetensorError, OSError or others for malformed headers
        raise CheckpointError(f"{path} is not a valid safetensors file ({type(err).__name__}: {err}); "
                              "is it truncated or of another format?") from None


def _from_pickle(path: Path, trust_pickle: bool) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if not trust_pickle:
            raise CheckpointError(
                f"{path} is a pickle that holds more than tensors: loading it would run code named in the file, "
                f"so it was not loaded.\n  ({_first_line(err)})\nIf you trust where it came from, pass "
                "--trust-pickle (train.trust_pickle=true); better, convert it to a state dict or .safetensors"
            ) from None
    except Exception as err:
        raise CheckpointError(f"{path} cannot be read as a PyTorch file ({type(err).__name__}: {_first_line(err)})") from None
    message = f"loading {path} with full unpickling (--trust-pickle): this runs any code the file contains"
    logger.warning(message)
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise CheckpointError(f"{path} cannot be unpickled ({type(err).__name__}: {_first_line(err)})") from None


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _state_dict_of(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """Accept a state dict, a module, or a dict nesting the state dict under a usual key."""
    if isinstance(obj, nn.Module):
        return obj.state_dict()
    if isinstance(obj, Mapping):
        tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
        for key in NESTED_KEYS:
            if key in obj:
                return _state_dict_of(obj[key], path)
    raise CheckpointError(f"{path} holds no tensors trainlab recognizes (expected a state dict, a module, or a dict "
                          f"with one of: {', '.join(NESTED_KEYS)})")


def init_model(model: nn.Module, source: str | Path, trust_pickle: bool = False, new_head: bool = False) -> list[str]:
    """Copy every tensor of ``source`` that fits into ``model``; return the names left at their fresh initialization.

    Tensors pair up by name (a ``module.`` prefix, from DataParallel, is ignored).  When no name matches, the file
    may hold the same architecture under other names, as torchvision's state dicts do for the zoo's ResNet, VGG,
    DenseNet, MobileNet V2/V3, ShuffleNet V2, EfficientNet-B0, GoogLeNet and AlexNet: then they pair up by position
    (:func:`pair_by_position`).  A paired tensor of another shape (a head for another number of classes) keeps its
    fresh initialization, and the replaced layers are named in a notice; if nothing fits, this fails.  ``new_head``
    keeps the head (the last ``nn.Linear``) fresh even when it fits (``finetune.new_head``: other classes, same count).
    """
    loaded = {k.removeprefix("module."): v for k, v in read_weights(source, trust_pickle).items()}
    own = model.state_dict()
    pairs = {k: loaded[k] for k in own if k in loaded}
    if not pairs:
        try:
            pairs = pair_by_position(loaded, own, head_names(model))
        except ValueError as err:
            raise CheckpointError(
                f"train.init_from: no tensor of {source} matches the model by name and shape, and the tensors do not "
                f"pair up by position either: {err}; file has {', '.join(list(loaded)[:5])} ...; model has "
                f"{', '.join(list(own)[:5])} ...  (torchvision weights need the torchvision layout: 3 input channels "
                "and, for images of 64 px or less, model.small_input=false)") from None
        logger.info("init_from %s: names differ from the model's; paired its %d tensors with the model's by position "
                    "and shape (torchvision layout)", source, len(pairs))
    fresh_head = head_names(model) if new_head else set()
    pairs = {k: v for k, v in pairs.items() if k not in fresh_head}
    usable = {k: v for k, v in pairs.items() if v.shape == own[k].shape}
    if not usable:
        raise CheckpointError(f"train.init_from: no tensor of {source} matches the model by name and shape; "
                              f"file has {', '.join(list(loaded)[:5])} ...; model has {', '.join(list(own)[:5])} ...")
    model.load_state_dict(usable, strict=False)
    _report_fresh(source, model, own, pairs, fresh_head)
    return sorted(set(own) - set(usable))


def head_names(model: nn.Module) -> set[str]:
    """State-dict names of the last ``nn.Linear`` (the head), empty when the model has none."""
    linears = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linears:
        return set()
    prefix = f"{linears[-1]}." if linears[-1] else ""
    return {prefix + name for name, _ in model.get_submodule(linears[-1]).named_parameters()}


def pair_by_position(loaded: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor],
                     head: set[str]) -> dict[str, torch.Tensor]:
    """The file's tensors under the model's names, paired in order; every pair must have the same shape except the
    head's.  Torchvision builds the zoo's torchvision-equivalent models in the same module order, so this maps their
    state dicts exactly; a GoogLeNet file's auxiliary classifiers are dropped when the model has none."""
    items = list(loaded.items())
    if len(items) > len(own):
        items = [(k, v) for k, v in items if not k.split(".")[0].startswith("aux")]
    if len(items) != len(own):
        raise ValueError(f"the file holds {len(items)} tensors, the model {len(own)}")
    pairs = {}
    for index, ((theirs, tensor), (ours, mine)) in enumerate(zip(items, own.items())):
        if tensor.shape != mine.shape and ours not in head:
            raise ValueError(f"tensor {index} '{theirs}' has shape {list(tensor.shape)}, the model's '{ours}' "
                             f"{list(mine.shape)}")
        pairs[ours] = tensor
    return pairs


def _report_fresh(source: str | Path, model: nn.Module, own: Mapping[str, torch.Tensor],
                  pairs: Mapping[str, torch.Tensor], fresh_head: set[str]) -> None:
    """Notices naming the layers that keep their fresh initialization: a new head, other shapes, missing tensors."""
    if fresh_head:
        logger.info("init_from %s: created a new head (finetune.new_head): layer(s) %s freshly initialized", source,
                    ", ".join(sorted({k.rsplit(".", 1)[0] for k in fresh_head})))
    replaced = [k for k, v in pairs.items() if v.shape != own[k].shape]
    if replaced:
        layers = sorted({k.rsplit(".", 1)[0] for k in replaced})
        shapes = ", ".join(f"{k} {list(pairs[k].shape)} -> {list(own[k].shape)}" for k in replaced[:4])
        what = "created a new head" if set(replaced) <= head_names(model) else "replaced layers of another shape"
        logger.info("init_from %s: %s: layer(s) %s freshly initialized (%s)", source, what, ", ".join(layers), shapes)
    missing = [k for k in own if k not in pairs and k not in fresh_head]
    if missing:
        logger.info("init_from %s: kept the fresh initialization of %d tensor(s) the file lacks (%s%s)", source,
                    len(missing), ", ".join(missing[:4]), " ..." if len(missing) > 4 else "")
