"""Run detectors over a benchmark and write tidy per-sample scores.

The tidy table (one row per image and detector: benchmark, detector, set, index, score, is_ood)
is the single source of every metric in the report, so anybody can recompute them independently.
ID test images have set == "id", ID validation images set == "val" (used to fit combinations,
never in metrics); ``(set, index)`` identifies an image across detectors (paired comparisons).

Post-hoc detectors are functions of the penultimate features (or of the logits, which are
``fc(features)``), so one forward pass per image serves all of them: features of the training data
and of every evaluated set are extracted once and shared. Detectors that need input gradients
(ODIN, Mahalanobis with input preprocessing) score the images themselves.
"""

from __future__ import annotations

import time
import zlib
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset, Subset
from tqdm import tqdm

from .. import detectors as D
from ..detectors.base import eval_mode
from ..sets import ID_SET, VAL_SET
from ..train import make_loader, predict

SCORE_COLUMNS = ["benchmark", "detector", "set", "index", "score", "is_ood"]


def _shares_features(detector: D.Detector) -> bool:
    return hasattr(detector, "score_features") and not detector.needs_grad


def _sets(benchmark: Any) -> dict[str, Dataset]:
    return {VAL_SET: benchmark.val, ID_SET: benchmark.test, **benchmark.ood}


def _rows(benchmark: str, detector: str, set_name: str, scores: torch.Tensor,
          index: Sequence[int] | None = None) -> pd.DataFrame:
    return pd.DataFrame({"benchmark": benchmark, "detector": detector, "set": set_name,
                         "index": range(len(scores)) if index is None else index, "score": scores.numpy(),
                         "is_ood": set_name not in (ID_SET, VAL_SET)})


def subset_indices(n: int, size: int | None, seed: int, set_name: str) -> list[int]:
    """The seeded evaluation subset of a set of ``n`` images: ``size`` indices drawn without
    replacement from a stream keyed on ``(seed, set name)``, ascending (all when ``size`` is None
    or not smaller than ``n``). The same for every detector, so comparisons pair by index."""
    if size is None or size >= n:
        return list(range(n))
    rng = np.random.default_rng([int(seed), zlib.crc32(f"subset/{set_name}".encode())])
    return sorted(rng.choice(n, size=size, replace=False).tolist())


def shard() -> tuple[int, int]:
    """(rank, world size) under torch.distributed, else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _gather(frame: pd.DataFrame, costs: dict[str, float]) -> tuple[pd.DataFrame, dict[str, float]]:
    """Every process's rows and timings, merged on every process (a no-op in one process)."""
    import torch.distributed as dist

    if shard()[1] == 1:
        return frame, costs
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, (frame, costs))
    merged = pd.concat([p[0] for p in parts], ignore_index=True)
    # Wall time is the slowest shard's; the forward-pass reference is summed like the work.
    return merged, {"score_s": max(p[1]["score_s"] for p in parts), "forward_s": sum(p[1]["forward_s"] for p in parts)}


def score_posthoc(model: nn.Module, benchmark: Any, names: list[str], params: Mapping[str, Any],
                  *, batch_size: int = 512) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit every post-hoc detector on ID train; score ID validation, ID test and every OOD set.

    Returns the tidy scores (``set == "val"`` marks the ID validation rows) and a cost table: fit
    and scoring seconds, and the scoring cost as a multiple of one plain forward pass of the
    classifier over the same images (for detectors that share the forward pass: that pass plus
    their own work).
    """
    model.eval()
    sets = _sets(benchmark)
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
            frames.append(_rows(benchmark.name, name, set_name, s))
        score_s = time.perf_counter() - start + (forward_s if shared else 0.0)
        costs.append({"detector": name, "fit_s": fit_s, "score_s": score_s, "cost_vs_forward": score_s / forward_s})
    return pd.concat(frames, ignore_index=True), pd.DataFrame(costs)


def score_detector(detector: D.Detector, benchmark: Any, *, batch_size: int = 512, fit_s: float = 0.0,
                   variants: Callable[..., dict[str, torch.Tensor]] | None = None,
                   labels: Callable[[str, torch.Tensor, list], torch.Tensor] | None = None,
                   sets: Sequence[str] | None = None, subset: int | None = None,
                   seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score one fitted detector on ID validation, ID test and every OOD set, each image with its
    key ``(set, index)`` (per-sample randomness); same outputs as :func:`score_posthoc`. The cost
    ratio is measured against a plain classifier forward pass over the same batches.

    ``variants(x, keys=..., labels=...)``: several named scores from one pass (e.g.
    ``MoodCat.scores``), written as detectors ``<name>[<variant>]``, instead of ``detector.score``.
    ``labels(set, y, keys)``: conditioning labels passed to ``variants`` (MoodCat's oracle mode).
    ``sets``: only these sets (default: ID validation, ID test and every OOD set).
    ``subset``: score only a seeded subset of this many images per set (:func:`subset_indices`);
    rows keep the images' indices in the full set, so other detectors pair with them.

    Under ``torch.distributed`` (``torchrun``) each process scores every ``world``-th image of each
    set and the rows are merged on every process, sorted by (detector, set, index): the same table
    a single process writes, since every random draw depends on the image's key only."""
    rank, world = shard()
    frames, score_s, forward_s = [], 0.0, 0.0
    chosen = {k: v for k, v in _sets(benchmark).items() if sets is None or k in sets}
    for set_name, ds in tqdm(chosen.items(), desc=f"{benchmark.name}: {detector.name}", disable=rank != 0):
        index = subset_indices(len(ds), subset, seed, set_name)[rank::world]
        if not index:
            continue
        parts: dict[str, list[torch.Tensor]] = {}
        done = 0
        for x, y in make_loader(Subset(ds, index), batch_size, shuffle=False):
            keys = [(set_name, i) for i in index[done:done + len(x)]]
            done += len(x)
            start = time.perf_counter()
            if variants is None:
                out = {detector.name: detector.score(x, keys=keys)}
            else:
                kwargs = {"labels": labels(set_name, y, keys)} if labels is not None else {}
                out = {f"{detector.name}[{k}]": v for k, v in variants(x, keys=keys, **kwargs).items()}
            score_s += time.perf_counter() - start
            for k, v in out.items():
                parts.setdefault(k, []).append(v)
            start = time.perf_counter()
            with torch.no_grad():
                detector.model(x.to(detector.device))
            forward_s += time.perf_counter() - start
        frames += [_rows(benchmark.name, name, set_name, torch.cat(v), index) for name, v in parts.items()]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=SCORE_COLUMNS)
    frame, t = _gather(frame, {"score_s": score_s, "forward_s": forward_s})
    order = {name: i for i, name in enumerate(frame["detector"].drop_duplicates())}
    set_order = {name: i for i, name in enumerate(chosen)}
    frame = (frame.assign(_d=frame["detector"].map(order), _s=frame["set"].map(set_order))
             .sort_values(["_d", "_s", "index"], kind="stable").drop(columns=["_d", "_s"]).reset_index(drop=True))
    costs = pd.DataFrame([{"detector": detector.name, "fit_s": fit_s, "score_s": t["score_s"],
                           "cost_vs_forward": t["score_s"] * world / max(t["forward_s"], 1e-12),
                           "images": int(frame.groupby("detector").size().max()) if len(frame) else 0,
                           "processes": world}])
    return frame, costs


@torch.no_grad()
def class_means(model: nn.Module, dataset: Dataset, num_classes: int, batch_size: int = 512) -> torch.Tensor:
    """``[num_classes, C, H, W]``: the mean image of each class *predicted* by ``model`` over
    ``dataset`` (the naive localisation map's reference, |x − mean of its predicted class|),
    accumulated batch by batch in float64 (ImageNet's training set does not fit in memory).
    A class never predicted gets a zero image."""
    dev = next(model.parameters()).device
    sums, counts = None, torch.zeros(num_classes, dtype=torch.float64)
    with eval_mode(model):
        for x, _ in make_loader(dataset, batch_size, shuffle=False):
            pred = model(x.to(dev)).argmax(1).cpu()
            if sums is None:
                sums = torch.zeros(num_classes, *x.shape[1:], dtype=torch.float64)
            sums.index_add_(0, pred, x.double())
            counts += torch.bincount(pred, minlength=num_classes).double()
    return (sums / counts.clamp(min=1).view(-1, *[1] * (sums.dim() - 1))).float()
