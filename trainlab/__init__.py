"""trainlab: train, compare and understand deep-learning models with PyTorch.

Public API::

    import trainlab
    run = trainlab.train(model="simple-cnn", data="digits", epochs=5)
    run.history          # pandas DataFrame, one row per epoch
    run.evaluate()       # test metrics of the best weights
    run.predict(["digit.png"])
    trainlab.load_run(run.path)
"""

__version__ = "0.1.0"

from trainlab import data as _data  # noqa: F401,E402  (registers datasets)
from trainlab import losses as _losses  # noqa: F401,E402  (registers losses)
from trainlab import models as _models  # noqa: F401,E402  (registers models)
from trainlab import optim as _optim  # noqa: F401,E402  (registers optimizers and schedules)
from trainlab.engine import callbacks as _callbacks  # noqa: F401,E402  (registers callbacks)
from trainlab.api import Run, load_run, train  # noqa: E402
from trainlab.inspect import summary  # noqa: E402
from trainlab.models import create as create_model  # noqa: E402
from trainlab.registry import REGISTRIES  # noqa: E402


def list_components(kind: str) -> list[str]:
    """Registered names of one kind: models, datasets, optimizers, schedules, losses or callbacks."""
    return REGISTRIES[kind].names()


__all__ = ["Run", "__version__", "create_model", "list_components", "load_run", "summary", "train"]
