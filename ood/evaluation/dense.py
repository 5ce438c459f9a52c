"""Streaming dense (per-pixel) OOD evaluation: score maps never all in memory.

:func:`ood.evaluation.image.score_dense_benchmark` predicts the logits of every dense OOD set at once and
keeps every detector's maps of every set in memory, which the embedded ``scenes`` benchmark allows
but real dense sets (thousands of 2048x1024 frames: Fishyscapes, SMIYC) do not. Here every set is
scored batch by batch, in two passes:

1. **Pixel pass.** Per batch: one segmenter forward; every detector's map, either
   ``score_logits(logits)`` (the dense baselines: one forward serves all of them) or
   ``score_map(x, keys=[(set, index), ...])`` (a detector that owns a network, e.g. NFlowJS);
   :class:`~ood.metrics.PixelMetrics` updated per (detector, set); labels and maps appended to a
   :class:`~ood.evaluation.scoremaps.ScoreMapWriter` store (``<set>/label/<chunk>.npy``,
   ``<set>/<detector>/<chunk>.npy``, see :mod:`ood.evaluation.scoremaps`).
2. **Component pass.** The component threshold (SMIYC: best pixel F1 of the same detector on the
   same set, from the pixel accumulator; or a given number) is only known after the pixel pass, so
   :class:`~ood.metrics.ComponentMetrics` are filled from the maps read back from the store, one
   chunk at a time.

``all`` is the pooled images of every set (not a mean): its pixel accumulator is
``PixelMetrics.merged`` of the sets' (exactly the accumulator fed every image, see
:meth:`PixelMetrics.merge`); its component accumulator uses the threshold of the pooled pixels, so
it is filled in the same component pass (or merged from the sets', when their thresholds coincide).

Peak memory: one batch of images, logits and maps (plus the accumulators: ``2 * bins`` counts per
detector and set and a few thousand numbers per image), whatever the size of the sets.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from os import PathLike
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from .. import detectors as D
from ..detectors.base import NotFittedError, eval_mode, model_device
from ..metrics import ComponentMetrics, PixelMetrics, pixel_confusion
from ..sets import ALL_SET
from ..train import make_loader
from .scoremaps import LABEL_KEY, ScoreMaps, ScoreMapWriter, _check_name

__all__ = ["gallery", "score_dense_benchmark", "segmentation_confusion"]

_DENSE_LABELS = (0, 1, 255)


def _uses_logits(detector: Any, model: nn.Module) -> bool:
    """A function of ``model``'s logits (one shared forward), rather than of the images."""
    return callable(getattr(detector, "score_logits", None)) and getattr(detector, "model", None) is model


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _labels(y: Any, set_name: str) -> np.ndarray:
    """Dense OOD targets ``[N, H, W]`` as uint8 (0 ID, 1 OOD, 255 void); other values raise."""
    lab = y.numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if lab.ndim != 3:
        raise ValueError(f"{set_name}: dense targets must be [N, H, W], got shape {lab.shape}")
    ok = np.isin(lab, _DENSE_LABELS)
    if not ok.all():
        raise ValueError(f"{set_name}: dense OOD targets must be 0 (ID), 1 (OOD) or 255 (void); "
                         f"found {np.unique(lab[~ok])[:5].tolist()}")
    return lab.astype(np.uint8)


def _threshold(pm: PixelMetrics, component_threshold: float | str) -> float:
    return pm.best_f1_threshold() if isinstance(component_threshold, str) else float(component_threshold)


def score_dense_benchmark(model: nn.Module, benchmark: Any, names: list[str], params: Mapping[str, Any],
                          *, batch_size: int = 32, bins: int = 2**16, component_threshold: float | str = "best_f1",
                          min_size: int = 5, min_gt_size: int = 1, scores_path: str | PathLike[str],
                          detectors: Mapping[str, Any] | None = None) -> tuple[dict, pd.DataFrame]:
    """Score every pixel of every dense OOD set with every dense detector, streaming.

    Detectors: ``names`` are built with ``ood.detectors.build(name, model=model, dense=True,
    **params[name])``; ``detectors`` adds already built (and fitted) dense detectors by name, e.g.
    one that owns a network. A detector with ``score_logits`` built on ``model`` is a function of
    the segmenter's logits (the segmenter runs once per image for all of them); any other is scored
    with ``score_map(x, keys)``, the keys being ``(set, index)`` (index within the set), so the
    random draws of a ``random`` detector do not depend on the batch size. The segmenter runs on
    every batch even when no detector uses its logits: its time is the unit of ``cost_vs_forward``.

    The maps are written to ``scores_path`` as they are produced (an ``.npz`` store, members
    ``<set>/label/<chunk>.npy`` uint8 and ``<set>/<detector>/<chunk>.npy`` float32, chunks of
    ``batch_size`` consecutive images; see :mod:`ood.evaluation.scoremaps`); the file appears only when the
    pixel pass completes. The component metrics are then filled from the maps read back from it.

    Returns ``(accumulators, costs)``: ``accumulators[detector][set] = (PixelMetrics,
    ComponentMetrics)`` for each OOD set and ``all`` (ready for :func:`ood.metrics.summarize_dense`)
    and the cost table (``detector, fit_s, score_s, cost_vs_forward``): scoring seconds (for
    detectors of the logits: the segmenter forward plus their own work) as a multiple of the
    segmenter's forward seconds over the same images (data loading, metrics and writing excluded).
    ``component_threshold``: ``"best_f1"`` (SMIYC: per detector and set, the best pixel-F1
    threshold of the same images) or a number. Peak memory is one batch of images, logits and maps,
    apart from the accumulators.
    """
    if isinstance(component_threshold, str):
        if component_threshold != "best_f1":
            raise ValueError(f"component_threshold must be a number or 'best_f1', got {component_threshold!r}")
    elif isinstance(component_threshold, bool) or not math.isfinite(float(component_threshold)):
        raise ValueError(f"component_threshold must be a finite number or 'best_f1', got {component_threshold!r}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    sets = dict(benchmark.ood)
    if ALL_SET in sets:
        raise ValueError(f"a dense OOD set may not be named {ALL_SET!r} (the pooled sets)")
    for s in sets:
        _check_name("set name", s)

    built: dict[str, Any] = {name: D.build(name, model=model, dense=True, **dict(params.get(name) or {}))
                             for name in names}
    for name, det in dict(detectors or {}).items():
        if name in built:
            raise ValueError(f"detector {name!r} is both in names and in detectors")
        if not callable(getattr(det, "score_map", None)):
            raise TypeError(f"detector {name!r} is not a dense detector (no score_map): {type(det).__name__}")
        built[name] = det
    if not built:
        raise ValueError("no dense detectors to score")
    for name, det in built.items():
        if _check_name("detector name", name) == LABEL_KEY:
            raise ValueError(f"{LABEL_KEY!r} is reserved for the targets; rename the detector")
        if getattr(det, "requires_fit", False) and not getattr(det, "fitted", True):
            raise NotFittedError(f"{name}: detector is not fitted; fit it before the dense evaluation")
    of_logits = {name for name, det in built.items() if _uses_logits(det, model)}

    device = model_device(model)
    pixel = {name: {s: PixelMetrics(bins) for s in sets} for name in built}
    score_s = dict.fromkeys(built, 0.0)
    forward_s = 0.0
    title = getattr(benchmark, "name", "dense")
    n_batches = sum(math.ceil(len(ds) / batch_size) for ds in sets.values())
    with ScoreMapWriter(scores_path) as writer, eval_mode(model), torch.no_grad(), \
            tqdm(total=n_batches, desc=f"{title}: dense scoring", disable=None) as bar:
        for s, ds in sets.items():
            offset = 0
            for x, y in make_loader(ds, batch_size, shuffle=False):
                label = _labels(y, s)
                writer.write(s, LABEL_KEY, label)
                start = time.perf_counter()
                x = x.to(device)
                logits = model(x).float()
                _sync(device)
                forward_s += time.perf_counter() - start
                keys = [(s, offset + i) for i in range(len(x))]
                for name, det in built.items():
                    start = time.perf_counter()
                    if name in of_logits:
                        m = det.score_logits(logits).detach().to("cpu", torch.float32)
                    else:
                        m = det.score_map(x, keys=keys)
                    score_s[name] += time.perf_counter() - start
                    m = np.ascontiguousarray(m.numpy() if isinstance(m, torch.Tensor) else m, dtype=np.float32)
                    if m.shape != label.shape:
                        raise ValueError(f"{name} on {s}: score map shape {m.shape} differs from the targets' {label.shape}")
                    pixel[name][s].update(m, label)
                    writer.write(s, name, m)
                    del m
                del logits, x, label
                offset += len(keys)
                bar.update()

    accumulators: dict[str, dict[str, tuple]] = {}
    thresholds: dict[str, dict[str, float]] = {}
    for name in built:
        pixel[name][ALL_SET] = PixelMetrics.merged(*(pixel[name][s] for s in sets))
        thresholds[name] = {s: _threshold(pm, component_threshold) for s, pm in pixel[name].items()}
    settings = dict(min_size=min_size, min_gt_size=min_gt_size)
    comps = {name: {s: ComponentMetrics(thresholds[name][s], **settings) for s in sets} for name in built}
    # ``all``: merged from the sets' accumulators where every set has the pooled threshold (exact: the
    # per-image statistics only depend on the threshold), else filled in the same pass.
    pooled = {name: ComponentMetrics(thresholds[name][ALL_SET], **settings) for name in built
              if any(thresholds[name][s] != thresholds[name][ALL_SET] for s in sets)}
    with ScoreMaps(scores_path) as store, \
            tqdm(total=n_batches, desc=f"{title}: dense components", disable=None) as bar:
        for s in sets:
            if s not in store.sets():  # an empty set wrote nothing
                continue
            for batch in store.iter_batches(s, [LABEL_KEY, *built]):
                label = batch[LABEL_KEY]
                for name in built:
                    comps[name][s].update(batch[name], label)
                    if name in pooled:
                        pooled[name].update(batch[name], label)
                del batch, label
                bar.update()

    costs = []
    for name in built:
        comps[name][ALL_SET] = (pooled[name] if name in pooled
                                else ComponentMetrics.merged(*(comps[name][s] for s in sets)))
        accumulators[name] = {s: (pixel[name][s], comps[name][s]) for s in [*sets, ALL_SET]}
        total_s = score_s[name] + (forward_s if name in of_logits else 0.0)
        costs.append({"detector": name, "fit_s": 0.0, "score_s": total_s,
                      "cost_vs_forward": total_s / forward_s if forward_s > 0 else float("nan")})
    return accumulators, pd.DataFrame(costs)


@torch.no_grad()
def segmentation_confusion(model: nn.Module, dataset: Any, num_classes: int, *, batch_size: int = 32) -> np.ndarray:
    """Confusion matrix ``[true, predicted]`` of ``model``'s per-pixel argmax over the non-void
    pixels of ``dataset``, batch by batch: ``ood.train.predict`` would keep every logit, 80 GB for
    the 500 Cityscapes val frames at 1024x2048 (19 classes). Feed it to ``ood.metrics.mean_iou``."""
    device = model_device(model)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    with eval_mode(model):
        for x, y in make_loader(dataset, batch_size, shuffle=False):
            pred = model(x.to(device)).argmax(1).cpu()
            confusion += pixel_confusion(pred.numpy(), y.numpy(), num_classes)
    return confusion


def gallery(scores_path: str | PathLike[str], set_name: str, n: int = 4,
            keys: list[str] | None = None) -> dict[str, np.ndarray]:
    """The first ``n`` maps of ``set_name`` from a store written by :func:`score_dense_benchmark`:
    ``{"label": uint8 [n, H, W], detector: float32 [n, H, W], ...}`` (``keys``: which; default
    all), reading only the chunks that hold them (e.g. for ``figures.dense_gallery``)."""
    with ScoreMaps(scores_path) as store:
        keys = store.keys(set_name) if keys is None else list(keys)
        return {k: store.head(set_name, k, n) for k in keys}
