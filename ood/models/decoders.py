"""Heatmap OOD's decoder (Hornauer & Belagiannis, WACV 2023): classifier features -> image-sized heatmap.

Official design (jhornauer/heatmap_ood, Networks/generator.py, CIFAR-10 ResNet-18): the input
(penultimate features ⊕ one-hot of the predicted class) goes through ``fc`` to a 100-d code, viewed
as ``100×1×1``; transposed-convolution blocks (BatchNorm, ReLU) of widths 512 → 256 → 128 → 64
upsample it 1 → 4 → 8 → 16 → 32; a 1×1 transposed convolution to the image channels and ``tanh``
give the heatmap in [-1, 1]. Here the first block's kernel is ``image_size / 4`` (1 → 7 for 28×28,
1 → 8 for 32×32), two stride-2 blocks reach the image size and the fourth block keeps it (3×3,
stride 1), so the depth and the halving widths ``width, width/2, width/4, width/8`` match the
official stack for any image side divisible by 4.

Official option ``fw_layers`` (default 1): with ``fw_layers = k > 1`` the classifier's spatial
feature maps are added to the outputs of the first ``k − 1`` blocks (the official encoder returns
them so that their shapes match: ResNet-18's 512@4×4 after block 1, 256@8×8 after block 2, ...).
"""

from __future__ import annotations

import torch
from torch import nn


def _block(c_in: int, c_out: int, kernel: int, stride: int, padding: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, kernel, stride, padding, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class HeatmapDecoder(nn.Module):
    """``forward(z, y) -> h``: features ``z [N, D]`` (already normalised) and predicted classes
    ``y [N]`` to a heatmap ``[N, C, S, S]`` in [-1, 1]."""

    def __init__(self, feature_dim: int, num_classes: int, out_channels: int = 1, image_size: int = 28,
                 width: int = 512, code: int = 100):
        super().__init__()
        if image_size % 4 or image_size < 8:
            raise ValueError(f"HeatmapDecoder: image_size must be a multiple of 4 and >= 8, got {image_size}")
        if width < 8 or width % 8:
            raise ValueError(f"HeatmapDecoder: width must be a multiple of 8, got {width}")
        self.num_classes, self.code = num_classes, code
        self.fc = nn.Linear(feature_dim + num_classes, code)
        self.blocks = nn.Sequential(
            _block(code, width, image_size // 4, 1, 0),
            _block(width, width // 2, 4, 2, 1),
            _block(width // 2, width // 4, 4, 2, 1),
            _block(width // 4, width // 8, 3, 1, 1),
            nn.ConvTranspose2d(width // 8, out_channels, 1, 1, 0, bias=False),
            nn.Tanh(),
        )

    def block_shapes(self, image_size: int) -> list[tuple[int, int, int]]:
        """``(C, H, W)`` of the outputs of blocks 1–3 (where ``fw_layers`` adds feature maps)."""
        widths = [m[0].out_channels for m in list(self.blocks)[:3]]
        return [(widths[0], image_size // 4, image_size // 4), (widths[1], image_size // 2, image_size // 2),
                (widths[2], image_size, image_size)]

    def forward(self, z: torch.Tensor, y: torch.Tensor, maps: list[torch.Tensor] | tuple = ()) -> torch.Tensor:
        """``maps``: feature maps added to the outputs of blocks 1, 2, ... (official ``fw_layers``)."""
        onehot = nn.functional.one_hot(y, self.num_classes).to(z.dtype)
        h = self.fc(torch.cat([z, onehot], dim=1)).view(len(z), self.code, 1, 1)
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i < len(maps):
                h = h + maps[i]
        return h
