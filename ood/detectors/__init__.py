"""OOD detectors behind one contract (DESIGN.md, "Contracts").

``fit(id_train_loader) -> self`` and ``score(x) -> Tensor[N]`` with **higher = more OOD**
(CPU float32). Build any detector by the name used in params.yaml and reports::

    from ood.detectors import build
    det = build("knn", model=classifier, k=50).fit(train_loader)
    scores = det.score(images)

Post-hoc names (:data:`POSTHOC`): ``msp``, ``maxlogit``, ``energy``, ``odin``, ``mahalanobis``,
``knn``, ``vim``, ``react``; their defaults and sources: :data:`DEFAULTS`. Detectors that train
networks of their own (:data:`TRAINED`): ``heatmap``, ``moodcat``, ``diffguard``; on a segmenter
(:data:`DENSE_TRAINED`): ``nflowjs``. They take their training parameters as
``build(name, model=..., train={...})``, train with ``fit(train, val=..., outliers=...)``, write
one checkpoint with ``save(path)`` and come back with :func:`load`::

    clf = ood.models.load("models/fmnist6/classifier.pt")
    det = ood.detectors.load("models/fmnist6/heatmap.pt", model=clf)
    scores = det.score(images)          # images: [N, 1, 28, 28] in [0, 1]
"""

from __future__ import annotations

from typing import Any

from torch import nn

import os

import torch

from .base import (DenseDetector, Detector, NotFittedError, Param, TrainedDetector, eval_mode, extract_features,
                   model_device)
from .dense import DENSE_REGISTRY
from .diffguard import DiffGuard
from .heatmap import HeatmapOOD
from .moodcat import MoodCat
from .nflowjs import NFlowJS
from .pood import ADAPTED
from .posthoc import DEFAULTS, KNN, MSP, ODIN, Energy, Mahalanobis, MaxLogit, ReAct, ViM, vim_default_dim

#: this project's own post-hoc baselines: registry name -> detector class
OWN: dict[str, type[Detector]] = {cls.name: cls for cls in (MSP, MaxLogit, Energy, ODIN, Mahalanobis, KNN, ViM, ReAct)}
#: every post-hoc baseline: ours, then pytorch-ood's by name (:mod:`ood.detectors.pood`)
POSTHOC: dict[str, type[Detector]] = {**OWN, **ADAPTED}
#: detectors that train networks of their own
TRAINED: dict[str, type[TrainedDetector]] = {cls.name: cls for cls in (HeatmapOOD, MoodCat, DiffGuard)}
#: dense detectors that train networks of their own (on a segmenter)
DENSE_TRAINED: dict[str, type[TrainedDetector]] = {cls.name: cls for cls in (NFlowJS,)}
#: every image detector :func:`build` accepts
REGISTRY: dict[str, type[Detector]] = {**POSTHOC, **TRAINED}

#: names of this project's own post-hoc baselines, in a stable order (pytorch-ood's: ``tuple(ADAPTED)``)
NAMES: tuple[str, ...] = tuple(OWN)
#: names of the per-pixel baselines, ``build(name, model=segmenter, dense=True)``
DENSE_NAMES: tuple[str, ...] = tuple(DENSE_REGISTRY)


def available() -> list[str]:
    """Names :func:`build` accepts (post-hoc first, then trained detectors)."""
    return list(REGISTRY)


def build(name: str, model: nn.Module | None = None, *, dense: bool = False, **params: Any) -> Detector:
    """Build the detector registered as ``name`` on ``model`` with hyper-parameters ``params``
    (defaults: :data:`DEFAULTS`). ``dense=True`` builds the per-pixel detector of that name
    (:data:`DENSE_NAMES`) on a segmenter.

    Raises ``ValueError`` for an unknown name (listing the known ones) or an out-of-range value, and
    ``TypeError`` for an unknown parameter, a value of the wrong type or a missing model; every
    message names the detector, the parameter and what is allowed.
    """
    registry = {**DENSE_REGISTRY, **DENSE_TRAINED} if dense else REGISTRY
    if name not in registry:
        kind = "dense detector" if dense else "detector"
        raise ValueError(f"unknown {kind} {name!r}; known {kind}s: {', '.join(registry)}")
    if model is None:
        network = "segmenter" if dense else "classifier"
        raise TypeError(f"{name}: build() needs the {network}, e.g. build({name!r}, model=net)")
    return registry[name](model, **params)


def load(path: str | os.PathLike, model: nn.Module, **params: Any) -> TrainedDetector:
    """Rebuild a trained detector written by ``save(path)`` on ``model`` (the classifier it was
    trained on, or the segmenter for a dense one), on the model's device, ready to score;
    ``params`` override scoring parameters."""
    ckpt = torch.load(path, map_location=model_device(model), weights_only=True)
    name = ckpt.get("detector") if isinstance(ckpt, dict) else None
    known = {**TRAINED, **DENSE_TRAINED}
    if name not in known:
        raise ValueError(f"{path} is not a trained-detector checkpoint (detector {name!r}); "
                         f"known: {', '.join(known)}")
    return known[name].from_checkpoint(ckpt, model, **params)


__all__ = [
    "ADAPTED",
    "DEFAULTS",
    "DiffGuard",
    "DENSE_NAMES",
    "DENSE_REGISTRY",
    "DENSE_TRAINED",
    "NFlowJS",
    "NAMES",
    "OWN",
    "REGISTRY",
    "DenseDetector",
    "Detector",
    "HeatmapOOD",
    "POSTHOC",
    "TRAINED",
    "TrainedDetector",
    "load",
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
