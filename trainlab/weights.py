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
import warnings
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
    warnings.warn(message, UserWarning, stacklevel=3)
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


def init_model(model: nn.Module, source: str | Path, trust_pickle: bool = False) -> list[str]:
    """Copy every tensor of ``source`` whose name and shape match into ``model``; return the skipped names.

    Names may carry a ``module.`` prefix (DataParallel).  Mismatched tensors (a new head for other classes) are
    skipped with a notice; if nothing matches, the file belongs to another architecture and this fails.
    """
    loaded = {k.removeprefix("module."): v for k, v in read_weights(source, trust_pickle).items()}
    own = model.state_dict()
    usable = {k: v for k, v in loaded.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise CheckpointError(f"train.init_from: no tensor of {source} matches the model by name and shape; "
                              f"file has {', '.join(list(loaded)[:5])} ...; model has {', '.join(list(own)[:5])} ...")
    model.load_state_dict(usable, strict=False)
    skipped = sorted(set(own) - set(usable))
    if skipped:
        logger.info("init_from %s: kept the fresh initialization of %d tensor(s) (%s%s)", source, len(skipped),
                    ", ".join(skipped[:4]), " ..." if len(skipped) > 4 else "")
    return skipped
