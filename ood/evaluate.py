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

import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm import tqdm

from . import detectors as D
from .train import make_loader

ID_SET = "id"


@torch.no_grad()
def _features(model: nn.Module, dataset: Dataset, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate features (CPU float32) and labels of a whole dataset, OOD samples included."""
    device = next(model.parameters()).device
    zs, ys = [], []
    for x, y in make_loader(dataset, batch_size, shuffle=False):
        zs.append(model.features(x.to(device)).float().cpu())
        ys.append(y)
    return torch.cat(zs), torch.cat(ys)


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
    z_train, y_train = _features(model, benchmark.train, batch_size)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    z_sets = {s: _features(model, ds, batch_size)[0] for s, ds in tqdm(sets.items(), desc="features")}
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
