"""Image-level OOD metrics and bootstrap confidence intervals (numpy only).

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
evaluates many resamples at once as a ``(n_boot, n_values)`` count matrix — exact with ties, and
fast (6000 ID + 1000 OOD, 200 resamples, all four metrics: a few tens of milliseconds).

Bootstrap: ID and OOD samples are resampled **separately** with replacement (stratified, sizes
kept) and intervals are percentile intervals. In :func:`bootstrap_samples` / :func:`summarize` the
ID resample of replicate ``b`` is shared by all OOD sets (they are all scored against the same ID
test set) and each OOD set is resampled from its own random stream keyed on ``(seed, set name)``;
the streams do not depend on the detector, so replicates are paired across detectors.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "METRICS",
    "HIGHER_IS_BETTER",
    "auroc",
    "fpr_at_tpr",
    "aupr_in",
    "aupr_out",
    "roc_curve",
    "image_metrics",
    "bootstrap_samples",
    "bootstrap_ci",
    "percentile_interval",
    "summarize",
    "to_metrics_json",
]

#: Image metric names, in report order.
METRICS: tuple[str, ...] = ("auroc", "fpr95", "aupr_in", "aupr_out")
#: Direction of each metric (``False``: lower is better).
HIGHER_IS_BETTER: dict[str, bool] = {"auroc": True, "fpr95": False, "aupr_in": True, "aupr_out": True}

# Largest count matrix (elements) built at once; bigger bootstraps are processed in chunks.
_MAX_CELLS = 8_000_000


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


def _ap_desc(pos_desc: np.ndarray, neg_desc: np.ndarray) -> np.ndarray:
    """Average precision; counts ordered from most to least 'positive' score (rows = replicates)."""
    tps = np.cumsum(pos_desc, axis=1)
    fps = np.cumsum(neg_desc, axis=1)
    n_pos = tps[:, -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tps + fps > 0, tps / (tps + fps), 1.0)
    return np.sum(pos_desc / n_pos * precision, axis=1)


def _metrics_from_counts(c_id: np.ndarray, c_ood: np.ndarray, tpr: float = 0.95) -> dict[str, np.ndarray]:
    """All image metrics for each row of the ``(B, V)`` count matrices (grid ascending)."""
    n_id = c_id.sum(axis=1)
    n_ood = c_ood.sum(axis=1)
    # AUROC = P(ood > id) + 1/2 P(ood == id)  (Mann-Whitney U / (n_id * n_ood))
    id_below = np.cumsum(c_id, axis=1) - c_id
    u = np.sum(c_ood * (id_below + 0.5 * c_id), axis=1)
    out = {"auroc": u / (n_id * n_ood)}

    # descending order: thresholds from the highest score down
    d_id = c_id[:, ::-1]
    d_ood = c_ood[:, ::-1]
    tps = np.cumsum(d_ood, axis=1)
    fps = np.cumsum(d_id, axis=1)
    reached = tps / n_ood[:, None] >= tpr  # same float comparison as on sklearn's roc_curve
    first = np.argmax(reached, axis=1)
    fpr = fps[np.arange(len(first)), first] / n_id
    out["fpr95"] = np.where(tpr <= 0, 0.0, fpr)  # tpr <= 0: the (0, 0) point at threshold +inf

    out["aupr_out"] = _ap_desc(d_ood, d_id)
    out["aupr_in"] = _ap_desc(c_id, c_ood)  # ID positive, scores negated: ascending grid
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


# --------------------------------------------------------------------------------------------
# bootstrap
# --------------------------------------------------------------------------------------------
def _stream(seed: int, key: str) -> np.random.Generator:
    """Random stream keyed on (seed, key): independent of which other sets/detectors exist."""
    return np.random.default_rng([int(seed), zlib.crc32(key.encode("utf-8"))])


def _resample(rng: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    return rng.integers(0, n, size=(n_boot, n))


def _boot_pair(ids, oods, id_index, ood_index, tpr=0.95) -> dict[str, np.ndarray]:
    grid, pid, pood = _grid(ids, oods)
    n_boot = id_index.shape[0]
    step = max(1, _MAX_CELLS // max(grid.size, 1))
    parts = []
    for s in range(0, n_boot, step):
        sl = slice(s, s + step)
        parts.append(
            _metrics_from_counts(_counts(pid, grid.size, id_index[sl]), _counts(pood, grid.size, ood_index[sl]), tpr)
        )
    return {k: np.concatenate([p[k] for p in parts]) for k in METRICS}


def bootstrap_samples(
    id_scores,
    ood_sets: Mapping[str, Sequence[float] | np.ndarray],
    *,
    n_boot: int = 200,
    seed: int = 0,
) -> dict[str, dict[str, np.ndarray]]:
    """Bootstrap replicates of every metric: ``{set: {metric: array of shape (n_boot,)}}``.

    Stratified resampling with replacement: replicate ``b`` draws ``n_id`` ID samples (one draw,
    shared by all OOD sets, since all are scored against the same ID set) and, independently,
    ``n_ood`` samples of each OOD set. The ID stream is keyed on ``(seed, "id")`` and each OOD
    set's on ``(seed, set name)``, so for a given seed the resampled indices depend neither on the
    detector nor on the other sets: replicates are paired across detectors (given scores in the
    same sample order), and a group average over sets can be bootstrapped by averaging the sets'
    replicate ``b`` for each ``b`` (see :func:`summarize`).
    """
    if n_boot < 1:
        raise ValueError("n_boot must be >= 1")
    ids = _as_scores(id_scores, "id_scores")
    id_index = _resample(_stream(seed, "id"), ids.size, n_boot)
    out = {}
    for name, scores in ood_sets.items():
        if name == "id":
            raise ValueError("an OOD set cannot be called 'id'")
        oods = _as_scores(scores, f"ood set {name!r}")
        ood_index = _resample(_stream(seed, str(name)), oods.size, n_boot)
        out[name] = _boot_pair(ids, oods, id_index, ood_index)
    return out


def percentile_interval(samples, level: float = 0.95) -> tuple[float, float]:
    """Two-sided percentile interval ``(lo, hi)`` of bootstrap replicates at confidence ``level``."""
    if not 0 < level < 1:
        raise ValueError("level must be in (0, 1)")
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(np.asarray(samples, dtype=np.float64), [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def bootstrap_ci(
    id_scores,
    ood_scores,
    *,
    n_boot: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap confidence interval of each image metric: ``{metric: (lo, hi)}``.

    ID and OOD scores are resampled separately with replacement (sizes kept), ``n_boot`` times;
    the same ``seed`` gives the same interval. See :func:`bootstrap_samples`.
    """
    reps = bootstrap_samples(id_scores, {"ood": ood_scores}, n_boot=n_boot, seed=seed)["ood"]
    return {k: percentile_interval(reps[k], level) for k in METRICS}


# --------------------------------------------------------------------------------------------
# tidy summaries
# --------------------------------------------------------------------------------------------
SUMMARY_COLUMNS = ["detector", "set", "metric", "value", "lo", "hi"]


def summarize(
    scores_df,
    groups: Mapping[str, Sequence[str]] | None = None,
    *,
    n_boot: int = 200,
    level: float = 0.95,
    seed: int = 0,
):
    """Metrics with bootstrap CIs for every detector and OOD set, plus group averages.

    ``scores_df``: tidy per-sample scores of **one** benchmark with columns ``detector, set,
    index, score, is_ood``; ID rows have ``set == "id"`` and ``is_ood`` False, each OOD set its
    own name. ``groups``: e.g. ``{"near": [...], "far": [...]}``.

    Returns a tidy DataFrame with columns ``detector, set, metric, value, lo, hi``: one row per
    (detector, OOD set, metric), then per group. A group's ``value`` is the **unweighted mean**
    of its sets' values; its interval is the percentile interval of the per-replicate means
    (replicate ``b`` of every set shares the ID resample ``b``; see :func:`bootstrap_samples`).
    Samples are ordered by ``index`` within each (detector, set) before resampling, so the same
    seed draws the same samples for every detector.
    """
    import pandas as pd

    groups = dict(groups or {})
    required = {"detector", "set", "index", "score", "is_ood"}
    missing = required - set(scores_df.columns)
    if missing:
        raise ValueError(f"scores_df lacks columns {sorted(missing)}")
    if "benchmark" in scores_df.columns and scores_df["benchmark"].nunique() > 1:
        raise ValueError("summarize one benchmark at a time (scores_df holds several)")
    is_id = scores_df["set"].astype(str) == "id"
    if (scores_df["is_ood"].astype(bool) == is_id).any():
        raise ValueError("is_ood must be False exactly for the rows of set 'id'")

    rows = []
    for detector, ddf in scores_df.groupby("detector", sort=False):
        ddf = ddf.sort_values(["set", "index"], kind="stable")
        id_scores = ddf.loc[ddf["set"] == "id", "score"].to_numpy(np.float64)
        if id_scores.size == 0:
            raise ValueError(f"detector {detector!r}: no ID scores")
        set_names = [s for s in pd.unique(scores_df.loc[scores_df["detector"] == detector, "set"]) if s != "id"]
        ood = {s: ddf.loc[ddf["set"] == s, "score"].to_numpy(np.float64) for s in set_names}
        for g, members in groups.items():
            if g in ood or g == "id":
                raise ValueError(f"group name {g!r} collides with a set name")
            absent = [s for s in members if s not in ood]
            if absent:
                raise ValueError(f"detector {detector!r}: group {g!r} lists sets without scores: {absent}")
        reps = bootstrap_samples(id_scores, ood, n_boot=n_boot, seed=seed)
        values = {s: image_metrics(id_scores, ood[s]) for s in set_names}
        for s in set_names:
            for m in METRICS:
                rows.append((detector, s, m, values[s][m], *percentile_interval(reps[s][m], level)))
        for g, members in groups.items():
            if not members:
                continue
            for m in METRICS:
                value = float(np.mean([values[s][m] for s in members]))
                mean_reps = np.mean([reps[s][m] for s in members], axis=0)
                rows.append((detector, g, m, value, *percentile_interval(mean_reps, level)))
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def to_metrics_json(summary_df) -> dict[str, dict[str, dict[str, float]]]:
    """``{detector: {set: {metric: value}}}`` from :func:`summarize`'s output.

    Plain python floats rounded to 6 decimals, checked to lie in [0, 1]; the lead nests this
    under ``{benchmark: {"model": ..., "detectors": ...}}`` in ``reports/metrics.json``.
    """
    out: dict[str, dict[str, dict[str, float]]] = {}
    for det, s, m, v in summary_df[["detector", "set", "metric", "value"]].itertuples(index=False):
        v = float(v)
        if not (0.0 <= v <= 1.0):  # also rejects NaN
            raise ValueError(f"{det}/{s}/{m} = {v} is not in [0, 1]")
        out.setdefault(str(det), {}).setdefault(str(s), {})[str(m)] = round(v, 6)
    return out
