"""Image similarities shared by the synthesis-based detectors (MoodCat, DiffGuard).

* :func:`ssim` — structural similarity (Wang et al. 2004): 11×11 Gaussian window, σ = 1.5,
  K1 = 0.01, K2 = 0.03, valid convolution, averaged over channels and positions; per image.
* :func:`feature_distance` — an LPIPS-style perceptual distance (Zhang et al., CVPR 2018, the
  uncalibrated "baseline" variant) on a network's own feature maps: unit-normalise every position's
  channel vector, squared difference summed over channels, averaged over positions, summed over
  maps. LPIPS/DISTS proper need ImageNet backbone weights that the embedded profile does not have;
  on the ID classifier's maps this is the distance the report calls "perceptual (classifier maps)".
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ssim", "feature_distance"]


def _gaussian_window(size: int, sigma: float, channels: int, like: Tensor) -> Tensor:
    coords = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    g = torch.exp(-coords ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(a: Tensor, b: Tensor, data_range: float = 1.0, window: int = 11, sigma: float = 1.5,
         padding: int = 0) -> Tensor:
    """Mean SSIM per image ``[N]`` of ``a``, ``b`` ``[N, C, H, W]`` (``data_range``: max − min
    pixel value, 2 for [-1, 1]). ``padding`` 0: valid windows only (scikit-image); ``window // 2``:
    zero padding (the pytorch_ssim package MoodCat trains with)."""
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"ssim: need two [N, C, H, W] tensors of one shape, got {list(a.shape)} and {list(b.shape)}")
    c = a.shape[1]
    w = _gaussian_window(window, sigma, c, a)
    blur = lambda t: F.conv2d(t, w, groups=c, padding=padding)  # noqa: E731
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(dim=1)


def feature_distance(maps_a: Sequence[Tensor], maps_b: Sequence[Tensor], eps: float = 1e-10) -> Tensor:
    """LPIPS-style distance ``[N]`` between two lists of feature maps ``[N, C, H, W]``."""
    total = 0
    for fa, fb in zip(maps_a, maps_b, strict=True):
        na = fa / (fa.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)
        nb = fb / (fb.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)
        total = total + (na - nb).pow(2).sum(dim=1).flatten(1).mean(dim=1)
    return total
