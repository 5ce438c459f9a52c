"""OOD detectors behind one contract (DESIGN.md, "Contracts").

``fit(id_train_loader) -> self`` and ``score(x) -> Tensor[N]`` with **higher = more OOD**
(CPU float32). Build any detector by the name used in params.yaml and reports::

    from ood.detectors import build
    det = build("knn", model=classifier, k=50).fit(train_loader)
    scores = det.score(images)

Names: ``msp``, ``maxlogit``, ``energy``, ``odin``, ``mahalanobis``, ``knn``, ``vim``, ``react``.
Default hyper-parameters and their sources: :data:`DEFAULTS`.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .base import DenseDetector, Detector, NotFittedError, Param, eval_mode, extract_features
from .posthoc import DEFAULTS, KNN, MSP, ODIN, Energy, Mahalanobis, MaxLogit, ReAct, ViM, vim_default_dim

#: registry name -> detector class
REGISTRY: dict[str, type[Detector]] = {
    cls.name: cls for cls in (MSP, MaxLogit, Energy, ODIN, Mahalanobis, KNN, ViM, ReAct)
}

#: every name :func:`build` accepts, in a stable order
NAMES: tuple[str, ...] = tuple(REGISTRY)


def available() -> list[str]:
    """Names :func:`build` accepts."""
    return list(NAMES)


def build(name: str, model: nn.Module | None = None, **params: Any) -> Detector:
    """Build the detector registered as ``name`` on ``model`` with hyper-parameters ``params``
    (defaults: :data:`DEFAULTS`).

    Raises ``ValueError`` for an unknown name (listing the known ones) or an out-of-range value, and
    ``TypeError`` for an unknown parameter, a value of the wrong type or a missing model; every
    message names the detector, the parameter and what is allowed.
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown detector {name!r}; known detectors: {', '.join(NAMES)}")
    if model is None:
        raise TypeError(f"{name}: build() needs the classifier, e.g. build({name!r}, model=net)")
    return REGISTRY[name](model, **params)


__all__ = [
    "DEFAULTS",
    "NAMES",
    "REGISTRY",
    "DenseDetector",
    "Detector",
    "Energy",
    "KNN",
    "MSP",
    "Mahalanobis",
    "MaxLogit",
    "NotFittedError",
    "ODIN",
    "Param",
    "ReAct",
    "ViM",
    "available",
    "build",
    "eval_mode",
    "extract_features",
    "vim_default_dim",
]
