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
from .dense import DENSE_REGISTRY
from .posthoc import DEFAULTS, KNN, MSP, ODIN, Energy, Mahalanobis, MaxLogit, ReAct, ViM, vim_default_dim

#: registry name -> detector class
REGISTRY: dict[str, type[Detector]] = {
    cls.name: cls for cls in (MSP, MaxLogit, Energy, ODIN, Mahalanobis, KNN, ViM, ReAct)
}

#: every name :func:`build` accepts, in a stable order
NAMES: tuple[str, ...] = tuple(REGISTRY)
#: names of the per-pixel detectors, ``build(name, model=segmenter, dense=True)``
DENSE_NAMES: tuple[str, ...] = tuple(DENSE_REGISTRY)


def available() -> list[str]:
    """Names :func:`build` accepts."""
    return list(NAMES)


def build(name: str, model: nn.Module | None = None, *, dense: bool = False, **params: Any) -> Detector:
    """Build the detector registered as ``name`` on ``model`` with hyper-parameters ``params``
    (defaults: :data:`DEFAULTS`). ``dense=True`` builds the per-pixel detector of that name
    (:data:`DENSE_NAMES`) on a segmenter.

    Raises ``ValueError`` for an unknown name (listing the known ones) or an out-of-range value, and
    ``TypeError`` for an unknown parameter, a value of the wrong type or a missing model; every
    message names the detector, the parameter and what is allowed.
    """
    registry = DENSE_REGISTRY if dense else REGISTRY
    if name not in registry:
        kind = "dense detector" if dense else "detector"
        raise ValueError(f"unknown {kind} {name!r}; known {kind}s: {', '.join(registry)}")
    if model is None:
        network = "segmenter" if dense else "classifier"
        raise TypeError(f"{name}: build() needs the {network}, e.g. build({name!r}, model=net)")
    return registry[name](model, **params)


__all__ = [
    "DEFAULTS",
    "DENSE_NAMES",
    "DENSE_REGISTRY",
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
