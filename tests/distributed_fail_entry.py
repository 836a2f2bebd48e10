"""A torchrun entry point for tests: ``trainlab ARGS``, except that the rank named by ``TRAINLAB_TEST_FAIL_RANK``
raises at its third training step (how a bug or a lost device looks to the other ranks)."""

import os
import sys

from trainlab.cli import main
from trainlab.engine.trainer import Trainer

if os.environ.get("RANK") == os.environ.get("TRAINLAB_TEST_FAIL_RANK"):
    _step = Trainer._train_step

    def _failing_step(self, x, y):
        if self.state.step == 2:
            raise RuntimeError("injected failure at step 3")
        return _step(self, x, y)

    Trainer._train_step = _failing_step

sys.exit(main(sys.argv[1:]))
