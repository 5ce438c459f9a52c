"""Semantic segmenters, with the same contract as the classifiers, per pixel:

``forward(x)`` returns logits ``[N, C, H, W]`` at the input resolution, ``features(x)`` the
per-pixel penultimate features ``[N, D, H, W]`` and ``fc`` is the final 1x1 convolution, so
``forward(x) == fc(features(x))``. Inputs are images in [0, 1]; normalisation is inside the model.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .classifiers import Normalize, _conv_bn


class SmallFCN(nn.Module):
    """A small U-Net-style fully-convolutional segmenter for the embedded scenes.

    Three resolutions (1, 1/2, 1/4) with skip connections; any input size divisible by 4.
    """

    def __init__(self, num_classes: int, in_channels: int = 1, width: int = 24,
                 mean: Sequence[float] = (0.5,), std: Sequence[float] = (0.5,)):
        super().__init__()
        w = width
        self.normalize = Normalize(mean, std)
        self.enc1 = nn.Sequential(*_conv_bn(in_channels, w), *_conv_bn(w, w))
        self.enc2 = nn.Sequential(nn.MaxPool2d(2), *_conv_bn(w, 2 * w), *_conv_bn(2 * w, 2 * w))
        self.enc3 = nn.Sequential(nn.MaxPool2d(2), *_conv_bn(2 * w, 4 * w), *_conv_bn(4 * w, 4 * w))
        self.dec2 = nn.Sequential(*_conv_bn(4 * w + 2 * w, 2 * w))
        self.dec1 = nn.Sequential(*_conv_bn(2 * w + w, w))
        self.fc = nn.Conv2d(w, num_classes, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(self.normalize(x))
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        d2 = self.dec2(torch.cat([F.interpolate(e3, size=e2.shape[-2:], mode="bilinear", align_corners=False), e2], 1))
        return self.dec1(torch.cat([F.interpolate(d2, size=e1.shape[-2:], mode="bilinear", align_corners=False), e1], 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


class DeepLabV3(nn.Module):
    """torchvision's DeepLabV3-ResNet50 (Chen et al. 2017) for the Cityscapes paper profile.

    ``features`` is the head up to (not including) its last 1x1 convolution, upsampled bilinearly
    to the input size; since bilinear upsampling and a 1x1 convolution are both linear (and the
    interpolation weights sum to one), ``fc(features(x))`` equals the upsampled logits ``forward(x)``.
    ``pretrained_backbone`` loads torchvision's ImageNet ResNet-50 weights (a download).
    """

    def __init__(self, num_classes: int = 19, in_channels: int = 3, pretrained_backbone: bool = False,
                 mean: Sequence[float] = (0.485, 0.456, 0.406), std: Sequence[float] = (0.229, 0.224, 0.225)):
        super().__init__()
        from torchvision.models import ResNet50_Weights
        from torchvision.models.segmentation import deeplabv3_resnet50

        if in_channels != 3:
            raise ValueError(f"DeepLabV3 takes RGB images (in_channels=3), got in_channels={in_channels}")
        net = deeplabv3_resnet50(weights=None, num_classes=num_classes, aux_loss=False,
                                 weights_backbone=ResNet50_Weights.IMAGENET1K_V1 if pretrained_backbone else None)
        self.normalize = Normalize(mean, std)
        self.backbone = net.backbone
        head = list(net.classifier.children())
        self.head = nn.Sequential(*head[:-1])
        self.fc = head[-1]

    def _head_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(self.normalize(x))["out"])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self._head_features(x), size=x.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Upsample the logits rather than the 256-channel features: same result, far less memory.
        return F.interpolate(self.fc(self._head_features(x)), size=x.shape[-2:], mode="bilinear", align_corners=False)
