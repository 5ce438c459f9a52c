"""Paired tests between two detectors scored on the same samples, and the multiple-comparison
correction of a table of them.

:func:`delong_test`: DeLong, DeLong & Clarke-Pearson (Biometrics 1988): the AUROC difference of two
detectors on the same ID and OOD samples, its standard error from the placement values (the
U-statistic's structural components) and a two-sided normal p-value. It also tests an unweighted
mean of AUROCs over several OOD sets scored against one ID set (OpenOOD's near/far averages): the
ID samples are shared by every set, so their placements are averaged over the sets before the
variance is taken; the OOD sets are independent samples, so their variances add.

:func:`bootstrap_p`: a two-sided normal p-value from paired bootstrap replicates of a difference
(for metrics DeLong does not cover, e.g. dense pixel AP with scenes resampled).

:func:`holm`: Holm's step-down adjustment (Holm 1979), which controls the family-wise error rate
under any dependence between the tests, as holds between sets and their averages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

__all__ = ["bootstrap_p", "delong_placements", "delong_test", "holm", "mean_difference"]


def delong_placements(id_scores, ood_scores) -> tuple[float, np.ndarray, np.ndarray]:
    """``(auroc, v_ood, v_id)``: the AUROC (OOD positive, ties count one half) and the placement
    values ``v_ood[i]`` = the fraction of ID scores below OOD sample ``i`` and ``v_id[j]`` = the
    fraction of OOD scores above ID sample ``j`` (ties one half each); AUROC = mean of either.
    From mid-ranks, O((n + m) log(n + m)) instead of the n·m comparisons."""
    ids = np.asarray(id_scores, dtype=np.float64).ravel()
    oods = np.asarray(ood_scores, dtype=np.float64).ravel()
    if ids.size == 0 or oods.size == 0:
        raise ValueError("DeLong needs ID and OOD scores")
    ranks = stats.rankdata(np.concatenate([oods, ids]))
    # rank among all minus rank among its own kind = how many of the other kind lie below (ties 1/2)
    v_ood = (ranks[: oods.size] - stats.rankdata(oods)) / ids.size
    v_id = 1.0 - (ranks[oods.size :] - stats.rankdata(ids)) / oods.size
    return float(v_ood.mean()), v_ood, v_id


def delong_test(id_a, oods_a: Mapping[str, np.ndarray], id_b, oods_b: Mapping[str, np.ndarray],
                sets: Sequence[str] | None = None) -> tuple[float, float, float]:
    """``(diff, se, p)`` of ``mean over sets of AUROC(a) − AUROC(b)``; ``a`` and ``b`` scored the
    same samples in the same order (ID: ``id_a``/``id_b``, OOD set ``s``: ``oods_a[s]``/``oods_b[s]``).
    ``sets``: the sets averaged (default all). ``p`` is two-sided; 1 where the difference is exactly
    degenerate (identical rankings)."""
    sets = list(oods_a) if sets is None else list(sets)
    if not sets:
        raise ValueError("no OOD set to compare on")
    k = len(sets)
    diff, var_ood, id_parts = 0.0, 0.0, []
    for s in sets:
        if len(oods_a[s]) != len(oods_b[s]) or len(id_a) != len(id_b):
            raise ValueError(f"set {s!r}: a paired test needs the same samples for both detectors")
        auc_a, ood_a, ida = delong_placements(id_a, oods_a[s])
        auc_b, ood_b, idb = delong_placements(id_b, oods_b[s])
        diff += (auc_a - auc_b) / k
        d = ood_a - ood_b
        var_ood += (d.var(ddof=1) if d.size > 1 else 0.0) / d.size / k**2
        id_parts.append(ida - idb)
    shared = np.mean(id_parts, axis=0)  # each ID sample's contribution to the averaged difference
    var = var_ood + (shared.var(ddof=1) if shared.size > 1 else 0.0) / shared.size
    se = float(np.sqrt(var))
    if se == 0.0:
        return float(diff), 0.0, 1.0 if diff == 0 else 0.0
    return float(diff), se, float(2.0 * stats.norm.sf(abs(diff) / se))


def mean_difference(values_a: Mapping[str, Mapping[str, float]], reps_a: Mapping[str, Mapping[str, np.ndarray]],
                    values_b: Mapping[str, Mapping[str, float]], reps_b: Mapping[str, Mapping[str, np.ndarray]],
                    members: Sequence[str], metric: str) -> tuple[float, float, np.ndarray]:
    """``(a, b, replicates of a − b)`` for the unweighted mean of ``metric`` over the OOD sets
    ``members`` (one set, or a near/far group), from each side's values and paired bootstrap
    replicates per set (``{set: {metric: ...}}``, drawn with the same resamples); the percentile
    interval of the replicates is the difference's interval. Between two detectors of one run or
    one detector in two runs alike."""
    a = float(np.mean([values_a[s][metric] for s in members]))
    b = float(np.mean([values_b[s][metric] for s in members]))
    return a, b, np.mean([reps_a[s][metric] - reps_b[s][metric] for s in members], axis=0)


def bootstrap_p(diff: float, replicates) -> float:
    """Two-sided p-value of ``diff`` against 0 with the standard error of its bootstrap
    ``replicates`` (normal approximation; NaN replicates dropped)."""
    reps = np.asarray(replicates, dtype=np.float64)
    reps = reps[np.isfinite(reps)]
    se = float(reps.std(ddof=1)) if reps.size > 1 else 0.0
    if se == 0.0:
        return 1.0 if diff == 0 else 0.0
    return float(2.0 * stats.norm.sf(abs(diff) / se))


def holm(p_values) -> np.ndarray:
    """Holm-adjusted p-values, in the input order: the ``i``-th smallest p is multiplied by
    ``m − i + 1`` (i from 1), made non-decreasing in that order and capped at 1. Reject a
    hypothesis at family-wise level α where its adjusted p ≤ α."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.size == 0:
        return p.copy()
    if np.isnan(p).any():
        raise ValueError("holm: NaN p-value")
    order = np.argsort(p, kind="stable")
    scaled = (p.size - np.arange(p.size)) * p[order]
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted
