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

from .classifiers import Normalize


def _cbr(c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class SmallFCN(nn.Module):
    """A small encoder-decoder segmenter for the embedded scenes (cheap enough for 2 CPU cores).

    Two stride-2 convolutions bring the input to 1/4 resolution, a dilated block (rates 2 and 4)
    at 1/8 gives every pixel a receptive field larger than an object, and a decoder with skip
    connections returns to 1/2 resolution, where the 1x1 classifier runs; logits are upsampled
    bilinearly to the input size (as DeepLab does). Any input size divisible by 8.
    """

    def __init__(self, num_classes: int, in_channels: int = 1, width: int = 32,
                 mean: Sequence[float] = (0.5,), std: Sequence[float] = (0.5,)):
        super().__init__()
        w = width
        self.normalize = Normalize(mean, std)
        self.stem = _cbr(in_channels, w // 2, stride=2)                                  # 1/2
        self.enc1 = nn.Sequential(_cbr(w // 2, w, stride=2), _cbr(w, w))                # 1/4
        self.enc2 = nn.Sequential(_cbr(w, 2 * w, stride=2), _cbr(2 * w, 2 * w, dilation=2),
                                  _cbr(2 * w, 2 * w, dilation=4))                        # 1/8
        self.dec = _cbr(3 * w, w)                                                        # 1/4
        self.fc = nn.Conv2d(w + w // 2, num_classes, 1)                                  # 1/2

    def _half_res_features(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stem(self.normalize(x))
        a = self.enc1(s)
        b = self.enc2(a)
        y = self.dec(torch.cat([F.interpolate(b, size=a.shape[-2:], mode="bilinear", align_corners=False), a], 1))
        return torch.cat([F.interpolate(y, size=s.shape[-2:], mode="bilinear", align_corners=False), s], 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self._half_res_features(x), size=x.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Same as fc(features(x)): a 1x1 convolution commutes with bilinear upsampling.
        return F.interpolate(self.fc(self._half_res_features(x)), size=x.shape[-2:], mode="bilinear", align_corners=False)


class DeepLabV3(nn.Module):
    """torchvision's DeepLabV3-ResNet50 (Chen et al. 2017) for the Cityscapes paper profile.

    ``features`` is the head up to (not including) its last 1x1 convolution, upsampled bilinearly
    to the input size; since bilinear upsampling and a 1x1 convolution are both linear (and the
    interpolation weights sum to one), ``fc(features(x))`` equals the upsampled logits ``forward(x)``.
    ``pretrained`` loads torchvision's ImageNet ResNet-50 weights into the backbone (as torchvision's
    ``weights_backbone``, through :func:`ood.models.pretrained.state_dict`).
    """

    def __init__(self, num_classes: int = 19, in_channels: int = 3, pretrained: bool = False,
                 mean: Sequence[float] = (0.485, 0.456, 0.406), std: Sequence[float] = (0.229, 0.224, 0.225)):
        super().__init__()
        from torchvision.models import ResNet50_Weights
        from torchvision.models.segmentation import deeplabv3_resnet50

        from .pretrained import state_dict

        if in_channels != 3:
            raise ValueError(f"DeepLabV3 takes RGB images (in_channels=3), got in_channels={in_channels}")
        net = deeplabv3_resnet50(weights=None, num_classes=num_classes, aux_loss=False, weights_backbone=None)
        if pretrained:  # the backbone keeps ResNet-50's layers up to layer4 (no fc)
            weights = state_dict(ResNet50_Weights.IMAGENET1K_V1)
            net.backbone.load_state_dict({k: v for k, v in weights.items() if not k.startswith("fc.")})
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
