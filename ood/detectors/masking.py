"""Masks for MoodCat (Yang et al., "Out-of-Distribution Detection with Semantic Mismatch under
Masking", ECCV 2022; official code cure-lab/MOODCat).

Every function returns boolean masks ``[N, H, W]`` (True = masked, i.e. hidden from the
synthesis model) drawn from one CPU generator per sample, so a mask depends only on its sample's
key (:func:`ood.detectors.base.sample_generators`), never on the batch it is drawn in. The
official test draws one RandomErasing rectangle per *batch*, which makes a score depend on its
batch-mates; drawing per image is a deliberate deviation.

Kinds (``KINDS``):

* ``erase``: torchvision-style RandomErasing rectangle. Area fraction uniform in ``scale``, log
  aspect ratio (h / w) uniform in ``log(ratio)``, side lengths rounded, position uniform; up to 10
  tries for a rectangle that fits, else the centred rectangle of the clamped size (torchvision
  returns the image unmasked there; a sample must always be masked here). Official: scale
  (0.1, 0.33) in training and (0.15, 0.33) at test, ratio (0.5, 2.5) — ratio as in the code, not
  torchvision's default (0.3, 3.3).
* ``center_high`` / ``center_low``: the paper's fixed-centre ablation, a centred square covering
  the upper end (``scale[1]``) or the lower end (``scale[0]``) of the area range.
* ``board``: a checkerboard of ``cells × cells`` cells, every other cell masked (half the area).
* ``mosaic``: each of ``cells × cells`` cells masked independently with probability ``scale[1]``.
* ``shuffle``: no pixel is hidden; the image's ``cells × cells`` patches are permuted instead
  (:func:`shuffle_patches`): the paper's patch-shuffle ablation.
* ``zero``: nothing masked (the "no masking" ablation: synthesis from the full image).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["KINDS", "draw_masks", "erase_box", "apply_mask", "shuffle_patches"]

KINDS = ("erase", "center_high", "center_low", "board", "mosaic", "shuffle", "zero")


def erase_box(g: torch.Generator, height: int, width: int, scale: Sequence[float],
              ratio: Sequence[float]) -> tuple[int, int, int, int]:
    """One RandomErasing rectangle ``(top, left, h, w)`` drawn from ``g``."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * float(torch.empty(1).uniform_(scale[0], scale[1], generator=g))
        aspect = math.exp(float(torch.empty(1).uniform_(*log_ratio, generator=g)))
        h, w = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < h < height and 0 < w < width:
            top = int(torch.randint(0, height - h + 1, (1,), generator=g))
            left = int(torch.randint(0, width - w + 1, (1,), generator=g))
            return top, left, h, w
    side = max(1, min(height - 1, width - 1, int(round(math.sqrt(area * scale[1])))))
    return (height - side) // 2, (width - side) // 2, side, side


def _cells(height: int, width: int, cells: int) -> tuple[Tensor, Tensor]:
    """Cell index of every row and column for a ``cells × cells`` grid."""
    return (torch.arange(height) * cells // height, torch.arange(width) * cells // width)


def draw_masks(generators: Sequence[torch.Generator], height: int, width: int, kind: str = "erase",
               scale: Sequence[float] = (0.15, 0.33), ratio: Sequence[float] = (0.5, 2.5),
               cells: int = 4) -> Tensor:
    """One mask ``[H, W]`` (bool, True = masked) per generator, stacked to ``[N, H, W]``."""
    if kind not in KINDS:
        raise ValueError(f"mask kind must be one of {', '.join(KINDS)}, got {kind!r}")
    n = len(generators)
    masks = torch.zeros(n, height, width, dtype=torch.bool)
    rows, cols = _cells(height, width, cells)
    for i, g in enumerate(generators):
        if kind == "erase":
            t, l, h, w = erase_box(g, height, width, scale, ratio)
            masks[i, t:t + h, l:l + w] = True
        elif kind in ("center_high", "center_low"):
            frac = scale[1] if kind == "center_high" else scale[0]
            side = max(1, int(round(math.sqrt(frac * height * width))))
            t, l = (height - side) // 2, (width - side) // 2
            masks[i, t:t + side, l:l + side] = True
        elif kind == "board":
            masks[i] = ((rows[:, None] + cols[None, :]) % 2).bool()
        elif kind == "mosaic":
            hidden = torch.rand(cells, cells, generator=g) < scale[1]
            masks[i] = hidden[rows][:, cols]
    return masks


def shuffle_patches(x: Tensor, generators: Sequence[torch.Generator], cells: int = 4) -> Tensor:
    """Each image's ``cells × cells`` patches randomly permuted (sides divisible by ``cells``)."""
    n, c, height, width = x.shape
    if height % cells or width % cells:
        raise ValueError(f"patch shuffle needs image sides divisible by cells={cells}, got {height}x{width}")
    ph, pw = height // cells, width // cells
    patches = x.reshape(n, c, cells, ph, cells, pw).permute(0, 2, 4, 1, 3, 5).reshape(n, cells * cells, c, ph, pw)
    order = torch.stack([torch.randperm(cells * cells, generator=g) for g in generators]).to(x.device)
    patches = patches[torch.arange(n, device=x.device)[:, None], order]
    return patches.reshape(n, cells, cells, c, ph, pw).permute(0, 3, 1, 4, 2, 5).reshape(n, c, height, width)


def apply_mask(x: Tensor, masks: Tensor, fill: float = 0.0) -> Tensor:
    """``x`` ``[N, C, H, W]`` with masked pixels (``masks [N, H, W]``) set to ``fill``."""
    return torch.where(masks[:, None].to(x.device), torch.as_tensor(fill, dtype=x.dtype, device=x.device), x)
