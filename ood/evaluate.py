"""Run detectors over a benchmark and write tidy per-sample scores.

The tidy table (one row per image and detector: benchmark, detector, set, index, score, is_ood)
is the single source of every metric in the report, so anybody can recompute them independently.
ID test images have set == "id".
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


def _score_dataset(detector: D.Detector, dataset: Dataset, batch_size: int) -> torch.Tensor:
    return torch.cat([detector.score(x) for x, _ in make_loader(dataset, batch_size, shuffle=False)])


def _forward_seconds(model: nn.Module, datasets: Mapping[str, Dataset], batch_size: int) -> float:
    """Wall time of one plain forward pass over every evaluated image: the unit of detector cost."""
    device = next(model.parameters()).device
    start = time.perf_counter()
    with torch.no_grad():
        for ds in datasets.values():
            for x, _ in make_loader(ds, batch_size, shuffle=False):
                model(x.to(device))
    return time.perf_counter() - start


def score_benchmark(model: nn.Module, benchmark: Any, names: list[str], params: Mapping[str, Mapping[str, Any]],
                    *, batch_size: int = 512) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit every detector on ID train, score ID test and every OOD set.

    Returns the tidy scores and a timing table (fit seconds, score seconds, and the scoring cost as
    a multiple of one forward pass of the classifier over the same images).
    """
    model.eval()
    sets: dict[str, Dataset] = {ID_SET: benchmark.test, **benchmark.ood}
    forward = _forward_seconds(model, sets, batch_size)
    frames, timings = [], []
    for name in tqdm(names, desc=f"{benchmark.name}: detectors"):
        detector = D.build(name, model=model, **dict(params.get(name) or {}))
        start = time.perf_counter()
        detector.fit(make_loader(benchmark.train, batch_size, shuffle=False))
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        for set_name, ds in sets.items():
            s = _score_dataset(detector, ds, batch_size).numpy()
            frames.append(pd.DataFrame({"benchmark": benchmark.name, "detector": name, "set": set_name,
                                        "index": range(len(s)), "score": s, "is_ood": set_name != ID_SET}))
        score_s = time.perf_counter() - start
        timings.append({"detector": name, "fit_s": fit_s, "score_s": score_s, "cost_vs_forward": score_s / forward})
    return pd.concat(frames, ignore_index=True), pd.DataFrame(timings)
