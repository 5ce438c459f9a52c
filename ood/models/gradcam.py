"""Grad-CAM (Selvaraju et al., ICCV 2017) of a project classifier, for DiffGuard's distinct
semantic guidance: where the classifier looks when it predicts a class."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["grad_cam"]


def grad_cam(model: nn.Module, x: Tensor, y: Tensor, size: tuple[int, int] | None = None) -> Tensor:
    """Grad-CAM maps ``[N, H, W]`` of class ``y`` at the classifier's deepest feature map (the last
    of ``model.map_points``), upsampled bilinearly to ``size`` (default: the image's) and min–max
    normalised per image to [0, 1] (a flat map becomes 0). Gradients are taken w.r.t. the feature
    map only; the classifier's weights receive none."""
    module = model.body[model.map_points[-1]]
    store: dict[str, Tensor] = {}
    def hook(_m: nn.Module, _i: tuple, out: Tensor) -> Tensor:
        store["a"] = out.detach().requires_grad_(True)  # a leaf: works on a frozen classifier too
        return store["a"]

    handle = module.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            logits = model(x.detach())
            a = store["a"]
            grads, = torch.autograd.grad(logits.gather(1, y.view(-1, 1)).sum(), a)
    finally:
        handle.remove()
    weights = grads.mean(dim=(2, 3), keepdim=True)  # global-average-pooled gradients
    cam = F.relu((weights * a.detach()).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=size or x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    lo = cam.flatten(1).min(dim=1).values.view(-1, 1, 1)
    hi = cam.flatten(1).max(dim=1).values.view(-1, 1, 1)
    return (cam - lo) / (hi - lo).clamp_min(1e-12)
