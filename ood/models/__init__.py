"""Networks and their checkpoints.

A checkpoint is a plain dict ``{"arch": str, "config": dict, "state_dict": ...}`` so that
``load(path)`` can rebuild the architecture from the file alone and read it with
``torch.load(weights_only=True)`` (no pickled code is ever executed).
"""

from __future__ import annotations

import os
from typing import Any, Callable

import torch
from torch import nn

from ..io import atomic_torch_save
from .classifiers import Classifier, ResNet18, ResNet50, SmallCNN
from .segmenters import DeepLabV3, SmallFCN

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "cnn": SmallCNN,
    "resnet18": ResNet18,
    "resnet50": ResNet50,
    "fcn": SmallFCN,
    "deeplabv3": DeepLabV3,
}


#: Architectures that can start from torchvision's ImageNet weights (``build(..., pretrained=True)``).
PRETRAINED = {"resnet50": "the whole classifier (IMAGENET1K_V1)", "deeplabv3": "the ResNet-50 backbone (IMAGENET1K_V1)"}


def build(arch: str, pretrained: bool = False, **config: Any) -> nn.Module:
    """Build a network by the name used in params.yaml; ``pretrained``: start from torchvision's
    ImageNet weights (:data:`PRETRAINED`; cached by torch.hub, see :mod:`ood.models.pretrained`).
    ``pretrained`` is not part of ``config``: a saved network holds its weights, so :func:`load`
    never downloads."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    if pretrained and arch not in PRETRAINED:
        raise ValueError(f"no pre-trained weights for {arch!r}; architectures with some: {', '.join(PRETRAINED)}")
    return ARCHITECTURES[arch](**config, **({"pretrained": True} if pretrained else {}))


def save(model: nn.Module, path: str | os.PathLike, arch: str, config: dict[str, Any],
         **extra: Any) -> None:
    """Write ``model`` with what ``load`` needs to rebuild it; ``extra`` holds plain metadata."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_torch_save({"arch": arch, "config": config, "state_dict": state, **extra}, path)


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a network written by ``save``; returned in ``eval()`` mode on ``map_location``."""
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    model = build(ckpt["arch"], **ckpt["config"])
    model.load_state_dict(ckpt["state_dict"])
    return model.to(map_location).eval()


__all__ = ["ARCHITECTURES", "PRETRAINED", "Classifier", "DeepLabV3", "ResNet18", "ResNet50", "SmallCNN", "SmallFCN", "build", "load", "save"]
