"""Verdicts over training seeds: a paired difference tested with its between-seed and within-seed variance.

Every training seed of a study scores the *same* test images (the data seed is fixed), so a paired
difference ``d_s = metric(a) − metric(b)`` of seed ``s`` is ``δ + T_s + E``: the true difference,
training noise ``T_s`` (independent across seeds) and test-sample noise ``E`` (the same images in
every seed, so the same ``E``). The mean over ``N`` seeds then has variance ``σ_T²/N + σ_E²``,
estimated by ``var(d_s)/N`` (ddof 1) and ``mean(v_s)``, ``v_s`` the within-seed (bootstrap or
DeLong) variance of ``d_s``. Test noise is not divided by ``N``: more seeds never shrink it, only
more test images do. The interval uses Student's t with Welch–Satterthwaite degrees of freedom
(the within-seed term counted as known), so it tends to ``t₍N−1₎`` when training noise dominates
and to the normal when test noise does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["SeedTest", "combined_test", "one_run_test", "seed_test", "seeds_needed"]


@dataclass(frozen=True)
class SeedTest:
    """``mean`` difference, its standard error ``se`` and degrees of freedom ``df``, the ``level``
    interval ``[lo, hi]`` and the two-sided ``p``; ``n`` seeds, of which ``wins`` favour ``a``."""

    mean: float
    se: float
    df: float
    lo: float
    hi: float
    p: float
    n: int
    wins: int


def combined_test(mean: float, between: float, between_df: float, within: float, level: float = 0.95) -> tuple[float, float, float, float, float]:
    """``(se, df, lo, hi, p)`` of ``mean`` whose variance is ``between`` (estimated with
    ``between_df`` degrees of freedom) plus ``within`` (taken as known): Welch–Satterthwaite
    ``df = (between + within)² / (between² / between_df)``, infinite when ``between`` is 0."""
    var = between + within
    if not var > 0:  # no noise at all: an exact difference
        return 0.0, math.inf, mean, mean, (1.0 if mean == 0 else 0.0)
    se = math.sqrt(var)
    df = var ** 2 / (between ** 2 / between_df) if between > 0 and between_df > 0 else math.inf
    t = stats.t.ppf(0.5 + level / 2, df) if math.isfinite(df) else stats.norm.ppf(0.5 + level / 2)
    p = 2 * (stats.t.sf(abs(mean) / se, df) if math.isfinite(df) else stats.norm.sf(abs(mean) / se))
    return se, df, mean - t * se, mean + t * se, float(p)


def seed_test(diffs, variances, level: float = 0.95, higher_is_better: bool = True) -> SeedTest:
    """The paired differences ``diffs`` of ``N >= 2`` training seeds on the same test images, with
    their within-seed variances ``variances``: mean ± t·√(var(d)/N + mean(v)) (module docstring).
    ``wins``: seeds whose difference favours ``a`` (``> 0``, or ``< 0`` for a lower-is-better metric)."""
    d, v = np.asarray(diffs, np.float64), np.asarray(variances, np.float64)
    if d.ndim != 1 or d.shape != v.shape or d.size < 2:
        raise ValueError(f"seed_test needs one difference and one variance per seed, two seeds or more; got {d.shape}, {v.shape}")
    if not (np.isfinite(d).all() and np.isfinite(v).all() and (v >= 0).all()):
        raise ValueError("seed_test: differences must be finite and variances finite and >= 0")
    n, mean = d.size, float(d.mean())
    se, df, lo, hi, p = combined_test(mean, float(d.var(ddof=1)) / n, n - 1, float(v.mean()), level)
    wins = int((d > 0).sum() if higher_is_better else (d < 0).sum())
    return SeedTest(mean, se, df, lo, hi, p, n, wins)


def one_run_test(diff: float, variance: float, seed_std: float, seed_n: int, level: float = 0.95) -> SeedTest:
    """One run's difference against the training noise measured elsewhere: variance ``seed_std²``
    (the between-seed std of this difference over ``seed_n`` seeds) plus its own ``variance``."""
    if seed_n < 2:
        raise ValueError(f"a seed spread needs two seeds or more, got {seed_n}")
    se, df, lo, hi, p = combined_test(float(diff), float(seed_std) ** 2, seed_n - 1, float(variance), level)
    return SeedTest(float(diff), se, df, lo, hi, p, 1, int(diff > 0))


def seeds_needed(diffs, variances, level: float = 0.95, most: int = 100) -> int | None:
    """The fewest seeds (>= 2) whose interval would exclude 0 if the mean difference and both
    variances stayed as measured; ``None`` when ``most`` seeds would not do, e.g. because test-set
    noise alone (which seeds never shrink) covers the difference."""
    d, v = np.asarray(diffs, np.float64), np.asarray(variances, np.float64)
    mean, spread, within = abs(float(d.mean())), float(d.var(ddof=1)), float(v.mean())
    for n in range(2, most + 1):
        _, _, lo, hi, _ = combined_test(mean, spread / n, n - 1, within, level)
        if lo > 0:
            return n
    return None
