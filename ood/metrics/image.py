"""Image-level OOD metrics (numpy only): AUROC, FPR@95TPR, AUPR-in/out and the ROC curve.

Convention, used everywhere in oodstudy: **OOD is the positive class** and every detector returns
a score where **higher = more OOD**. A sample is predicted OOD at threshold ``t`` when
``score >= t``.

Metrics (all in [0, 1]):

``auroc``
    Area under the ROC curve, OOD positive. Ties count one half (Mann-Whitney U with average
    ranks), exactly as ``sklearn.metrics.roc_auc_score``.
``fpr95``
    FPR at 95 % TPR, OpenOOD v1.5 convention: the fraction of ID samples scored at or above the
    threshold at which 95 % of OOD samples are detected. See :func:`fpr_at_tpr` for the precise
    operating point.
``aupr_in``
    Average precision with ID as the positive class (scores negated), as
    ``sklearn.metrics.average_precision_score`` (step-wise sum, no interpolation).
``aupr_out``
    Average precision with OOD as the positive class.

Implementation: all four metrics are computed from per-value counts on the sorted grid of distinct
scores. A bootstrap resample only contains values of the original sample, so the same code
evaluates many resamples at once as a ``(n_boot, n_values)`` count matrix (see
:mod:`ood.metrics.bootstrap`) — exact with ties, and fast (6000 ID + 1000 OOD, 200 resamples, all
four metrics: a few tens of milliseconds). The dense pixel metrics (:mod:`ood.metrics.pixel`)
use the same count-based core.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "METRICS",
    "HIGHER_IS_BETTER",
    "curve_points",
    "auroc",
    "fpr_at_tpr",
    "aupr_in",
    "aupr_out",
    "roc_curve",
    "image_metrics",
]

#: Image metric names, in report order.
METRICS: tuple[str, ...] = ("auroc", "fpr95", "aupr_in", "aupr_out")
#: Direction of each metric (``False``: lower is better).
HIGHER_IS_BETTER: dict[str, bool] = {
    "auroc": True,
    "fpr95": False,
    "aupr_in": True,
    "aupr_out": True,
    # dense metrics (ood.metrics.pixel, ood.metrics.components)
    "ap": True,
    "siou": True,
    "ppv": True,
    "mean_f1": True,
}


# --------------------------------------------------------------------------------------------
# input handling and the count-based core
# --------------------------------------------------------------------------------------------
def _as_scores(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError(f"{name}: no scores")
    if np.isnan(a).any():
        raise ValueError(f"{name}: scores contain NaN")
    return a


def _grid(id_scores: np.ndarray, ood_scores: np.ndarray):
    """Distinct values (ascending) and each sample's position on that grid."""
    grid, inverse = np.unique(np.concatenate([id_scores, ood_scores]), return_inverse=True)
    inverse = inverse.ravel()
    return grid, inverse[: id_scores.size], inverse[id_scores.size :]


def _counts(pos: np.ndarray, n_values: int, index: np.ndarray | None = None) -> np.ndarray:
    """Count matrix ``(B, n_values)``; ``index`` ``(B, m)`` selects samples of each replicate."""
    if index is None:
        return np.bincount(pos, minlength=n_values)[None, :].astype(np.float64)
    n_rep = index.shape[0]
    flat = (np.arange(n_rep)[:, None] * n_values + pos[index]).ravel()
    return np.bincount(flat, minlength=n_rep * n_values).reshape(n_rep, n_values).astype(np.float64)


def _ap(pos: np.ndarray, tps: np.ndarray, fps: np.ndarray) -> np.ndarray:
    """Average precision from counts ``pos`` ordered from most to least 'positive' score and their
    running sums ``tps`` (positives) and ``fps`` (negatives) in the same order (rows = replicates)."""
    n_pos = tps[:, -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tps + fps > 0, tps / (tps + fps), 1.0)
    # At most 1 exactly; the float sum of the recall steps can round above it (twenty steps of 1/20: 1 + 2e-16)
    return np.minimum(np.sum(pos / n_pos * precision, axis=1), 1.0)


def _metrics_from_counts(c_id: np.ndarray, c_ood: np.ndarray, tpr: float = 0.95) -> dict[str, np.ndarray]:
    """All image metrics for each row of the ``(B, V)`` count matrices (grid ascending)."""
    n_id = c_id.sum(axis=1)
    n_ood = c_ood.sum(axis=1)
    # Running sums once, ascending; the descending ones follow exactly (integer counts in float64).
    cum_id = np.cumsum(c_id, axis=1)
    cum_ood = np.cumsum(c_ood, axis=1)
    # AUROC = P(ood > id) + 1/2 P(ood == id)  (Mann-Whitney U / (n_id * n_ood))
    id_below = cum_id - c_id
    u = np.sum(c_ood * (id_below + 0.5 * c_id), axis=1)
    out = {"auroc": u / (n_id * n_ood)}

    # descending order: thresholds from the highest score down
    d_id = c_id[:, ::-1]
    d_ood = c_ood[:, ::-1]
    tps = (n_ood[:, None] - cum_ood + c_ood)[:, ::-1]  # OOD samples at or above each threshold
    fps = (n_id[:, None] - cum_id + c_id)[:, ::-1]
    reached = tps / n_ood[:, None] >= tpr  # same float comparison as on sklearn's roc_curve
    first = np.argmax(reached, axis=1)
    fpr = fps[np.arange(len(first)), first] / n_id
    out["fpr95"] = np.where(tpr <= 0, 0.0, fpr)  # tpr <= 0: the (0, 0) point at threshold +inf

    out["aupr_out"] = _ap(d_ood, tps, fps)
    out["aupr_in"] = _ap(c_id, cum_id, cum_ood)  # ID positive, scores negated: ascending grid
    return out


# --------------------------------------------------------------------------------------------
# point metrics
# --------------------------------------------------------------------------------------------
def _point(id_scores, ood_scores, tpr: float = 0.95) -> dict[str, float]:
    ids = _as_scores(id_scores, "id_scores")
    oods = _as_scores(ood_scores, "ood_scores")
    grid, pid, pood = _grid(ids, oods)
    m = _metrics_from_counts(_counts(pid, grid.size), _counts(pood, grid.size), tpr)
    return {k: float(v[0]) for k, v in m.items()}


def auroc(id_scores, ood_scores) -> float:
    """Area under the ROC curve with OOD as the positive class (higher score = more OOD).

    Equals the Mann-Whitney U statistic of the OOD scores divided by ``n_id * n_ood``: the
    probability that a random OOD sample scores higher than a random ID sample, ties counting
    one half (average ranks), identical to ``sklearn.metrics.roc_auc_score(is_ood, score)``.
    """
    return _point(id_scores, ood_scores)["auroc"]


def fpr_at_tpr(id_scores, ood_scores, tpr: float = 0.95) -> float:
    """False-positive rate at a true-positive rate of ``tpr`` (OpenOOD v1.5 convention).

    OOD is the positive class and a sample is flagged OOD when ``score >= t``. Let ``t*`` be the
    largest threshold whose TPR, ``#{ood >= t*} / n_ood``, is at least ``tpr`` (the first
    operating point, walking the ROC curve from the strictest threshold, that detects at least
    ``tpr`` of the OOD samples; it is always one of the OOD scores). The result is the fraction
    of ID samples flagged at that threshold, ``#{id >= t*} / n_id``. ``tpr <= 0`` gives 0 (the
    threshold ``+inf``).

    This equals ``fpr[np.argmax(tpr_curve >= tpr)]`` on
    ``sklearn.metrics.roc_curve(is_ood, score, drop_intermediate=False)``. OpenOOD v1.5 and
    pytorch-ood evaluate the same expression on the *default* ``roc_curve``
    (``drop_intermediate=True``); the two agree whenever no ID score ties an OOD score. With such
    ties the default curve may have dropped the exact operating point as collinear and then
    reports the FPR of a later, looser point; we always report the exact one.
    """
    return _point(id_scores, ood_scores, tpr)["fpr95"]


def aupr_in(id_scores, ood_scores) -> float:
    """Average precision with **ID** as the positive class and the scores negated.

    ``sklearn.metrics.average_precision_score(~is_ood, -score)``: the step-wise sum
    ``sum_k (R_k - R_{k-1}) P_k`` over distinct thresholds, without interpolation.
    """
    return _point(id_scores, ood_scores)["aupr_in"]


def aupr_out(id_scores, ood_scores) -> float:
    """Average precision with **OOD** as the positive class.

    ``sklearn.metrics.average_precision_score(is_ood, score)``: the step-wise sum
    ``sum_k (R_k - R_{k-1}) P_k`` over distinct thresholds, without interpolation.
    """
    return _point(id_scores, ood_scores)["aupr_out"]


def image_metrics(id_scores, ood_scores) -> dict[str, float]:
    """``{"auroc", "fpr95", "aupr_in", "aupr_out"}`` for one ID/OOD pair (plain floats in [0, 1])."""
    m = _point(id_scores, ood_scores)
    return {k: m[k] for k in METRICS}


def roc_curve(id_scores, ood_scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve, OOD positive: ``(fpr, tpr, thresholds)`` with every distinct threshold.

    Thresholds are decreasing; the first point is ``(0, 0)`` at ``+inf`` and the last ``(1, 1)``,
    as ``sklearn.metrics.roc_curve(is_ood, score, drop_intermediate=False)``.
    """
    ids = _as_scores(id_scores, "id_scores")
    oods = _as_scores(ood_scores, "ood_scores")
    grid, pid, pood = _grid(ids, oods)
    fps = np.cumsum(np.bincount(pid, minlength=grid.size)[::-1])
    tps = np.cumsum(np.bincount(pood, minlength=grid.size)[::-1])
    fpr = np.r_[0.0, fps / ids.size]
    tpr = np.r_[0.0, tps / oods.size]
    thresholds = np.r_[np.inf, grid[::-1]]
    return fpr, tpr, thresholds


def curve_points(id_scores, ood_scores, points: int = 101) -> dict[str, np.ndarray]:
    """ROC and precision–recall curves sampled on a fixed grid (for plots and DVC plot files):
    ``fpr`` (the grid) with ``tpr`` = the best TPR at FPR <= each grid value, and ``recall`` (the
    grid) with ``precision`` = that of the first threshold reaching each recall (step-wise, as AP)."""
    ids = _as_scores(id_scores, "id_scores")
    oods = _as_scores(ood_scores, "ood_scores")
    fpr, tpr, _ = roc_curve(ids, oods)
    grid = np.linspace(0.0, 1.0, points)
    tpr_at = tpr[np.searchsorted(fpr, grid, side="right") - 1]  # fpr is non-decreasing, tpr too
    tp, fp = tpr[1:] * oods.size, fpr[1:] * ids.size
    # recall 0 reads the first threshold that detects any OOD sample (precision is undefined before)
    at = np.minimum(np.searchsorted(tpr[1:], np.maximum(grid, 1.0 / oods.size), side="left"), tp.size - 1)
    precision = tp[at] / np.maximum(tp[at] + fp[at], 1.0)
    return {"fpr": grid, "tpr": tpr_at, "recall": grid, "precision": precision}
