"""OOD detectors behind one contract (ARCHITECTURE.md, "Contracts").

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

import importlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from .base import (DenseDetector, Detector, NotFittedError, Param, TrainedDetector, eval_mode, extract_features,
                   model_device)
from .dense import DENSE_REGISTRY
from .method import Method
from .pood import ADAPTED
from .posthoc import DEFAULTS, KNN, MSP, ODIN, Energy, Mahalanobis, MaxLogit, ReAct, ViM, vim_default_dim


class _Lazy(Mapping[str, type]):
    """A registry whose ``"module:Class"`` entries are imported when first looked up: a stage
    imports (and so depends on) only the methods it runs."""

    def __init__(self, entries: Mapping[str, type | str]):
        self._entries = dict(entries)

    def __getitem__(self, name: str) -> type:
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, cls = entry.partition(":")
            entry = self._entries[name] = getattr(importlib.import_module(module), cls)
        return entry

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self._entries)})"


#: this project's own post-hoc baselines: registry name -> detector class
OWN: dict[str, type[Detector]] = {cls.name: cls for cls in (MSP, MaxLogit, Energy, ODIN, Mahalanobis, KNN, ViM, ReAct)}
#: every post-hoc baseline: ours, then pytorch-ood's by name (:mod:`ood.detectors.pood`)
POSTHOC: dict[str, type[Detector]] = {**OWN, **ADAPTED}
#: The methods that train networks of their own, on the classifier: a new method is one line here
#: (its detector declares the rest, :class:`Method`). Imported when first asked for.
TRAINED: Mapping[str, type[TrainedDetector]] = _Lazy({
    "heatmap": "ood.detectors.heatmap:HeatmapOOD",
    "moodcat": "ood.detectors.moodcat:MoodCat",
    "diffguard": "ood.detectors.diffguard:DiffGuard",
})
#: ... and on a segmenter (dense OOD)
DENSE_TRAINED: Mapping[str, type[TrainedDetector]] = _Lazy({
    "nflowjs": "ood.detectors.nflowjs:NFlowJS",
})
#: every image detector :func:`build` accepts
REGISTRY: Mapping[str, type[Detector]] = _Lazy({**POSTHOC, **TRAINED._entries})

#: names of this project's own post-hoc baselines, in a stable order (pytorch-ood's: ``tuple(ADAPTED)``)
NAMES: tuple[str, ...] = tuple(OWN)
#: names of the per-pixel baselines, ``build(name, model=segmenter, dense=True)``
DENSE_NAMES: tuple[str, ...] = tuple(DENSE_REGISTRY)


def trained(name: str) -> type[TrainedDetector]:
    """The detector class of the trained method ``name`` (image or dense), imported on demand."""
    for registry in (TRAINED, DENSE_TRAINED):
        if name in registry:
            return registry[name]
    raise ValueError(f"unknown trained method {name!r}; known: {', '.join([*TRAINED, *DENSE_TRAINED])}")


def __getattr__(attr: str) -> type[TrainedDetector]:
    """The trained methods' classes by class name (``ood.detectors.MoodCat``), imported on first use."""
    for registry in (TRAINED, DENSE_TRAINED):
        for name, entry in registry._entries.items():  # type: ignore[attr-defined]
            if (entry if isinstance(entry, str) else f":{entry.__name__}").rpartition(":")[2] == attr:
                return registry[name]
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


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
    registry: Mapping[str, type[Detector]] = _Lazy({**DENSE_REGISTRY, **DENSE_TRAINED._entries}) if dense else REGISTRY  # type: ignore[attr-defined]
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
    if name not in TRAINED and name not in DENSE_TRAINED:
        raise ValueError(f"{path} is not a trained-detector checkpoint (detector {name!r}); "
                         f"known: {', '.join([*TRAINED, *DENSE_TRAINED])}")
    return trained(name).from_checkpoint(ckpt, model, **params)


__all__ = [
    "ADAPTED",
    "DEFAULTS",
    "DENSE_NAMES",
    "DENSE_REGISTRY",
    "DENSE_TRAINED",
    "NAMES",
    "OWN",
    "REGISTRY",
    "DenseDetector",
    "Detector",
    "POSTHOC",
    "TRAINED",
    "TrainedDetector",
    "Method",
    "load",
    "trained",
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
