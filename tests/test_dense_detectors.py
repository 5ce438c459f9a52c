"""Per-pixel baselines: hand-computed values, sign convention, agreement with the image detectors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import ood.models
from ood.detectors import DENSE_NAMES, build


class FixedLogits(torch.nn.Module):
    """A 'segmenter' returning given logits whatever the input."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = logits
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits


def test_dense_scores_by_hand() -> None:
    # One image, 3 classes, 1x2 pixels: a confident pixel and a uniform one.
    logits = torch.tensor([[[[4.0, 0.0]], [[0.0, 0.0]], [[0.0, 0.0]]]])  # [1, 3, 1, 2]
    model = FixedLogits(logits)
    x = torch.zeros(1, 1, 1, 2)
    e4 = math.exp(4)
    p = np.array([e4, 1, 1]) / (e4 + 2)
    expected = {
        "msp": [-p[0], -1 / 3],
        "entropy": [float(-(p * np.log(p)).sum()), math.log(3)],
        "maxlogit": [-4.0, 0.0],
        "energy": [-math.log(e4 + 2), -math.log(3)],
    }
    for name in DENSE_NAMES:
        got = build(name, model=model, dense=True).score_map(x)
        assert got.shape == (1, 1, 2)
        assert np.allclose(got[0, 0].numpy(), expected[name], atol=1e-6), name
        assert got[0, 0, 1] > got[0, 0, 0], f"{name}: the uniform pixel must be more OOD"


def test_dense_map_equals_the_image_detector_applied_per_pixel() -> None:
    torch.manual_seed(0)
    seg = ood.models.build("fcn", num_classes=5, width=8).eval()
    x = torch.rand(2, 1, 16, 16)
    logits = seg(x).permute(0, 2, 3, 1).reshape(-1, 5)  # every pixel as a sample
    for name in ("msp", "maxlogit", "energy"):
        per_pixel = build(name, model=FixedLogits(logits), dense=False).score(torch.zeros(len(logits), 1, 1, 1))
        dense = build(name, model=seg, dense=True).score_map(x)
        assert torch.allclose(dense.reshape(-1), per_pixel, atol=1e-5), name


def test_dense_registry_errors() -> None:
    with pytest.raises(ValueError, match="unknown dense detector 'knn'; known dense detectors: msp, entropy"):
        build("knn", model=FixedLogits(torch.zeros(1, 2, 1, 1)), dense=True)
    with pytest.raises(ValueError, match="temperature"):
        build("energy", model=FixedLogits(torch.zeros(1, 2, 1, 1)), dense=True, temperature=0.0)
