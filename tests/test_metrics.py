"""Image metrics against scikit-learn (the reference), bootstrap CIs, tidy summaries."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from ood import metrics as M


def sk_metrics(id_scores, ood_scores, tpr=0.95):
    """Reference values, OOD positive (FPR95 at the exact operating point, see fpr_at_tpr)."""
    id_scores, ood_scores = np.asarray(id_scores, float), np.asarray(ood_scores, float)
    y = np.r_[np.zeros(id_scores.size), np.ones(ood_scores.size)]
    s = np.r_[id_scores, ood_scores]
    fpr, tpr_curve, _ = sk_roc_curve(y, s, drop_intermediate=False)
    return {
        "auroc": roc_auc_score(y, s),
        "fpr95": fpr[np.argmax(tpr_curve >= tpr)],
        "aupr_in": average_precision_score(1 - y, -s),
        "aupr_out": average_precision_score(y, s),
    }


def _cases():
    rng = np.random.default_rng(0)
    yield "gaussian", rng.normal(0, 1, 500), rng.normal(1, 1, 120)
    yield "imbalanced", rng.normal(0, 1, 2000), rng.normal(0.3, 1, 17)
    yield "many_ties", np.round(rng.normal(0, 1, 300), 1), np.round(rng.normal(0.5, 1, 200), 1)
    yield "integers", rng.integers(0, 4, 150).astype(float), rng.integers(1, 6, 90).astype(float)
    yield "binary", rng.integers(0, 2, 50).astype(float), rng.integers(0, 2, 40).astype(float)
    yield "all_equal", np.zeros(10), np.zeros(7)
    yield "separated", rng.uniform(0, 1, 60), rng.uniform(2, 3, 30)
    yield "inverted", rng.uniform(2, 3, 60), rng.uniform(0, 1, 30)
    yield "one_each", np.array([0.3]), np.array([0.7])
    yield "one_each_tied", np.array([0.3]), np.array([0.3])
    yield "tiny", np.array([0.1, 0.4, 0.35]), np.array([0.8, 0.35, 0.5, 0.05])
    yield "large_values", rng.normal(1e6, 1, 100), rng.normal(1e6 + 0.5, 1, 100)


CASES = list(_cases())


@pytest.mark.parametrize("name,id_scores,ood_scores", CASES, ids=[c[0] for c in CASES])
def test_matches_sklearn(name, id_scores, ood_scores):
    ref = sk_metrics(id_scores, ood_scores)
    got = M.image_metrics(id_scores, ood_scores)
    assert list(got) == ["auroc", "fpr95", "aupr_in", "aupr_out"]
    for k, v in ref.items():
        assert got[k] == pytest.approx(v, abs=1e-12), k
        assert isinstance(got[k], float) and 0.0 <= got[k] <= 1.0
    assert M.auroc(id_scores, ood_scores) == got["auroc"]
    assert M.fpr_at_tpr(id_scores, ood_scores) == got["fpr95"]
    assert M.aupr_in(id_scores, ood_scores) == got["aupr_in"]
    assert M.aupr_out(id_scores, ood_scores) == got["aupr_out"]


@pytest.mark.parametrize("seed", range(40))
def test_matches_sklearn_random_small(seed):
    rng = np.random.default_rng(100 + seed)
    n_id, n_ood = rng.integers(1, 40, size=2)
    if seed % 2:  # heavy ties between and within classes
        id_scores, ood_scores = rng.integers(0, 5, n_id) / 2, rng.integers(0, 6, n_ood) / 2
    else:
        id_scores, ood_scores = rng.normal(size=n_id), rng.normal(0.7, size=n_ood)
    ref = sk_metrics(id_scores, ood_scores)
    got = M.image_metrics(id_scores, ood_scores)
    for k in ref:
        assert got[k] == pytest.approx(ref[k], abs=1e-12), k


def test_hand_computed_example():
    # ID = [0.1, 0.4, 0.35], OOD = [0.8, 0.35, 0.5, 0.05]
    # AUROC: OOD-vs-ID wins 0.8 -> 3, 0.35 -> 1 + 1/2 (tie with 0.35), 0.5 -> 3, 0.05 -> 0;
    #        (3 + 1.5 + 3 + 0) / (4 * 3) = 7.5 / 12 = 0.625.
    # Thresholds, highest first (flag score >= t):  t    OOD flagged  ID flagged
    #                                               0.8      1           0
    #                                               0.5      2           0
    #                                               0.4      2           1
    #                                               0.35     3           2
    #                                               0.1      3           3
    #                                               0.05     4           3
    # FPR@95TPR: 95 % of 4 OOD needs all 4 -> t = 0.05 -> 3/3 ID flagged = 1.0.
    #   At TPR >= 75 %: t = 0.35 -> 2/3; at TPR >= 50 %: t = 0.5 -> 0.
    # AUPR-Out = sum of recall steps (1/4 each) x precision there:
    #   1/4 * (1/1 + 2/2 + 3/5 + 4/7) = 0.792857...
    # AUPR-In (ID positive, scores negated, so lowest score first):
    #   t: 0.05 (0 ID, 1 OOD), 0.1 (1, 1), 0.35 (2, 2), 0.4 (3, 2): 1/3 * (1/2 + 2/4 + 3/5) = 0.5333...
    id_s, ood_s = [0.1, 0.4, 0.35], [0.8, 0.35, 0.5, 0.05]
    m = M.image_metrics(id_s, ood_s)
    assert m["auroc"] == pytest.approx(0.625)
    assert m["fpr95"] == pytest.approx(1.0)
    assert M.fpr_at_tpr(id_s, ood_s, tpr=0.75) == pytest.approx(2 / 3)
    assert M.fpr_at_tpr(id_s, ood_s, tpr=0.5) == pytest.approx(0.0)
    assert M.fpr_at_tpr(id_s, ood_s, tpr=0.0) == 0.0
    assert m["aupr_out"] == pytest.approx((1 + 1 + 3 / 5 + 4 / 7) / 4)
    assert m["aupr_in"] == pytest.approx((1 / 2 + 2 / 4 + 3 / 5) / 3)


@pytest.mark.parametrize("tpr", [0.0, 0.1, 0.5, 0.8, 0.9, 0.95, 0.99, 1.0])
@pytest.mark.parametrize("n_ood", [1, 7, 20, 100, 101])
def test_fpr_at_tpr_other_levels(tpr, n_ood):
    rng = np.random.default_rng(n_ood)
    id_scores, ood_scores = np.round(rng.normal(size=80), 1), np.round(rng.normal(1, size=n_ood), 1)
    assert M.fpr_at_tpr(id_scores, ood_scores, tpr) == pytest.approx(sk_metrics(id_scores, ood_scores, tpr)["fpr95"])


def test_fpr95_agrees_with_default_roc_curve_without_ties():
    """OpenOOD / pytorch-ood use the default roc_curve (drop_intermediate=True): same value without ties."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        id_scores, ood_scores = rng.normal(size=300), rng.normal(0.8, size=60)
        y = np.r_[np.zeros(300), np.ones(60)]
        fpr, tpr, _ = sk_roc_curve(y, np.r_[id_scores, ood_scores])
        assert M.fpr_at_tpr(id_scores, ood_scores) == pytest.approx(fpr[np.argmax(tpr >= 0.95)])


def test_fpr95_exact_operating_point_with_ties():
    """With ID/OOD ties the default roc_curve can drop the operating point; we keep it (documented)."""
    scores = np.arange(20, dtype=float)  # identical ID and OOD scores: the ROC is the diagonal
    y = np.r_[np.zeros(20), np.ones(20)]
    fpr, tpr, _ = sk_roc_curve(y, np.r_[scores, scores])  # collinear points dropped
    assert fpr[np.argmax(tpr >= 0.95)] == 1.0
    assert M.fpr_at_tpr(scores, scores) == pytest.approx(0.95)  # threshold 1: 19/20 of each flagged


def test_roc_curve_matches_sklearn():
    rng = np.random.default_rng(5)
    id_scores, ood_scores = np.round(rng.normal(size=100), 1), np.round(rng.normal(1, size=50), 1)
    fpr, tpr, thr = M.roc_curve(id_scores, ood_scores)
    y = np.r_[np.zeros(100), np.ones(50)]
    sfpr, stpr, sthr = sk_roc_curve(y, np.r_[id_scores, ood_scores], drop_intermediate=False)
    np.testing.assert_allclose(fpr, sfpr)
    np.testing.assert_allclose(tpr, stpr)
    assert np.isinf(thr[0]) and np.array_equal(thr[1:], sthr[1:])
    assert np.trapezoid(tpr, fpr) == pytest.approx(M.auroc(id_scores, ood_scores))


def test_curve_points_sample_the_roc_and_pr_curves_of_sklearn():
    from sklearn.metrics import precision_recall_curve

    rng = np.random.default_rng(6)
    id_scores, ood_scores = np.round(rng.normal(size=300), 1), np.round(rng.normal(1, size=80), 1)
    c = M.curve_points(id_scores, ood_scores, points=51)
    y, s = np.r_[np.zeros(300), np.ones(80)], np.r_[id_scores, ood_scores]
    fpr, tpr, _ = sk_roc_curve(y, s, drop_intermediate=False)
    for x, t in zip(c["fpr"], c["tpr"]):  # the best TPR at FPR <= x
        assert t == pytest.approx(tpr[fpr <= x + 1e-12].max())
    precision, recall, _ = precision_recall_curve(y, s)
    for r, p in zip(c["recall"][1:], c["precision"][1:]):  # the first threshold (highest) reaching recall r
        assert p == pytest.approx(precision[recall >= r - 1e-12][-1])
    assert c["precision"][0] == pytest.approx(precision[recall > 0][-1])  # recall 0: the first detection


def test_invariant_to_monotone_transform_and_order():
    rng = np.random.default_rng(7)
    id_scores, ood_scores = rng.normal(size=200), rng.normal(0.5, size=50)
    base = M.image_metrics(id_scores, ood_scores)
    moved = M.image_metrics(np.exp(id_scores) * 3 + 1, np.exp(ood_scores) * 3 + 1)
    shuffled = M.image_metrics(rng.permutation(id_scores), rng.permutation(ood_scores))
    for k in base:
        assert moved[k] == pytest.approx(base[k], abs=1e-12)
        assert shuffled[k] == pytest.approx(base[k], abs=1e-12)
    # accepts lists, column vectors and torch-like arrays alike
    assert M.auroc(list(id_scores), ood_scores[:, None]) == pytest.approx(base["auroc"])


def test_infinite_scores_rank_like_extreme_values():
    # sklearn rejects inf; metrics only depend on the order, so +-inf behave like +-1e300
    id_scores, ood_scores = np.array([-np.inf, 0.0, 1.0, np.inf]), np.array([np.inf, 2.0, 0.5, -np.inf])
    finite = lambda a: np.clip(a, -1e300, 1e300)  # noqa: E731
    assert M.image_metrics(id_scores, ood_scores) == pytest.approx(sk_metrics(finite(id_scores), finite(ood_scores)))


def test_extremes():
    assert M.image_metrics([0, 1, 2], [5, 6]) == {"auroc": 1.0, "fpr95": 0.0, "aupr_in": 1.0, "aupr_out": 1.0}
    inv = M.image_metrics([5, 6], [0, 1, 2])
    assert inv["auroc"] == 0.0 and inv["fpr95"] == 1.0
    assert inv["aupr_out"] == pytest.approx(average_precision_score([0, 0, 1, 1, 1], [5, 6, 0, 1, 2]))


def test_invalid_input():
    with pytest.raises(ValueError, match="no scores"):
        M.auroc([], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        M.image_metrics([0.0, np.nan], [1.0])


# --------------------------------------------------------------------------------------------
# bootstrap
# --------------------------------------------------------------------------------------------
def test_bootstrap_replicates_equal_metrics_of_resamples():
    """The vectorised count-based replicates equal image_metrics on the explicit resamples."""
    rng = np.random.default_rng(11)
    id_scores, ood_scores = np.round(rng.normal(size=150), 1), np.round(rng.normal(0.6, size=40), 1)
    reps = M.bootstrap_samples(id_scores, {"x": ood_scores}, n_boot=25, seed=4)["x"]
    id_idx = np.random.default_rng([4, zlib.crc32(b"id")]).integers(0, 150, size=(25, 150))
    ood_idx = np.random.default_rng([4, zlib.crc32(b"x")]).integers(0, 40, size=(25, 40))
    for b in range(25):
        ref = sk_metrics(id_scores[id_idx[b]], ood_scores[ood_idx[b]])
        for k in M.METRICS:
            assert reps[k][b] == pytest.approx(ref[k], abs=1e-12)


def test_bootstrap_chunking_is_invisible(monkeypatch):
    rng = np.random.default_rng(12)
    id_scores, ood_scores = rng.normal(size=300), rng.normal(1, size=80)
    whole = M.bootstrap_samples(id_scores, {"x": ood_scores}, n_boot=30, seed=1)["x"]
    monkeypatch.setattr("ood.metrics.bootstrap._MAX_CELLS", 1000)  # forces chunks of 2 replicates
    chunked = M.bootstrap_samples(id_scores, {"x": ood_scores}, n_boot=30, seed=1)["x"]
    for k in M.METRICS:
        np.testing.assert_array_equal(whole[k], chunked[k])


def test_bootstrap_ci_contains_point_reproducible_and_shrinks():
    rng = np.random.default_rng(13)
    id_small, ood_small = rng.normal(size=200), rng.normal(1, size=60)
    id_big, ood_big = rng.normal(size=5000), rng.normal(1, size=1500)
    point = M.image_metrics(id_small, ood_small)
    ci = M.bootstrap_ci(id_small, ood_small, n_boot=200, seed=0)
    assert set(ci) == set(M.METRICS)
    for k, (lo, hi) in ci.items():
        assert 0.0 <= lo <= point[k] <= hi <= 1.0, k
    assert M.bootstrap_ci(id_small, ood_small, n_boot=200, seed=0) == ci
    assert M.bootstrap_ci(id_small, ood_small, n_boot=200, seed=1) != ci
    ci_big = M.bootstrap_ci(id_big, ood_big, n_boot=200, seed=0)
    for k in M.METRICS:
        assert ci_big[k][1] - ci_big[k][0] < ci[k][1] - ci[k][0], k
    narrow = M.bootstrap_ci(id_small, ood_small, n_boot=200, level=0.5, seed=0)
    for k in M.METRICS:
        assert ci[k][0] <= narrow[k][0] <= narrow[k][1] <= ci[k][1]


def test_bootstrap_streams_do_not_depend_on_other_sets():
    rng = np.random.default_rng(14)
    id_scores = rng.normal(size=100)
    a, b = rng.normal(1, size=30), rng.normal(2, size=30)
    both = M.bootstrap_samples(id_scores, {"a": a, "b": b}, n_boot=20, seed=2)
    alone = M.bootstrap_samples(id_scores, {"a": a}, n_boot=20, seed=2)
    np.testing.assert_array_equal(both["a"]["auroc"], alone["a"]["auroc"])
    assert not np.array_equal(both["a"]["auroc"], both["b"]["auroc"])
    with pytest.raises(ValueError):
        M.bootstrap_samples(id_scores, {"a": a}, n_boot=0)
    with pytest.raises(ValueError):
        M.percentile_interval([0.1, 0.2], level=1.0)


# --------------------------------------------------------------------------------------------
# summaries
# --------------------------------------------------------------------------------------------
GROUPS = {"near": ["shirt", "bag"], "far": ["digits"]}


def make_scores_df(seed=0, n_id=300, n_ood=(80, 60, 50)):
    rng = np.random.default_rng(seed)
    rows = []
    shifts = {"msp": (0.3, 0.8, 3.0), "energy": (0.5, 0.4, 4.0)}
    for det, shift in shifts.items():
        for i, s in enumerate(rng.normal(size=n_id)):
            rows.append((det, "id", i, s, False))
        for (name, n), mu in zip(zip(["shirt", "bag", "digits"], n_ood), shift):
            for i, s in enumerate(rng.normal(mu, size=n)):
                rows.append((det, name, i, s, True))
    return pd.DataFrame(rows, columns=["detector", "set", "index", "score", "is_ood"])


def test_summarize_values_groups_and_ci():
    df = make_scores_df()
    out = M.summarize(df, GROUPS, n_boot=100, level=0.9, seed=3)
    assert list(out.columns) == ["detector", "set", "metric", "value", "lo", "hi"]
    assert list(pd.unique(out["detector"])) == ["msp", "energy"]
    assert list(pd.unique(out["set"])) == ["shirt", "bag", "digits", "near", "far"]
    assert len(out) == 2 * 5 * 4
    assert out.duplicated(["detector", "set", "metric"]).sum() == 0
    assert ((out["lo"] <= out["hi"]) & out[["value", "lo", "hi"]].apply(lambda c: c.between(0, 1)).all(axis=1)).all()

    idx = out.set_index(["detector", "set", "metric"])
    for det in ["msp", "energy"]:
        id_s = df[(df.detector == det) & (df.set == "id")].score.to_numpy()
        ood = {s: df[(df.detector == det) & (df.set == s)].score.to_numpy() for s in ["shirt", "bag", "digits"]}
        reps = M.bootstrap_samples(id_s, ood, n_boot=100, seed=3)
        for s in ood:
            ref = M.image_metrics(id_s, ood[s])
            for m in M.METRICS:
                assert idx.loc[(det, s, m), "value"] == pytest.approx(ref[m])
                lo, hi = M.percentile_interval(reps[s][m], 0.9)
                assert (idx.loc[(det, s, m), "lo"], idx.loc[(det, s, m), "hi"]) == pytest.approx((lo, hi))
        for m in M.METRICS:
            # near/far: unweighted means over the group's sets (not pooled, not size-weighted)
            near = (idx.loc[(det, "shirt", m), "value"] + idx.loc[(det, "bag", m), "value"]) / 2
            assert idx.loc[(det, "near", m), "value"] == pytest.approx(near)
            assert idx.loc[(det, "far", m), "value"] == pytest.approx(idx.loc[(det, "digits", m), "value"])
            assert (idx.loc[(det, "far", m), "lo"], idx.loc[(det, "far", m), "hi"]) == pytest.approx(
                (idx.loc[(det, "digits", m), "lo"], idx.loc[(det, "digits", m), "hi"])
            )
            lo, hi = M.percentile_interval((reps["shirt"][m] + reps["bag"][m]) / 2, 0.9)
            assert (idx.loc[(det, "near", m), "lo"], idx.loc[(det, "near", m), "hi"]) == pytest.approx((lo, hi))
        # the average of two sets is less uncertain than either set
        width = idx["hi"] - idx["lo"]
        assert width[(det, "near", "auroc")] < max(width[(det, "shirt", "auroc")], width[(det, "bag", "auroc")])


def test_summarize_is_independent_of_row_order():
    df = make_scores_df(seed=1)
    a = M.summarize(df, GROUPS, n_boot=50, seed=0)
    b = M.summarize(df.sample(frac=1.0, random_state=0), GROUPS, n_boot=50, seed=0)
    b = b.set_index(["detector", "set", "metric"]).loc[a.set_index(["detector", "set", "metric"]).index]
    np.testing.assert_allclose(a[["value", "lo", "hi"]].to_numpy(), b[["value", "lo", "hi"]].to_numpy())


def test_summarize_rejects_bad_input():
    df = make_scores_df()
    with pytest.raises(ValueError, match="group"):
        M.summarize(df, {"near": ["shirt", "nope"]}, n_boot=10)
    bad = df.copy()
    bad.loc[0, "is_ood"] = True
    with pytest.raises(ValueError, match="is_ood"):
        M.summarize(bad, GROUPS, n_boot=10)
    with pytest.raises(ValueError, match="columns"):
        M.summarize(df.drop(columns="is_ood"), GROUPS, n_boot=10)
    with pytest.raises(ValueError, match="collides"):
        M.summarize(df, {"bag": ["shirt"]}, n_boot=10)


def test_to_metrics_json():
    summary = M.summarize(make_scores_df(), GROUPS, n_boot=20)
    js = M.to_metrics_json(summary)
    assert set(js) == {"msp", "energy"}
    for det, sets in js.items():
        assert list(sets) == ["shirt", "bag", "digits", "near", "far"]
        for s, metrics in sets.items():
            assert list(metrics) == list(M.METRICS)
            for v in metrics.values():
                assert type(v) is float and 0.0 <= v <= 1.0 and round(v, 6) == v
    assert json.loads(json.dumps(js)) == js
    with pytest.raises(ValueError, match=r"not in \[0, 1\]"):
        M.to_metrics_json(summary.assign(value=1.5))


def test_average_precision_never_rounds_above_one() -> None:
    """Twenty distinct OOD scores above every ID score: twenty recall steps of 1/20 at precision 1,
    whose float sum is 1 + 2e-16 (a profile's smoke run stopped on it: metrics must lie in [0, 1])."""
    ids, oods = np.arange(5.0), 10.0 + np.arange(20.0)
    y, s = np.r_[np.zeros(5), np.ones(20)], np.r_[ids, oods]
    assert np.sum(np.full(20, 1.0) / 20) > 1.0  # the rounding this guards against
    assert M.aupr_out(ids, oods) == 1.0 == pytest.approx(average_precision_score(y, s))
    reps = M.bootstrap_samples(ids, {"far": oods}, n_boot=20, seed=0)["far"]["aupr_out"]
    assert (reps <= 1.0).all()
