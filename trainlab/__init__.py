"""trainlab: train, compare and understand deep-learning models with PyTorch.

Public API::

    import trainlab
    run = trainlab.train(model="simple-cnn", data="digits", epochs=5)
    run.history          # pandas DataFrame, one row per epoch
    run.evaluate()       # test metrics of the best weights
    run.predict(["digit.png"])
    trainlab.load_run(run.path)
"""

from trainlab import data as _data  # noqa: F401  (registers datasets and augmentations)
from trainlab import losses as _losses  # noqa: F401  (registers losses)
from trainlab import models as _models  # noqa: F401  (registers models)
from trainlab import optim as _optim  # noqa: F401  (registers optimizers and schedules)
from trainlab.api import Run, create_model, load_run, train  # also registers the callbacks
from trainlab.inspect import summary
from trainlab.registry import REGISTRIES
from trainlab.version import __version__


def list_components(kind: str) -> list[str]:
    """Registered names of one kind: models, datasets, optimizers, schedules, losses, callbacks or augmentations."""
    return REGISTRIES[kind].names()


__all__ = ["Run", "__version__", "create_model", "list_components", "load_run", "summary", "train"]
