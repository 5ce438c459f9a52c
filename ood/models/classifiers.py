"""Image classifiers. Every classifier exposes the contract the detectors rely on:

* ``forward(x)`` returns logits, ``features(x)`` the penultimate features (after the last ReLU),
  and ``fc`` is the final ``nn.Linear``, so ``forward(x) == fc(features(x))``;
* inputs are images in [0, 1]; normalisation happens inside the model, so detectors that perturb
  inputs (ODIN) and generators that synthesise images work in one pixel space.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class Normalize(nn.Module):
    """Per-channel standardisation kept in the model (and in its checkpoint)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """Base: subclasses build ``self.normalize``, ``self.body`` (image -> features) and ``self.fc``."""

    normalize: nn.Module
    body: nn.Module
    fc: nn.Linear

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.normalize(x))

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The body's spatial feature maps, deepest first: the output of each module listed in
        ``self.map_points`` (Heatmap OOD's ``fw_layers`` feeds them to its decoder)."""
        return self.features_and_maps(x)[1]

    def features_and_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(features(x), feature_maps(x))`` from one pass through the body, for detectors that
        need both (running the classifier twice would double their classifier cost)."""
        maps, h = [], self.normalize(x)
        for i, module in enumerate(self.body):
            h = module(h)
            if i in self.map_points:
                maps.append(h)
        return h, maps[::-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def _conv_bn(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class SmallCNN(Classifier):
    """Five weight layers (3 conv + 2 fc) for 28x28 inputs: the embedded benchmark's classifier.

    conv32 -> pool -> conv64 -> pool -> conv128 -> pool -> fc(feature_dim) -> fc(num_classes).
    """

    def __init__(self, num_classes: int, in_channels: int = 1, image_size: int = 28,
                 width: int = 32, feature_dim: int = 128, dropout: float = 0.3,
                 mean: Sequence[float] = (0.5,), std: Sequence[float] = (0.5,)):
        super().__init__()
        self.normalize = Normalize(mean, std)
        side = image_size // 8
        self.body = nn.Sequential(
            *_conv_bn(in_channels, width), nn.MaxPool2d(2),
            *_conv_bn(width, 2 * width), nn.MaxPool2d(2),
            *_conv_bn(2 * width, 4 * width), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(dropout),
            nn.Linear(4 * width * side * side, feature_dim), nn.ReLU(inplace=True),
        )
        self.fc = nn.Linear(feature_dim, num_classes)
        self.map_points = [i for i, m in enumerate(self.body) if isinstance(m, nn.MaxPool2d)]


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(Classifier):
    """CIFAR-style ResNet-18 (3x3 stem, no max-pool; He et al. 2016 as used by OpenOOD), 512-d features."""

    def __init__(self, num_classes: int, in_channels: int = 3, image_size: int = 32,
                 mean: Sequence[float] = (0.4914, 0.4822, 0.4465),
                 std: Sequence[float] = (0.2470, 0.2435, 0.2616)):
        super().__init__()
        self.normalize = Normalize(mean, std)
        layers: list[nn.Module] = [*_conv_bn(in_channels, 64)]
        c_in = 64
        for c_out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1)]
            c_in = c_out
        self.map_points = list(range(4, len(layers), 2))  # after each stage of two blocks
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(512, num_classes)


IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class ResNet50(Classifier):
    """torchvision's ResNet-50 (He et al. 2016; 224x224 inputs, 2048-d features) for the ImageNet
    paper profile. ``pretrained`` loads torchvision's ``IMAGENET1K_V1`` weights, the classifier of
    OpenOOD v1.5's ImageNet-1k benchmark and of DiffGuard (its head then predicts the 1000 classes)."""

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, image_size: int = 224, pretrained: bool = False,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
        super().__init__()
        from torchvision.models import ResNet50_Weights, resnet50

        from .pretrained import state_dict

        if in_channels != 3:
            raise ValueError(f"ResNet50 takes RGB images (in_channels=3), got in_channels={in_channels}")
        if pretrained and num_classes != 1000:
            raise ValueError(f"ResNet50(pretrained=True) predicts ImageNet's 1000 classes; the benchmark has {num_classes}")
        net = resnet50(weights=None, num_classes=num_classes)
        if pretrained:
            net.load_state_dict(state_dict(ResNet50_Weights.IMAGENET1K_V1))
        self.normalize = Normalize(mean, std)
        self.body = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3,
                                  net.layer4, net.avgpool, nn.Flatten())
        self.map_points = [4, 5, 6, 7]  # after each of the four stages
        self.fc = net.fc

