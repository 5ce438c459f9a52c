"""Dense metrics of a dataset: pixel and component accumulators filled together
(:func:`dense_accumulators`, :func:`dense_metrics`) and tidy summaries with bootstrap CIs
(:func:`summarize_dense`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .bootstrap import SUMMARY_COLUMNS, _interval
from .components import COMPONENT_METRICS, SMIYC_TAUS, ComponentMetrics
from .pixel import PIXEL_METRICS, PixelMetrics

__all__ = ["DENSE_METRICS", "dense_accumulators", "dense_metrics", "summarize_dense"]

#: Dense metric names, in report order (all in [0, 1]).
DENSE_METRICS: tuple[str, ...] = PIXEL_METRICS + COMPONENT_METRICS


# --------------------------------------------------------------------------------------------
# convenience and tidy summaries
# --------------------------------------------------------------------------------------------
def _pairs(score_maps, labels):
    """``(score_map, label)`` pairs from two arrays ``[N, H, W]`` / ``[H, W]`` or two sequences."""
    if hasattr(score_maps, "shape") and hasattr(labels, "shape"):
        return [(score_maps, labels)]
    return list(zip(score_maps, labels, strict=True))


def dense_accumulators(
    score_maps,
    labels,
    *,
    bins: int | None = 2**16,
    image_bins: int = 2**12,
    threshold: float | str = "best_f1",
    min_size: int = 500,
    min_gt_size: int = 100,
    taus: Sequence[float] = SMIYC_TAUS,
    connectivity: int = 8,
    tau_rule: str = "paper",
) -> tuple[PixelMetrics, ComponentMetrics]:
    """Fill a :class:`PixelMetrics` and a :class:`ComponentMetrics` with the same images.

    ``score_maps`` / ``labels``: arrays ``[N, H, W]`` (or ``[H, W]``), or sequences of per-image
    or per-batch maps (numpy or torch). ``threshold="best_f1"`` (SMIYC) takes
    :meth:`PixelMetrics.best_f1_threshold` of these images, which needs a second pass over the
    maps: sequences are materialised. For data that does not fit in memory, run the pixel pass,
    take the threshold and run the component pass yourself.
    """
    pairs = _pairs(score_maps, labels)
    pm = PixelMetrics(bins, image_bins=image_bins)
    for s, lab in pairs:
        pm.update(s, lab)
    if isinstance(threshold, str):
        if threshold != "best_f1":
            raise ValueError("threshold must be a number or 'best_f1'")
        threshold = pm.best_f1_threshold()
    cm = ComponentMetrics(
        threshold,
        min_size=min_size,
        min_gt_size=min_gt_size,
        taus=taus,
        connectivity=connectivity,
        tau_rule=tau_rule,
    )
    for s, lab in pairs:
        cm.update(s, lab)
    return pm, cm


def dense_metrics(score_maps, labels, **kwargs) -> dict[str, float]:
    """``{"ap", "fpr95", "auroc", "siou", "ppv", "mean_f1"}`` of a dataset of score maps.

    Keyword arguments as :func:`dense_accumulators` (defaults: 2**16 bins, SMIYC best-F1 threshold,
    anomaly-track component sizes 500 / 100).
    """
    pm, cm = dense_accumulators(score_maps, labels, **kwargs)
    return {**pm.compute(), **cm.compute()}


def summarize_dense(
    results: Mapping,
    *,
    detector: str | None = None,
    groups: Mapping[str, Sequence[str]] | None = None,
    n_boot: int = 200,
    level: float = 0.95,
    seed: int = 0,
):
    """Dense metrics with bootstrap CIs, in :func:`summarize`'s tidy shape.

    ``results``: ``{set: (PixelMetrics | None, ComponentMetrics | None)}`` of one detector (name
    it with ``detector=``), or ``{detector: {set: (PixelMetrics, ComponentMetrics)}}``. Sets are
    e.g. ``near``, ``far`` and ``all`` (``all`` = the pooled images, e.g.
    ``PixelMetrics.merged(near, far)``, not a mean). ``groups``: optional unweighted means over
    sets, as in :func:`summarize` (value = mean of the sets' values; interval from the
    per-replicate means).

    Returns a DataFrame with columns ``detector, set, metric, value, lo, hi``: per detector and set
    the metrics ``ap, fpr95, auroc, siou, ppv, mean_f1`` (those whose accumulator is given), ready
    for :func:`to_metrics_json`. Images are resampled per set from the stream keyed on
    ``(seed, set name)``: the same images for every detector (given the same image order) and for
    the pixel and component metrics of a set. Undefined metrics (e.g. ``ppv`` without any
    predicted component) are NaN, which :func:`to_metrics_json` rejects.
    """
    import pandas as pd

    if detector is not None:
        nested = {detector: results}
    else:
        if not all(isinstance(v, Mapping) for v in results.values()):
            raise ValueError("pass detector=... for a {set: (PixelMetrics, ComponentMetrics)} mapping")
        nested = results
    groups = dict(groups or {})
    rows = []
    for det, per_set in nested.items():
        values: dict[str, dict[str, float]] = {}
        reps: dict[str, dict[str, np.ndarray]] = {}
        for set_name, pair in per_set.items():
            pm, cm = pair
            if pm is not None and cm is not None and pm.n_images != cm.n_images:
                raise ValueError(
                    f"{det}/{set_name}: pixel and component accumulators hold different numbers of images "
                    f"({pm.n_images} vs {cm.n_images})"
                )
            values[set_name], reps[set_name] = {}, {}
            for acc in (pm, cm):
                if acc is None:
                    continue
                values[set_name].update(acc.compute())
                reps[set_name].update(acc.bootstrap_samples(n_boot, seed, key=str(set_name)))
            for m in DENSE_METRICS:
                if m in values[set_name]:
                    rows.append((det, set_name, m, values[set_name][m], *_interval(reps[set_name][m], level)))
        for g, members in groups.items():
            if g in per_set:
                raise ValueError(f"group name {g!r} collides with a set name")
            absent = [s for s in members if s not in per_set]
            if absent:
                raise ValueError(f"detector {det!r}: group {g!r} lists sets without results: {absent}")
            if not members:
                continue
            for m in DENSE_METRICS:
                if all(m in values[s] for s in members):
                    value = float(np.mean([values[s][m] for s in members]))
                    mean_reps = np.mean([reps[s][m] for s in members], axis=0)
                    rows.append((det, g, m, value, *_interval(mean_reps, level)))
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
