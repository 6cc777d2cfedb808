"""MobileNetV2 (Sandler et al. 2018): inverted residuals with depthwise 3x3 convolutions.

``mobilenet_v2`` is the ImageNet network (3x224x224, width 1.0, ReLU6). The CIFAR
variant keeps the same blocks but uses a stride-1 stem and a stride-1 second stage,
so 32x32 inputs end at 4x4 instead of 1x1.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from accelsim.zoo.registry import register

# (expansion t, output channels c, repeats n, first stride s) per stage.
IMAGENET_STAGES = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                   (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
CIFAR_STAGES = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2),
                (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def _conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int, groups: int = 1,
             relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, groups=groups,
                  bias=False),
        nn.BatchNorm2d(out_ch)]
    if relu:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """1x1 expand (skipped when t == 1), 3x3 depthwise, 1x1 linear projection."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expansion: int):
        super().__init__()
        hidden = in_ch * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(_conv_bn(in_ch, hidden, 1, 1))
        layers.append(_conv_bn(hidden, hidden, 3, stride, groups=hidden))
        layers.append(_conv_bn(hidden, out_ch, 1, 1, relu=False))
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.use_residual else out


class MobileNetV2(nn.Module):
    """MobileNetV2 at width multiplier 1.0."""

    def __init__(self, stages: list[tuple[int, int, int, int]], num_classes: int = 1000,
                 in_channels: int = 3, stem_stride: int = 2, dropout: float = 0.2):
        super().__init__()
        layers: list[nn.Module] = [_conv_bn(in_channels, 32, 3, stem_stride)]
        channels = 32
        for expansion, out_ch, repeats, stride in stages:
            for i in range(repeats):
                layers.append(InvertedResidual(channels, out_ch, stride if i == 0 else 1, expansion))
                channels = out_ch
        layers.append(_conv_bn(channels, 1280, 1, 1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(1280, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


@register("mobilenet_v2", (3, 224, 224), "MobileNetV2 (width 1.0), 3x224x224, 1000 classes")
def mobilenet_v2(num_classes: int = 1000, in_channels: int = 3) -> MobileNetV2:
    return MobileNetV2(IMAGENET_STAGES, num_classes, in_channels, stem_stride=2)


@register("mobilenet_v2_cifar", (3, 32, 32), "MobileNetV2 (width 1.0) for 3x32x32 input (CIFAR), 10 classes")
def mobilenet_v2_cifar(num_classes: int = 10, in_channels: int = 3) -> MobileNetV2:
    return MobileNetV2(CIFAR_STAGES, num_classes, in_channels, stem_stride=1)
