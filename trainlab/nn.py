"""``trainlab.nn``: the curriculum's from-scratch layers as a public module, each equal to its ``torch.nn``
counterpart (same outputs, gradients and state-dict names; ``tests/models/test_scratch.py``).

``BatchNorm`` (running statistics, ``num_dims`` 2 or 4), ``Dropout``, ``Dropout2d``, ``Conv2d`` (2-D
cross-correlation), ``MaxPool2d``, ``AvgPool2d`` and ``corr2d``.  A facade that defines nothing: the layers live in
:mod:`trainlab.models.scratch`, where ``model.impl=scratch`` builds the zoo's small models from them.
"""

from trainlab.models.scratch import AvgPool2d, BatchNorm, Conv2d, Dropout, Dropout2d, MaxPool2d, corr2d

__all__ = ["AvgPool2d", "BatchNorm", "Conv2d", "Dropout", "Dropout2d", "MaxPool2d", "corr2d"]
