"""Per-pixel baselines for dense OOD detection (segmenters): the classifier baselines applied to
every pixel's logits. ``score_map(x) -> [N, H, W]``, higher = more OOD; void handling is the
metrics' business, not the detectors'.

* ``msp``: ``-max_c softmax`` (Hendrycks & Gimpel 2017; per pixel as in Fishyscapes' baseline)
* ``entropy``: ``-sum_c p_c log p_c`` of the softmax (Fishyscapes/SMIYC baseline)
* ``maxlogit``: ``-max_c logit`` (Hendrycks et al. 2022, "Scaling OOD detection", StreetHazards)
* ``energy``: ``-T logsumexp(logits / T)`` (Liu et al. 2020), T = 1
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from .base import DenseDetector, Param
from .posthoc import Energy, energy_score, maxlogit_score, msp_score


def entropy_score(logits: Tensor) -> Tensor:
    """Shannon entropy (nats) of the softmax over dim 1: uniform = log C = most OOD."""
    logp = torch.log_softmax(logits.float(), dim=1)
    return -(logp.exp() * logp).sum(dim=1)


class _DenseLogitDetector(DenseDetector):
    """A function of every pixel's logits; ``score_logits`` lets one segmenter pass serve all."""

    def score_logits(self, logits: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _score_map(self, x: Tensor) -> Tensor:
        return self.score_logits(self.model(x))


class DenseMSP(_DenseLogitDetector):
    name = "msp"

    def score_logits(self, logits: Tensor) -> Tensor:
        return msp_score(logits)


class DenseEntropy(_DenseLogitDetector):
    name = "entropy"

    def score_logits(self, logits: Tensor) -> Tensor:
        return entropy_score(logits)


class DenseMaxLogit(_DenseLogitDetector):
    name = "maxlogit"

    def score_logits(self, logits: Tensor) -> Tensor:
        return maxlogit_score(logits)


class DenseEnergy(_DenseLogitDetector):
    name = "energy"
    params: ClassVar[dict[str, Param]] = Energy.params  # same temperature, same default and range

    def score_logits(self, logits: Tensor) -> Tensor:
        return energy_score(logits, self.temperature)


DENSE_REGISTRY: dict[str, type[DenseDetector]] = {
    cls.name: cls for cls in (DenseMSP, DenseEntropy, DenseMaxLogit, DenseEnergy)
}

__all__ = ["DENSE_REGISTRY", "DenseEnergy", "DenseEntropy", "DenseMSP", "DenseMaxLogit", "entropy_score"]
