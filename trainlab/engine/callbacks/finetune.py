"""Fine-tuning inside the loop: frozen BatchNorm stays in eval mode, and frozen parameters thaw after E epochs.

``model.train()`` at every epoch start switches every BatchNorm back to training mode, so its running statistics
would drift with the new data even though its scale and shift are frozen (a classic fine-tuning bug).  The trainer
runs ``on_epoch_start`` after ``model.train()``, and this callback puts the frozen BatchNorm layers back into eval
mode there.  What is frozen is read from the model (``requires_grad``), which the ``finetune`` config section set
when the session was built; the unfreeze depends only on the epoch, so a resumed run repeats it exactly.
Session adds this callback whenever the ``finetune`` section is active; set its options there.
"""

from __future__ import annotations

import logging
from typing import Literal

from torch import nn

from trainlab.engine import distributed
from trainlab.engine.callbacks.base import Callback, TrainerView
from trainlab.engine.state import TrainState
from trainlab.registry import CALLBACKS

logger = logging.getLogger(__name__)


@CALLBACKS.register("finetune", description="frozen BatchNorm kept in eval mode; gradual unfreezing "
                                            "(set through the finetune section)")
class Finetune(Callback):
    """Keep BatchNorm layers whose parameters are all frozen in eval mode (``bn=frozen``), and make every frozen
    parameter trainable from epoch ``unfreeze_after`` on (counted in completed epochs)."""

    order = 5  # before the callbacks that read the model at epoch start

    def __init__(self, bn: Literal["frozen", "train"] = "frozen", unfreeze_after: int | None = None) -> None:
        if bn not in ("frozen", "train"):
            raise ValueError(f"finetune.bn must be frozen or train, got {bn!r}")
        if unfreeze_after is not None and unfreeze_after < 1:
            raise ValueError(f"finetune.unfreeze_after must be at least 1 epoch, got {unfreeze_after}")
        self.bn, self.unfreeze_after = bn, unfreeze_after
        self.frozen: list[str] = []

    def on_fit_start(self, trainer: TrainerView, state: TrainState) -> None:
        self.frozen = [name for name, p in trainer.model.named_parameters() if not p.requires_grad]
        if self.frozen and self.unfreeze_after is not None and distributed.world_size() > 1:
            raise ValueError("finetune.unfreeze_after does not work in a distributed job yet: DistributedDataParallel "
                             "syncs only the parameters that train when it starts; drop finetune.unfreeze_after")
        if self.frozen and self.unfreeze_after is not None and self.unfreeze_after >= state.epochs:
            logger.warning("finetune.unfreeze_after=%d, but the run has %d epoch(s): nothing will be unfrozen",
                           self.unfreeze_after, state.epochs)
        self._apply(trainer.model, state.epoch)

    def on_epoch_start(self, trainer: TrainerView, state: TrainState) -> None:
        self._apply(trainer.model, state.epoch)

    def _apply(self, model: nn.Module, epoch: int) -> None:
        if self.frozen and self.unfreeze_after is not None and epoch >= self.unfreeze_after:
            frozen = set(self.frozen)
            for name, param in model.named_parameters():
                if name in frozen:
                    param.requires_grad_(True)
            logger.info("finetune: unfroze %d parameter tensor(s) from epoch %d on", len(frozen), epoch + 1)
            self.frozen = []
        if self.bn == "frozen":
            for module in frozen_batchnorms(model):
                module.eval()


def frozen_batchnorms(model: nn.Module) -> list[nn.Module]:
    """BatchNorm layers with parameters, all of them frozen (a BatchNorm without affine parameters is left alone)."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
            and any(True for _ in m.parameters()) and not any(p.requires_grad for p in m.parameters())]
