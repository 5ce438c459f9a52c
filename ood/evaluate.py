"""Run detectors over a benchmark and write tidy per-sample scores.

The tidy table (one row per image and detector: benchmark, detector, set, index, score, is_ood)
is the single source of every metric in the report, so anybody can recompute them independently.
ID test images have set == "id".

Post-hoc detectors are functions of the penultimate features (or of the logits, which are
``fc(features)``), so one forward pass per image serves all of them: features of the training data
and of every evaluated set are extracted once and shared. Detectors that need input gradients
(ODIN, Mahalanobis with input preprocessing) score the images themselves.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm import tqdm

from . import detectors as D
from .train import make_loader, predict

ID_SET = "id"


def _shares_features(detector: D.Detector) -> bool:
    return hasattr(detector, "score_features") and not detector.needs_grad


def score_benchmark(model: nn.Module, benchmark: Any, names: list[str], params: Mapping[str, Any],
                    *, batch_size: int = 512) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit every detector on ID train, score ID test and every OOD set.

    Returns the tidy scores and a cost table: fit and scoring seconds, and the scoring cost as a
    multiple of one plain forward pass of the classifier over the same images (for detectors that
    share the forward pass: that pass plus their own work).
    """
    model.eval()
    sets: dict[str, Dataset] = {ID_SET: benchmark.test, **benchmark.ood}
    start = time.perf_counter()
    z_train, y_train = predict(model, benchmark.train, batch_size, fn=model.features)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    z_sets = {s: predict(model, ds, batch_size, fn=model.features)[0] for s, ds in tqdm(sets.items(), desc="features")}
    forward_s = time.perf_counter() - start

    frames, costs = [], []
    for name in tqdm(names, desc=f"{benchmark.name}: detectors"):
        detector = D.build(name, model=model, **dict(params.get(name) or {}))
        shared = _shares_features(detector)
        start = time.perf_counter()
        if hasattr(detector, "fit_features"):
            detector.fit_features(z_train, y_train)
        else:
            detector.fit(make_loader(benchmark.train, batch_size, shuffle=False))
        fit_s = time.perf_counter() - start + (train_s if detector.requires_fit else 0.0)
        start = time.perf_counter()
        for set_name, ds in sets.items():
            if shared:
                s = detector.score_features(z_sets[set_name])
            else:
                s = torch.cat([detector.score(x) for x, _ in make_loader(ds, batch_size, shuffle=False)])
            frames.append(pd.DataFrame({"benchmark": benchmark.name, "detector": name, "set": set_name,
                                        "index": range(len(s)), "score": s.numpy(), "is_ood": set_name != ID_SET}))
        score_s = time.perf_counter() - start + (forward_s if shared else 0.0)
        costs.append({"detector": name, "fit_s": fit_s, "score_s": score_s, "cost_vs_forward": score_s / forward_s})
    return pd.concat(frames, ignore_index=True), pd.DataFrame(costs)


# --------------------------------------------------------------------------------------------------
# dense (per-pixel) benchmarks

ALL_SET = "all"  # the pooled pixels of every dense OOD set (not a mean)


def score_dense_benchmark(model: nn.Module, benchmark: Any, names: list[str], params: Mapping[str, Any],
                          *, batch_size: int = 32, bins: int = 2**16, component_threshold: float | str = "best_f1",
                          min_size: int = 5, min_gt_size: int = 1) -> tuple[dict, dict, pd.DataFrame]:
    """Score every pixel of every dense OOD set with every dense detector.

    The segmenter runs once per image; every detector is a function of the logits. Returns
    ``(accumulators, maps, costs)``: ``accumulators[detector][set] = (PixelMetrics, ComponentMetrics)``
    for each OOD set and ``all`` (ready for :func:`ood.metrics.summarize_dense`), ``maps[set]`` =
    ``{"label": uint8 [N,H,W], detector: float32 [N,H,W], ...}`` and the cost table. The maps of the
    embedded benchmark fit in memory; the component threshold (SMIYC: best pixel F1) needs them.
    """
    from .metrics import dense_accumulators

    model.eval()
    start = time.perf_counter()
    logits = {s: predict(model, ds, batch_size) for s, ds in tqdm(benchmark.ood.items(), desc="segmenter")}
    forward_s = time.perf_counter() - start
    maps: dict[str, dict[str, np.ndarray]] = {s: {"label": t.numpy().astype(np.uint8)} for s, (_, t) in logits.items()}
    accumulators: dict[str, dict[str, tuple]] = {}
    costs = []
    settings = dict(bins=bins, threshold=component_threshold, min_size=min_size, min_gt_size=min_gt_size)
    for name in tqdm(names, desc=f"{benchmark.name}: dense detectors"):
        detector = D.build(name, model=model, dense=True, **dict(params.get(name) or {}))
        start = time.perf_counter()
        for s, (lg, _) in logits.items():
            maps[s][name] = detector.score_logits(lg).numpy()
        score_s = time.perf_counter() - start + forward_s
        accumulators[name] = {s: dense_accumulators(maps[s][name], maps[s]["label"], **settings) for s in logits}
        pooled = [np.concatenate([maps[s][key] for s in logits]) for key in (name, "label")]
        accumulators[name][ALL_SET] = dense_accumulators(*pooled, **settings)
        costs.append({"detector": name, "fit_s": 0.0, "score_s": score_s, "cost_vs_forward": score_s / forward_s})
    return accumulators, maps, pd.DataFrame(costs)
