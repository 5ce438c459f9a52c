"""Bootstrap confidence intervals of the image metrics, tidy summaries, and the resampling helpers
shared with the dense metrics.

ID and OOD samples are resampled **separately** with replacement (stratified, sizes kept) and
intervals are percentile intervals. In :func:`bootstrap_samples` / :func:`summarize` the ID
resample of replicate ``b`` is shared by all OOD sets (they are all scored against the same ID
test set) and each OOD set is resampled from its own random stream keyed on ``(seed, set name)``;
the streams do not depend on the detector, so replicates are paired across detectors. The dense
metrics resample whole images from the same keyed streams (:func:`_multiplicities`).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import numpy as np

from .image import HIGHER_IS_BETTER, METRICS, _as_scores, _counts, _grid, _metrics_from_counts, image_metrics

__all__ = [
    "best_baselines",
    "bootstrap_samples",
    "bootstrap_ci",
    "percentile_interval",
    "SUMMARY_COLUMNS",
    "summarize",
    "to_metrics_json",
]

# Largest count matrix (elements) built at once; bigger bootstraps are processed in chunks.
_MAX_CELLS = 8_000_000


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
# resampling helpers of the dense metrics (whole images are resampled)
# --------------------------------------------------------------------------------------------
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
    replicates: dict | None = None,
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
    seed draws the same samples for every detector. ``replicates``: a dict filled with each
    detector's :func:`bootstrap_samples` (for paired comparisons that reuse them).
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
        if replicates is not None:
            replicates[detector] = reps
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


def best_baselines(summary, baselines: Sequence[str], targets: Sequence[str], metric: str) -> dict[str, str]:
    """The baseline with the best ``metric`` on each target (highest, or lowest for FPR95). Chosen
    on the test results, which favours the baseline: a method that beats it beats every baseline."""
    rows = summary[summary["detector"].isin(baselines) & (summary["metric"] == metric)]
    better = HIGHER_IS_BETTER[metric]
    best = {}
    for target in targets:
        values = rows[rows["set"] == target].set_index("detector")["value"]
        if not values.empty:
            best[target] = str(values.idxmax() if better else values.idxmin())
    return best
