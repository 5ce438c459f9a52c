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

Dense (per-pixel) metrics — pixel ``ap``/``fpr95``/``auroc`` and the SegmentMeIfYouCan component
metrics ``siou``/``ppv``/``mean_f1`` — are in the second half of this module: :class:`PixelMetrics`,
:class:`ComponentMetrics`, :func:`dense_metrics`, :func:`summarize_dense`. They use the same
convention (anomaly = OOD = positive, higher = more OOD) and the same count-based core.
"""

from __future__ import annotations

import math
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
    # dense
    "DENSE_METRICS",
    "PIXEL_METRICS",
    "COMPONENT_METRICS",
    "VOID_LABEL",
    "SMIYC_TAUS",
    "SMIYC_TRACKS",
    "PixelMetrics",
    "ComponentMetrics",
    "dense_accumulators",
    "dense_metrics",
    "summarize_dense",
]

#: Image metric names, in report order.
METRICS: tuple[str, ...] = ("auroc", "fpr95", "aupr_in", "aupr_out")
#: Direction of each metric (``False``: lower is better).
HIGHER_IS_BETTER: dict[str, bool] = {
    "auroc": True,
    "fpr95": False,
    "aupr_in": True,
    "aupr_out": True,
    # dense metrics (see the second half of the module)
    "ap": True,
    "siou": True,
    "ppv": True,
    "mean_f1": True,
}

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


# ============================================================================================
# dense (per-pixel) metrics
# ============================================================================================
#
# Labels follow SegmentMeIfYouCan (SMIYC): per pixel 0 = inlier, 1 = anomaly (OOD, the positive
# class), 255 = void, ignored by every dense metric. Score maps: higher = more OOD.
#
# Pixel metrics are pooled over all valid pixels of a dataset (not averaged over images), as in
# Fishyscapes and SMIYC: ``ap`` = average precision with the anomaly positive (the image
# ``aupr_out``), ``fpr95`` and ``auroc`` with exactly the image conventions above.
#
# How SMIYC's benchmark code bins (road-anomaly-benchmark, metrics/pixel_classification.py and
# pixel_classification_curves.py), and what we do the same or differently:
#   * Same: void pixels are dropped; AP is the step-wise sum sum_k (R_k - R_{k-1}) P_k (they changed
#     it to match sklearn), FPR95 is the FPR at the first operating point with TPR >= 0.95 (their
#     ``searchsorted(tpr, 0.95)``), AUROC is the trapezoidal area of the ROC of the binned counts,
#     which equals Mann-Whitney with ties counting one half on the binned scores (our ``auroc``).
#   * Different: their default ('PixBinaryClass') quantises every frame on its *own* bin edges — 768
#     bins at quantiles of that frame's anomaly and inlier scores, plus 0 and 1 — and pools frames
#     by sorting all frames' edges; their other config uses 4096 uniform bins on [0, 1], which
#     assumes probabilities. A frame's pixels are thereby moved to their bin's edge, which can
#     misorder them against a dense cluster of another frame's scores inside that bin, with no
#     simple bound on the effect. We quantise every pixel of the dataset on **one** lattice of
#     power-of-two width that adapts to the data (no score range needed in advance, unbounded
#     scores fine), so the binned metrics are exactly the metrics of the quantised scores, the
#     result does not depend on the order in which images arrive, and a rigorous error bound can be
#     read off the histogram (:meth:`PixelMetrics.error_bound`). ``bins=None`` keeps every score
#     (exact, equal to sklearn).
#
# Component metrics follow the SMIYC paper (Chan et al., NeurIPS 2021 Datasets & Benchmarks,
# Sec. 4) and road-anomaly-benchmark metrics/instance_segmentation.py; the differences are listed
# in :class:`ComponentMetrics`.

#: Dense metric names, in report order (all in [0, 1]).
PIXEL_METRICS: tuple[str, ...] = ("ap", "fpr95", "auroc")
COMPONENT_METRICS: tuple[str, ...] = ("siou", "ppv", "mean_f1")
DENSE_METRICS: tuple[str, ...] = PIXEL_METRICS + COMPONENT_METRICS
#: Void label (SMIYC, Cityscapes' ignore index); equals ``ood.data.benchmark.IGNORE_INDEX``.
VOID_LABEL = 255
#: sIoU/PPV thresholds tau of the component F1: 0.25, 0.30, ..., 0.75 (SMIYC: ``np.linspace(0.25,
#: 0.75, 11)``). Written as k/20, the correctly rounded value, so that a component whose ratio is
#: exactly tau compares equal to it (linspace gives e.g. 0.30000000000000004).
SMIYC_TAUS: tuple[float, ...] = tuple(k / 20 for k in range(5, 16))
#: Component-size thresholds of the two SMIYC tracks (road-anomaly-benchmark ``MetricSegment``
#: configs 'SegEval-AnomalyTrack' / 'SegEval-ObstacleTrack': ``thresh_segsize`` = ``min_size``,
#: ``thresh_instsize`` = ``min_gt_size``). They are in pixels at the datasets' full resolution.
SMIYC_TRACKS: dict[str, dict[str, int]] = {
    "anomaly": {"min_size": 500, "min_gt_size": 100},
    "obstacle": {"min_size": 50, "min_gt_size": 10},
}


def _to_numpy(x) -> np.ndarray:
    """numpy view of a numpy array or torch tensor (duck-typed: this module does not import torch)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu()
        if x.is_floating_point():
            x = x.double()  # float16/bfloat16 have no (or no exact) numpy counterpart
        return x.numpy()
    return np.asarray(x)


def _dense_images(score_map, label):
    """Yield ``(scores float64 [H, W], label [H, W])`` per image of a ``[H, W]`` or ``[N, H, W]`` pair."""
    s = _to_numpy(score_map)
    lab = _to_numpy(label)
    if s.shape != lab.shape:
        raise ValueError(f"score map shape {s.shape} differs from label shape {lab.shape}")
    if s.ndim == 2:
        s, lab = s[None], lab[None]
    elif s.ndim != 3:
        raise ValueError(f"expected [H, W] or [N, H, W] maps, got shape {s.shape}")
    for i in range(s.shape[0]):
        yield np.asarray(s[i], dtype=np.float64), lab[i]


def _label_masks(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(inlier, anomaly)`` boolean masks; raises on labels other than 0, 1 and 255."""
    inl = lab == 0
    ano = lab == 1
    n_void = np.count_nonzero(lab == VOID_LABEL) if lab.dtype != np.bool_ else 0
    if np.count_nonzero(inl) + np.count_nonzero(ano) + n_void != lab.size:
        bad = np.setdiff1d(np.unique(lab), [0, 1, VOID_LABEL])[:5]
        raise ValueError(f"dense labels must be 0 (inlier), 1 (anomaly) or {VOID_LABEL} (void); found {bad}")
    return inl, ano


def _interval(samples, level: float) -> tuple[float, float]:
    """Percentile interval of the finite replicates (NaN where a resample leaves a metric undefined)."""
    r = np.asarray(samples, dtype=np.float64)
    r = r[~np.isnan(r)]
    if r.size == 0:
        return float("nan"), float("nan")
    return percentile_interval(r, level)


def _multiplicities(n: int, n_boot: int, seed: int, key: str) -> np.ndarray:
    """``(n_boot, n)`` how often each image is drawn in each resample (stream keyed on (seed, key))."""
    if n_boot < 1:
        raise ValueError("n_boot must be >= 1")
    if n < 1:
        raise ValueError("no images to resample")
    index = _resample(_stream(seed, key), n, n_boot)
    flat = (np.arange(n_boot)[:, None] * n + index).ravel()
    return np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)


def _pixel_metrics_from_counts(c_id: np.ndarray, c_ood: np.ndarray, tpr: float) -> dict[str, np.ndarray]:
    """Pixel metrics of each row of ``(B, V)`` ascending count matrices; NaN where a class is empty."""
    with np.errstate(invalid="ignore", divide="ignore"):
        m = _metrics_from_counts(c_id, c_ood, tpr)
    empty = (c_id.sum(axis=1) == 0) | (c_ood.sum(axis=1) == 0)
    out = {"ap": m["aupr_out"], "fpr95": m["fpr95"], "auroc": m["auroc"]}
    return {k: np.where(empty, np.nan, v.astype(np.float64)) for k, v in out.items()}


# --------------------------------------------------------------------------------------------
# pixel metrics
# --------------------------------------------------------------------------------------------
_MANTISSA = 53  # float64 significand bits: no lattice finer than the scores' own spacing


def _min_exponent(maxabs: float) -> int:
    """Smallest lattice exponent for scores up to ``maxabs``: |score / 2**e| < 2**53 (fits int64)."""
    return math.frexp(maxabs)[1] - _MANTISSA


def _lattice_span(lo: float, hi: float, e: int) -> int:
    return math.floor(math.ldexp(hi, -e)) - math.floor(math.ldexp(lo, -e)) + 1


class PixelMetrics:
    """Streaming pixel ``ap``, ``fpr95`` and ``auroc`` over all valid pixels of a dataset.

    ``update(score_map, label)`` takes one image ``[H, W]`` or a batch ``[N, H, W]`` (numpy or
    torch; each of the ``N`` maps is one image for the bootstrap); labels 0 inlier, 1 anomaly,
    255 void (void pixels are ignored, their scores may be anything, even NaN). ``compute()``
    returns ``{"ap", "fpr95", "auroc"}`` of the pooled valid pixels, anomaly positive, with the
    image conventions (``ap`` is ``aupr_out``; ``fpr95`` as :func:`fpr_at_tpr`).

    Args:
        bins: resolution of the binned path (default ``2**16``), or ``None`` for the exact path,
            which keeps every distinct score of every image (equal to sklearn). The exact path is
            for tests and small sets (up to ~1e6 pixels): it stores ~24 bytes per valid pixel and
            its bootstrap evaluates every resample on all distinct scores (measured, 100 images of
            512x1024: compute 39 s and a 200-resample bootstrap 9 min, against 2 ms and 0.3 s
            binned).
        image_bins: resolution of the per-image histograms kept for the bootstrap (binned path;
            default ``2**12``): at most about ``image_bins + 1`` counts per class and image.
        tpr: TPR of the ``fpr95`` operating point.

    **Binned path.** Every finite score ``s`` is put in bin ``floor(s / w)`` of one lattice of
    width ``w = 2**e`` anchored at 0, i.e. rounded down to ``floor(s / w) * w``; ``-inf`` and
    ``+inf`` get a bin of their own below / above everything. The exponent is the smallest for
    which the occupied bins span at most ``bins`` bins (and ``w`` is not finer than the float64
    spacing of the largest score). No range is needed in advance: when new scores fall outside, the
    lattice widens by merging ``2**t`` neighbouring bins (exact, since the lattices are nested), so
    the final histogram is the same whatever the order or batching of the images (and
    :meth:`merge` of two accumulators equals feeding both streams to one). Memory:
    ``2 * bins`` counts + ``2 * (image_bins + 1)`` per image.

    The binned metrics are **exactly** the metrics of the quantised scores; quantisation is
    monotone, so it never inverts an order, it only ties scores that share a bin. Hence, with per
    bin ``b`` the inlier/anomaly counts ``C_b``/``A_b``, totals ``N_id``/``N_ood``, and ``T_b``,
    ``F_b`` the anomaly/inlier counts of the bins above ``b`` (``D_b = T_b + F_b``):

    * ``auroc``: only within-bin pairs change (counted 1/2 instead of 0 or 1), so
      ``|error| <= sum_b A_b C_b / (2 N_id N_ood)``.
    * ``fpr95``: the exact operating threshold lies in the bin ``k`` where the binned one is, and
      all of bin ``k`` is flagged: ``0 <= binned - exact <= C_k / N_id`` (binned is pessimistic).
    * ``ap``: an anomaly in bin ``b`` sees a precision in ``[(T_b+1)/(D_b+1+C_b), (T_b+A_b)/
      (D_b+A_b)]``, which also holds the binned one, so ``|error| <= sum_b A_b/N_ood *`` (the
      larger distance of the binned precision to either end).

    :meth:`error_bound` evaluates the three bounds on the accumulated histogram. They are small when
    no single bin holds a noticeable share of both classes: with the default ``2**16`` bins and a
    score distribution spread over its range, a few 1e-5; a handful of extreme outliers that
    stretch the range (e.g. one energy of 1e6 among values in [-20, 0]) coarsen the lattice and
    show up in the bound — then use more ``bins``, clip the scores, or the exact path.

    **Bootstrap over images** (:meth:`bootstrap_samples`, :meth:`bootstrap`): images are resampled
    with replacement (``n_images`` draws, stream keyed on ``(seed, key)`` as the image bootstrap,
    so replicate ``b`` draws the same images for every detector and for the
    :class:`ComponentMetrics` of the same images and key) and the pooled metrics recomputed from
    the per-image histograms. These are kept on the lattice coarsened ``2**s`` times,
    ``s = ceil(log2(bins / image_bins))``; each replicate is shifted by the point estimate's
    discretisation difference (metrics on the fine minus on the coarse histogram of all images,
    bounded like :meth:`error_bound` at the coarse resolution), so replicates are centred on the
    reported value. On the exact path replicates are exact.
    """

    def __init__(self, bins: int | None = 2**16, *, image_bins: int = 2**12, tpr: float = 0.95):
        if bins is not None and (int(bins) != bins or bins < 2):
            raise ValueError("bins must be an integer >= 2, or None (exact)")
        if int(image_bins) != image_bins or image_bins < 2:
            raise ValueError("image_bins must be an integer >= 2")
        if not 0 <= tpr <= 1:
            raise ValueError("tpr must be in [0, 1]")
        self.bins = None if bins is None else int(bins)
        self.image_bins = int(image_bins)
        self.tpr = float(tpr)
        # per image: (exponent or None, keys ascending, inlier counts, anomaly counts, inf counts)
        self._images: list[tuple] = []
        # binned path: lattice exponent, first bin, counts (2 classes, span), [[-inf], [+inf]] counts
        self._e: int | None = None
        self._k0 = 0
        self._hist = np.zeros((2, 0), dtype=np.int64)
        self._inf = np.zeros((2, 2), dtype=np.int64)  # [class, (-inf, +inf)]
        self._shift = 0 if bins is None else max(0, math.ceil(math.log2(self.bins / self.image_bins)))

    # ---------------------------------------------------------------- accumulation
    @property
    def exact(self) -> bool:
        return self.bins is None

    @property
    def n_images(self) -> int:
        return len(self._images)

    def n_pixels(self) -> dict[str, int]:
        """Valid pixels seen: ``{"inlier": n, "anomaly": n}``."""
        n = np.zeros(2, dtype=np.int64)
        for rec in self._images:
            n[0] += rec[2].sum() + (0 if rec[4] is None else rec[4][0].sum())
            n[1] += rec[3].sum() + (0 if rec[4] is None else rec[4][1].sum())
        return {"inlier": int(n[0]), "anomaly": int(n[1])}

    def update(self, score_map, label) -> PixelMetrics:
        """Add one image ``[H, W]`` or a batch ``[N, H, W]`` (numpy or torch); returns ``self``."""
        for scores, lab in _dense_images(score_map, label):
            inl, ano = _label_masks(lab)
            s_id, s_ood = scores[inl], scores[ano]
            if np.isnan(s_id).any() or np.isnan(s_ood).any():
                raise ValueError("score map has NaN on valid (non-void) pixels")
            if self.exact:
                self._add_exact(s_id, s_ood)
            else:
                self._add_binned(s_id, s_ood)
        return self

    def _add_exact(self, s_id: np.ndarray, s_ood: np.ndarray) -> None:
        values, inverse = np.unique(np.concatenate([s_id, s_ood]), return_inverse=True)
        inverse = inverse.ravel()
        c_id = np.bincount(inverse[: s_id.size], minlength=values.size)
        c_ood = np.bincount(inverse[s_id.size :], minlength=values.size)
        self._images.append((None, values, c_id, c_ood, None))

    def _fit_lattice(self, lo: float, hi: float, e_floor: int) -> None:
        """Widen (or create) the lattice so that it covers [lo, hi] with exponent >= e_floor."""
        if self._e is not None:
            w_lo = math.ldexp(self._k0, self._e)  # lower edges of the occupied end bins (exact)
            w_hi = math.ldexp(self._k0 + self._hist.shape[1] - 1, self._e)
            lo, hi = min(lo, w_lo), max(hi, w_hi)
            e_floor = max(e_floor, self._e)
        e = e_floor
        if hi > lo:  # a span <= bins needs w >= (hi - lo) / bins (halved: no overflow near 1e308)
            e = max(e, math.ceil(math.log2(hi * 0.5 - lo * 0.5) + 1 - math.log2(self.bins)) - 1)
        while _lattice_span(lo, hi, e) > self.bins:
            e += 1
        k0 = math.floor(math.ldexp(lo, -e))
        span = _lattice_span(lo, hi, e)
        if self._e is None:
            self._hist = np.zeros((2, span), dtype=np.int64)
        elif (e, k0, span) != (self._e, self._k0, self._hist.shape[1]):
            old = np.arange(self._k0, self._k0 + self._hist.shape[1], dtype=np.int64)
            pos = np.right_shift(old, e - self._e) - k0  # floor(k / 2**t): nested lattices
            hist = np.zeros((2, span), dtype=np.int64)
            for c in range(2):
                np.add.at(hist[c], pos, self._hist[c])
            self._hist = hist
        self._e, self._k0 = e, k0

    def _keys(self, finite: np.ndarray, e: int) -> np.ndarray:
        return np.floor(np.ldexp(finite, -e)).astype(np.int64)

    def _add_binned(self, s_id: np.ndarray, s_ood: np.ndarray) -> None:
        inf = np.zeros((2, 2), dtype=np.int64)
        finite = []
        for c, v in enumerate((s_id, s_ood)):
            ok = np.isfinite(v)
            if not ok.all():
                inf[c] = np.count_nonzero(v == -np.inf), np.count_nonzero(v == np.inf)
                v = v[ok]
            finite.append(v)
        n_fin = finite[0].size + finite[1].size
        keys: list[np.ndarray] = [np.zeros(0, np.int64)] * 2
        if n_fin:
            lo = min(float(v.min()) for v in finite if v.size)
            hi = max(float(v.max()) for v in finite if v.size)
            self._fit_lattice(lo, hi, _min_exponent(max(abs(lo), abs(hi))))
            span = self._hist.shape[1]
            for c in range(2):
                keys[c] = self._keys(finite[c], self._e)
                self._hist[c] += np.bincount(keys[c] - self._k0, minlength=span)
        self._inf += inf
        # per-image histogram on the coarse lattice (exponent self._e + self._shift)
        coarse = [np.right_shift(k, self._shift) for k in keys]
        if n_fin:
            base = min(int(k.min()) for k in coarse if k.size)
            top = max(int(k.max()) for k in coarse if k.size)
            cnt = [np.bincount(k - base, minlength=top - base + 1) for k in coarse]
            nz = np.flatnonzero(cnt[0] + cnt[1])
            rec = (self._e, nz.astype(np.int64) + base, cnt[0][nz], cnt[1][nz], inf)
        else:
            rec = (self._e, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), inf)
        self._images.append(rec)

    def merge(self, other: PixelMetrics) -> PixelMetrics:
        """Add ``other``'s images to ``self`` (same settings); returns ``self``.

        Equals feeding both accumulators' images to one (``self``'s first), e.g. to pool the
        ``near`` and ``far`` sets into ``all`` without scoring twice.
        """
        if (self.bins, self.image_bins, self.tpr) != (other.bins, other.image_bins, other.tpr):
            raise ValueError("cannot merge PixelMetrics with different bins / image_bins / tpr")
        if other is self:
            raise ValueError("cannot merge an accumulator into itself")
        if not self.exact and other._e is not None:
            lo = math.ldexp(other._k0, other._e)
            hi = math.ldexp(other._k0 + other._hist.shape[1] - 1, other._e)
            self._fit_lattice(lo, hi, other._e)
            pos = np.right_shift(
                np.arange(other._k0, other._k0 + other._hist.shape[1], dtype=np.int64), self._e - other._e
            ) - self._k0
            for c in range(2):
                np.add.at(self._hist[c], pos, other._hist[c])
        self._inf += other._inf
        self._images.extend(other._images)
        return self

    @classmethod
    def merged(cls, *parts: PixelMetrics) -> PixelMetrics:
        """A new accumulator holding the images of all ``parts`` in order (e.g. ``all`` from sets)."""
        if not parts:
            raise ValueError("merged() needs at least one accumulator")
        out = cls(parts[0].bins, image_bins=parts[0].image_bins, tpr=parts[0].tpr)
        for p in parts:
            out.merge(p)
        return out

    # ---------------------------------------------------------------- point metrics
    def _point_counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ascending ``(c_id, c_ood, thresholds)``; ``thresholds[i]`` = lowest score of bin ``i``."""
        if self.exact:
            if not self._images:
                return np.zeros(0), np.zeros(0), np.zeros(0)
            grid = np.unique(np.concatenate([r[1] for r in self._images]))
            c = np.zeros((2, grid.size))
            for _, values, c_id, c_ood, _ in self._images:
                pos = np.searchsorted(grid, values)
                c[0, pos] += c_id
                c[1, pos] += c_ood
            return c[0], c[1], grid
        edges = np.ldexp(np.arange(self._k0, self._k0 + self._hist.shape[1], dtype=np.float64), self._e or 0)
        c_id = np.r_[self._inf[0, 0], self._hist[0], self._inf[0, 1]].astype(np.float64)
        c_ood = np.r_[self._inf[1, 0], self._hist[1], self._inf[1, 1]].astype(np.float64)
        return c_id, c_ood, np.r_[-np.inf, edges, np.inf]

    def _checked_counts(self):
        c_id, c_ood, thr = self._point_counts()
        if c_ood.sum() == 0 or c_id.sum() == 0:
            raise ValueError(
                f"pixel metrics need inlier and anomaly pixels; got {c_id.sum():.0f} inlier and "
                f"{c_ood.sum():.0f} anomaly pixels over {self.n_images} images"
            )
        return c_id, c_ood, thr

    def compute(self) -> dict[str, float]:
        """``{"ap", "fpr95", "auroc"}`` of all valid pixels seen (plain floats in [0, 1])."""
        c_id, c_ood, _ = self._checked_counts()
        m = _pixel_metrics_from_counts(c_id[None], c_ood[None], self.tpr)
        return {k: float(m[k][0]) for k in PIXEL_METRICS}

    def error_bound(self) -> dict[str, float]:
        """Upper bound of ``|binned - exact|`` per metric (see the class docstring); 0 when exact."""
        c_id, c_ood, _ = self._checked_counts()
        if self.exact:
            return {k: 0.0 for k in PIXEL_METRICS}
        return _binning_bounds(c_id, c_ood, self.tpr)

    def best_f1_threshold(self) -> float:
        """Threshold ``t`` whose segmentation ``score >= t`` has the highest pixel F1 (valid pixels).

        SMIYC's choice for the component metrics (``MetricSegment.get_thresh_p_from_curve``: the
        best-F1 threshold of the same method's pixel curve on the same dataset). Ties go to the
        highest threshold. On the binned path ``t`` is a lattice edge, so ``score >= t`` flags
        exactly the bins at or above the best operating point.
        """
        c_id, c_ood, thr = self._checked_counts()
        occupied = (c_id + c_ood) > 0
        c_id, c_ood, thr = c_id[occupied][::-1], c_ood[occupied][::-1], thr[occupied][::-1]
        tp = np.cumsum(c_ood)
        fp = np.cumsum(c_id)
        f1 = 2 * tp / (tp + fp + c_ood.sum())  # 2TP / (2TP + FP + FN)
        return float(thr[int(np.argmax(f1))])

    # ---------------------------------------------------------------- bootstrap
    def _image_matrices(self):
        """Per-image counts as sparse ``(n_images, V)`` matrices on one ascending grid."""
        from scipy import sparse

        rows, cols, v_id, v_ood = [], [], [], []
        if self.exact:
            grid = np.unique(np.concatenate([r[1] for r in self._images])) if self._images else np.zeros(0)
            for i, (_, values, c_id, c_ood, _) in enumerate(self._images):
                rows.append(np.full(values.size, i))
                cols.append(np.searchsorted(grid, values))
                v_id.append(c_id)
                v_ood.append(c_ood)
            n_cols = grid.size
        else:
            final = self._e or 0
            shifted = [np.right_shift(r[1], final - r[0]) if r[0] is not None else r[1] for r in self._images]
            grid = np.unique(np.concatenate(shifted)) if shifted else np.zeros(0, np.int64)
            n_cols = grid.size + 2  # column 0: -inf, last: +inf
            for i, (rec, keys) in enumerate(zip(self._images, shifted)):
                inf = rec[4]
                rows.append(np.full(keys.size + 2, i))
                cols.append(np.r_[0, np.searchsorted(grid, keys) + 1, n_cols - 1])
                v_id.append(np.r_[inf[0, 0], rec[2], inf[0, 1]])
                v_ood.append(np.r_[inf[1, 0], rec[3], inf[1, 1]])
        shape = (self.n_images, n_cols)
        r, c = np.concatenate(rows), np.concatenate(cols)
        h_id = sparse.csr_matrix((np.concatenate(v_id).astype(np.float64), (r, c)), shape=shape)
        h_ood = sparse.csr_matrix((np.concatenate(v_ood).astype(np.float64), (r, c)), shape=shape)
        return h_id, h_ood

    def bootstrap_samples(self, n_boot: int = 200, seed: int = 0, key: str = "dense") -> dict[str, np.ndarray]:
        """Replicates ``{metric: array (n_boot,)}`` of the pooled metrics over images resampled with
        replacement (NaN where a resample has no anomaly or no inlier pixel)."""
        self._checked_counts()
        mult = _multiplicities(self.n_images, n_boot, seed, key)
        h_id, h_ood = self._image_matrices()
        step = max(1, _MAX_CELLS // max(h_id.shape[1], 1))
        parts = []
        for s in range(0, n_boot, step):
            m = mult[s : s + step]
            c_id = np.asarray((h_id.T @ m.T).T)
            c_ood = np.asarray((h_ood.T @ m.T).T)
            parts.append(_pixel_metrics_from_counts(c_id, c_ood, self.tpr))
        reps = {k: np.concatenate([p[k] for p in parts]) for k in PIXEL_METRICS}
        if not self.exact and self._shift > 0:  # centre on the fine-lattice point estimate
            coarse = _pixel_metrics_from_counts(
                np.asarray(h_id.sum(axis=0)), np.asarray(h_ood.sum(axis=0)), self.tpr
            )
            point = self.compute()
            for k in PIXEL_METRICS:
                reps[k] = np.clip(reps[k] + (point[k] - coarse[k][0]), 0.0, 1.0)
        return reps

    def bootstrap(
        self, n_boot: int = 200, level: float = 0.95, seed: int = 0, key: str = "dense"
    ) -> dict[str, tuple[float, float]]:
        """Percentile intervals ``{metric: (lo, hi)}`` from :meth:`bootstrap_samples`."""
        reps = self.bootstrap_samples(n_boot, seed, key)
        return {k: _interval(reps[k], level) for k in PIXEL_METRICS}

    def __repr__(self) -> str:
        mode = "exact" if self.exact else f"bins={self.bins}"
        return f"PixelMetrics({mode}, images={self.n_images})"


def _binning_bounds(c_id: np.ndarray, c_ood: np.ndarray, tpr: float) -> dict[str, float]:
    """Error bounds of metrics computed on binned counts (ascending; first/last bin = -inf/+inf, exact)."""
    n_id, n_ood = c_id.sum(), c_ood.sum()
    lattice = np.zeros(c_id.size, dtype=bool)
    lattice[1:-1] = True
    auroc = float(np.sum((c_id * c_ood)[lattice]) / (2.0 * n_id * n_ood))
    # descending order for the threshold walk
    a, c, lat = c_ood[::-1], c_id[::-1], lattice[::-1]
    t_before = np.cumsum(a) - a
    f_before = np.cumsum(c) - c
    d = t_before + f_before
    reached = np.cumsum(a) / n_ood >= tpr
    k = int(np.argmax(reached))
    fpr = float(c[k] / n_id) if (lat[k] and tpr > 0) else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        y = (t_before + a) / (d + a + c)
        x_lo = (t_before + 1) / (d + 1 + c)
        x_hi = (t_before + a) / (d + a)
        dev = np.maximum(y - x_lo, x_hi - y)
    use = lat & (a > 0)
    ap = float(np.sum(a[use] / n_ood * dev[use]))
    return {"ap": ap, "fpr95": fpr, "auroc": auroc}


# --------------------------------------------------------------------------------------------
# component metrics (SegmentMeIfYouCan)
# --------------------------------------------------------------------------------------------
class ComponentMetrics:
    """SegmentMeIfYouCan component-level metrics ``siou``, ``ppv`` and ``mean_f1``.

    Per image (``update``): the segmentation is ``score >= threshold`` on valid pixels (predicted
    pixels on void are dropped *before* the connected components, so components never bridge void);
    connected components (``connectivity=8``: SMIYC's ``np.ones((3, 3))`` structure) of the
    ground-truth anomaly mask ``label == 1`` and of the segmentation; predicted components with
    fewer than ``min_size`` pixels are removed (counted on the whole image, SMIYC
    ``thresh_segsize``); ground-truth components with fewer than ``min_gt_size`` pixels become void
    (SMIYC ``thresh_instsize``): they are neither targets nor count in any predicted component.
    Everything below is then counted on the remaining valid pixels.

    * ``sIoU(k)`` of a ground-truth component ``k``: with ``P(k)`` the union of the predicted
      components that intersect ``k`` and ``A(k)`` the pixels of ``P(k)`` that belong to *other*
      ground-truth components, ``|k ∩ P(k)| / |(k ∪ P(k)) \\ A(k)|`` (a prediction covering two
      adjacent objects is not penalised for the other object).
    * ``PPV(p)`` of a predicted component ``p``: the fraction of its pixels on ground-truth anomaly.
    * For each ``tau`` of ``taus``: TP = ground-truth components with ``sIoU > tau``, FN = the other
      ground-truth components, FP = predicted components with ``PPV <= tau`` (``tau_rule="paper"``,
      Chan et al. 2021, Sec. 4.2); ``F1(tau) = 2 TP / (2 TP + FN + FP)`` with the counts summed
      over all images; ``mean_f1`` is the mean over ``taus``.
    * ``siou`` / ``ppv``: means over all ground-truth / predicted components of the dataset (pooled
      over images, not per-image means), as the benchmark's ``sIoU_gt`` / ``prec_pred``.

    An image without anomalies contributes only its predicted components (all FP at every tau).
    ``siou`` is NaN without any ground-truth component, ``ppv`` without any predicted component,
    ``mean_f1`` without either.

    Args:
        threshold: score threshold of the segmentation (required). SMIYC uses the threshold of best
            pixel F1 of the same method on the same dataset: :meth:`PixelMetrics.best_f1_threshold`
            (what :func:`dense_accumulators` does by default). That tunes on the test data; pass a
            threshold chosen elsewhere for a stricter protocol.
        min_size, min_gt_size: component-size thresholds in pixels; defaults are the SMIYC anomaly
            track (500 / 100); the obstacle track uses 50 / 10 (:data:`SMIYC_TRACKS`). They refer
            to the benchmarks' full resolution: scale them for smaller images.
        taus: sIoU/PPV thresholds of the F1 (default :data:`SMIYC_TAUS`, 0.25 ... 0.75 by 0.05).
        connectivity: 8 (SMIYC) or 4.
        tau_rule: ``"paper"`` (TP if sIoU > tau, FP if PPV <= tau) or ``"code"``, the
            benchmark implementation (``segment_metrics``: TP if sIoU >= tau, FP if PPV < tau).
            They differ only for a ratio exactly equal to a tau.

    Differences from road-anomaly-benchmark's code: the segmentation is ``score >= threshold``
    (this module's convention; the code uses ``>``), taus are the exact multiples of 0.05 (the code's
    linspace values are off by an ulp, so its comparisons at an exact ratio are arbitrary), and the
    best-F1 threshold comes from our pixel histogram rather than its per-frame quantile bins.

    Bootstrap: like :class:`PixelMetrics` (same stream for the same ``key`` and number of images,
    so pixel and component replicates are paired), recomputing the pooled metrics from per-image
    sums; the threshold stays fixed (re-segmenting per resample is not possible from the kept
    statistics, and SMIYC fixes it too).
    """

    def __init__(
        self,
        threshold: float,
        *,
        min_size: int = 500,
        min_gt_size: int = 100,
        taus: Sequence[float] = SMIYC_TAUS,
        connectivity: int = 8,
        tau_rule: str = "paper",
    ):
        threshold = float(threshold)
        if math.isnan(threshold):
            raise ValueError("threshold is NaN")
        if connectivity not in (4, 8):
            raise ValueError("connectivity must be 4 or 8")
        if tau_rule not in ("paper", "code"):
            raise ValueError("tau_rule must be 'paper' or 'code'")
        if min_size < 0 or min_gt_size < 0:
            raise ValueError("size thresholds must be >= 0")
        self.threshold = threshold
        self.min_size = int(min_size)
        self.min_gt_size = int(min_gt_size)
        self.taus = tuple(float(t) for t in taus)
        if not self.taus:
            raise ValueError("taus is empty")
        self.connectivity = connectivity
        self.tau_rule = tau_rule
        self._siou: list[np.ndarray] = []  # per image: sIoU of each ground-truth component
        self._ppv: list[np.ndarray] = []  # per image: PPV of each predicted component

    @property
    def n_images(self) -> int:
        return len(self._siou)

    def _settings(self):
        return (self.threshold, self.min_size, self.min_gt_size, self.taus, self.connectivity, self.tau_rule)

    def update(self, score_map, label) -> ComponentMetrics:
        """Add one image ``[H, W]`` or a batch ``[N, H, W]`` (numpy or torch); returns ``self``."""
        for scores, lab in _dense_images(score_map, label):
            siou, ppv = self._image_components(scores, lab)
            self._siou.append(siou)
            self._ppv.append(ppv)
        return self

    def _image_components(self, scores: np.ndarray, lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from scipy import ndimage

        inl, ano = _label_masks(lab)
        valid = inl | ano
        structure = ndimage.generate_binary_structure(2, 2 if self.connectivity == 8 else 1)
        gt, n_gt = ndimage.label(ano, structure)
        pred, n_pred = ndimage.label((scores >= self.threshold) & valid, structure)
        if n_pred and self.min_size > 0:  # drop small predicted components (whole-image size)
            keep = np.bincount(pred.ravel(), minlength=n_pred + 1) >= self.min_size
            keep[0] = False
            relabel = np.zeros(n_pred + 1, dtype=pred.dtype)
            relabel[keep] = np.arange(1, np.count_nonzero(keep) + 1)
            pred, n_pred = relabel[pred], int(np.count_nonzero(keep))
        roi = valid
        if n_gt and self.min_gt_size > 0:  # small ground-truth components become void
            small = np.bincount(gt.ravel(), minlength=n_gt + 1) < self.min_gt_size
            small[0] = False
            if small.any():
                roi = valid & ~small[gt]
        g = gt[roi].astype(np.int64)
        p = pred[roi].astype(np.int64)
        size_g = np.bincount(g, minlength=n_gt + 1)
        size_p = np.bincount(p, minlength=n_pred + 1)
        # contingency of (ground-truth component, predicted component) pairs that overlap
        both = (g > 0) & (p > 0)
        pairs, overlap = np.unique(g[both] * (n_pred + 1) + p[both], return_counts=True)
        gi, pj = pairs // (n_pred + 1), pairs % (n_pred + 1)
        on_gt = np.bincount(pj, weights=overlap, minlength=n_pred + 1)  # pixels of p on any gt
        inter = np.bincount(gi, weights=overlap, minlength=n_gt + 1)
        pred_area = np.bincount(gi, weights=size_p[pj], minlength=n_gt + 1)  # |P(k)|
        adjust = np.bincount(gi, weights=on_gt[pj] - overlap, minlength=n_gt + 1)  # |A(k)|
        union = pred_area + size_g - inter - adjust
        gt_ids = np.flatnonzero(size_g[1:]) + 1
        pred_ids = np.flatnonzero(size_p[1:]) + 1
        return inter[gt_ids] / union[gt_ids], on_gt[pred_ids] / size_p[pred_ids]

    def merge(self, other: ComponentMetrics) -> ComponentMetrics:
        """Add ``other``'s images to ``self`` (same settings); returns ``self``."""
        if self._settings() != other._settings():
            raise ValueError("cannot merge ComponentMetrics with different settings")
        if other is self:
            raise ValueError("cannot merge an accumulator into itself")
        self._siou.extend(other._siou)
        self._ppv.extend(other._ppv)
        return self

    @classmethod
    def merged(cls, *parts: ComponentMetrics) -> ComponentMetrics:
        """A new accumulator holding the images of all ``parts`` in order."""
        if not parts:
            raise ValueError("merged() needs at least one accumulator")
        p0 = parts[0]
        out = cls(
            p0.threshold,
            min_size=p0.min_size,
            min_gt_size=p0.min_gt_size,
            taus=p0.taus,
            connectivity=p0.connectivity,
            tau_rule=p0.tau_rule,
        )
        for p in parts:
            out.merge(p)
        return out

    def _image_stats(self) -> np.ndarray:
        """``(n_images, 4 + 2 * n_taus)``: sIoU sum, #gt, PPV sum, #pred, TP per tau, FP per tau."""
        taus = np.asarray(self.taus)
        rows = np.zeros((self.n_images, 4 + 2 * taus.size))
        for i, (siou, ppv) in enumerate(zip(self._siou, self._ppv)):
            rows[i, :4] = siou.sum(), siou.size, ppv.sum(), ppv.size
            if self.tau_rule == "paper":
                tp = (siou[:, None] > taus).sum(axis=0)
                fp = (ppv[:, None] <= taus).sum(axis=0)
            else:
                tp = (siou[:, None] >= taus).sum(axis=0)
                fp = (ppv[:, None] < taus).sum(axis=0)
            rows[i, 4 : 4 + taus.size] = tp
            rows[i, 4 + taus.size :] = fp
        return rows

    def _from_sums(self, sums: np.ndarray) -> dict[str, np.ndarray]:
        """Metrics of each row of summed per-image statistics ``(B, 4 + 2 n_taus)``."""
        n = len(self.taus)
        with np.errstate(invalid="ignore", divide="ignore"):
            siou = sums[:, 0] / sums[:, 1]
            ppv = sums[:, 2] / sums[:, 3]
            tp = sums[:, 4 : 4 + n]
            fn = sums[:, 1:2] - tp
            fp = sums[:, 4 + n :]
            f1 = 2 * tp / (2 * tp + fn + fp)
        return {"siou": siou, "ppv": ppv, "mean_f1": f1.mean(axis=1), "f1": f1, "tp": tp, "fn": fn, "fp": fp}

    def compute(self) -> dict[str, float]:
        """``{"siou", "ppv", "mean_f1"}`` over all images seen (NaN where undefined, see above)."""
        if not self.n_images:
            raise ValueError("no images")
        m = self._from_sums(self._image_stats().sum(axis=0, keepdims=True))
        return {k: float(m[k][0]) for k in COMPONENT_METRICS}

    def per_tau(self) -> dict[str, np.ndarray]:
        """Pooled counts and F1 per tau: ``{"tau", "tp", "fn", "fp", "f1"}`` (arrays over taus)."""
        if not self.n_images:
            raise ValueError("no images")
        m = self._from_sums(self._image_stats().sum(axis=0, keepdims=True))
        out = {"tau": np.asarray(self.taus)}
        out.update({k: m[k][0] for k in ("tp", "fn", "fp", "f1")})
        return out

    def components(self) -> dict[str, list[np.ndarray]]:
        """Per image, the sIoU of each ground-truth and the PPV of each predicted component."""
        return {"siou": [a.copy() for a in self._siou], "ppv": [a.copy() for a in self._ppv]}

    def bootstrap_samples(self, n_boot: int = 200, seed: int = 0, key: str = "dense") -> dict[str, np.ndarray]:
        """Replicates ``{metric: array (n_boot,)}`` over images resampled with replacement."""
        mult = _multiplicities(self.n_images, n_boot, seed, key)
        m = self._from_sums(mult @ self._image_stats())
        return {k: m[k] for k in COMPONENT_METRICS}

    def bootstrap(
        self, n_boot: int = 200, level: float = 0.95, seed: int = 0, key: str = "dense"
    ) -> dict[str, tuple[float, float]]:
        """Percentile intervals ``{metric: (lo, hi)}`` (replicates with an undefined metric dropped)."""
        reps = self.bootstrap_samples(n_boot, seed, key)
        return {k: _interval(reps[k], level) for k in COMPONENT_METRICS}

    def __repr__(self) -> str:
        return (
            f"ComponentMetrics(threshold={self.threshold:g}, min_size={self.min_size}, "
            f"min_gt_size={self.min_gt_size}, images={self.n_images})"
        )


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


# --------------------------------------------------------------------------------------------------
# semantic segmentation quality of the segmenter (the dense benchmarks' "model" metric)


def pixel_confusion(pred, target, num_classes: int, ignore_index: int = VOID_LABEL) -> np.ndarray:
    """Confusion matrix ``[true, predicted]`` over the non-void pixels of label maps of any shape."""
    pred = np.asarray(pred).reshape(-1)
    target = np.asarray(target).reshape(-1)
    keep = target != ignore_index
    idx = target[keep].astype(np.int64) * num_classes + pred[keep].astype(np.int64)
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def iou_per_class(confusion: np.ndarray) -> np.ndarray:
    """IoU of every class, ``TP / (TP + FP + FN)``; NaN for a class absent from targets and predictions."""
    confusion = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def mean_iou(confusion: np.ndarray) -> float:
    """Mean IoU over the classes present (the usual mIoU of Cityscapes-style benchmarks)."""
    return float(np.nanmean(iou_per_class(confusion)))
