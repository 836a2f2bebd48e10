"""An example of your own model for trainlab: a small CNN, trained with

    trainlab train --model examples/my_net.py:MyNet --data digits --set model.width=32

trainlab passes ``num_classes``, ``in_channels`` and ``input_size`` because the constructor accepts them; every
other keyword (``width``, ``dropout``) is an option you set with ``--set model.KEY=VALUE``.
"""

import torch
from torch import nn


class MyNet(nn.Module):
    """Two conv-BN-ReLU blocks, each halving the image, then global average pooling and a linear head."""

    def __init__(self, num_classes: int, in_channels: int, width: int = 16, dropout: float = 0.0) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(2 * width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
