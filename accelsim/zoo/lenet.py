"""LeNet-5 (LeCun et al. 1998) for 1x32x32 inputs (MNIST padded to 32, digits resized)."""
from __future__ import annotations

import torch
import torch.nn as nn

from accelsim.zoo.registry import register


class LeNet5(nn.Module):
    """Classic LeNet-5 with ReLU activations and max pooling.

    conv1 6@5x5 -> pool -> conv2 16@5x5 -> pool -> fc1 120 -> fc2 84 -> fc3 classes.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, kernel_size=5)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu(self.conv1(x)))
        x = self.pool(self.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = self.relu(self.fc1(x))
        x = self.relu(self.fc2(x))
        return self.fc3(x)


@register("lenet5", (1, 32, 32), "LeNet-5, 1x32x32 input (MNIST / digits), 10 classes")
def lenet5(num_classes: int = 10, in_channels: int = 1) -> LeNet5:
    return LeNet5(num_classes=num_classes, in_channels=in_channels)
