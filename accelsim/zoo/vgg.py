"""VGG-11 / VGG-16 (Simonyan & Zisserman 2015) for CIFAR-size and ImageNet-size inputs.

CIFAR variants (3x32x32): conv3x3 stacks with batch norm, five 2x2 max-pools down to
512x1x1, one linear classifier. ImageNet variants (3x224x224): the classic layout
without batch norm, adaptive 7x7 average pool and the 4096-4096-classes classifier.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from accelsim.zoo.registry import register

# Numbers are conv output channels, "M" a 2x2 max-pool.
VGG_CONFIGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"],
}


def make_features(config: list[int | str], in_channels: int, batch_norm: bool) -> nn.Sequential:
    """The convolutional trunk described by ``config``."""
    layers: list[nn.Module] = []
    channels = in_channels
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(channels, int(item), kernel_size=3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(int(item)))
        layers.append(nn.ReLU(inplace=True))
        channels = int(item)
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """VGG trunk plus classifier; ``imagenet`` selects the 224x224 head."""

    def __init__(self, config: list[int | str], num_classes: int = 10, in_channels: int = 3,
                 batch_norm: bool = True, imagenet: bool = False, dropout: float = 0.5):
        super().__init__()
        self.features = make_features(config, in_channels, batch_norm)
        last = [c for c in config if c != "M"][-1]
        if imagenet:
            self.pool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(
                nn.Linear(int(last) * 7 * 7, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),
                nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),
                nn.Linear(4096, num_classes))
        else:
            self.pool = nn.AdaptiveAvgPool2d((1, 1))
            self.classifier = nn.Linear(int(last), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


@register("vgg11_cifar", (3, 32, 32), "VGG-11 with batch norm, 3x32x32 input (CIFAR), 10 classes")
def vgg11_cifar(num_classes: int = 10, in_channels: int = 3) -> VGG:
    return VGG(VGG_CONFIGS["vgg11"], num_classes, in_channels, batch_norm=True)


@register("vgg16_cifar", (3, 32, 32), "VGG-16 with batch norm, 3x32x32 input (CIFAR), 10 classes")
def vgg16_cifar(num_classes: int = 10, in_channels: int = 3) -> VGG:
    return VGG(VGG_CONFIGS["vgg16"], num_classes, in_channels, batch_norm=True)


@register("vgg11", (3, 224, 224), "VGG-11 (ImageNet layout, no batch norm), 3x224x224, 1000 classes")
def vgg11(num_classes: int = 1000, in_channels: int = 3, batch_norm: bool = False) -> VGG:
    return VGG(VGG_CONFIGS["vgg11"], num_classes, in_channels, batch_norm=batch_norm, imagenet=True)


@register("vgg16", (3, 224, 224), "VGG-16 (ImageNet layout, no batch norm), 3x224x224, 1000 classes")
def vgg16(num_classes: int = 1000, in_channels: int = 3, batch_norm: bool = False) -> VGG:
    return VGG(VGG_CONFIGS["vgg16"], num_classes, in_channels, batch_norm=batch_norm, imagenet=True)
