"""Paired tests (ood.metrics.paired): DeLong against the pairwise definition of DeLong et al. (1988)
and against a paired bootstrap, Holm by hand, and the dense paired differences of `summarize`
against scikit-learn on the same pixels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import average_precision_score, roc_auc_score

import ood.metrics as M
from ood.pipeline.summarize import dense_paired_differences


def correlated(seed: int, n_id: int, n_ood: int, shift: float = 0.8, ties: bool = False):
    """Two detectors that share most of their signal (so their AUROCs are correlated)."""
    rng = np.random.default_rng(seed)
    ida, oa = rng.normal(size=n_id), rng.normal(shift, 1, size=n_ood)
    idb, ob = ida + 0.6 * rng.normal(size=n_id), oa + 0.6 * rng.normal(size=n_ood) - 0.2
    if ties:
        ida, oa, idb, ob = (np.round(x) for x in (ida, oa, idb, ob))
    return ida, oa, idb, ob


def delong_by_definition(ida, oa, idb, ob):
    """DeLong et al. (1988), eqs. (3)-(5), from the n·m kernel ψ: placements, the 2x2 covariance
    matrices S10 / S01, and the variance of the contrast (1, -1)."""
    def psi(o, i):
        return (o[:, None] > i[None, :]) + 0.5 * (o[:, None] == i[None, :])
    pa, pb = psi(oa, ida), psi(ob, idb)
    v10 = np.stack([pa.mean(1), pb.mean(1)])  # per OOD sample
    v01 = np.stack([pa.mean(0), pb.mean(0)])  # per ID sample
    s10, s01 = np.cov(v10), np.cov(v01)
    contrast = np.array([1.0, -1.0])
    var = contrast @ s10 @ contrast / oa.size + contrast @ s01 @ contrast / ida.size
    diff = pa.mean() - pb.mean()
    return diff, np.sqrt(var), 2 * stats.norm.sf(abs(diff) / np.sqrt(var))


@pytest.mark.parametrize("ties", [False, True])
def test_delong_equals_the_pairwise_definition(ties: bool) -> None:
    ida, oa, idb, ob = correlated(0, 150, 90, ties=ties)
    auc, v_ood, v_id = M.delong_placements(ida, oa)
    y = np.r_[np.zeros(ida.size), np.ones(oa.size)]
    assert auc == pytest.approx(roc_auc_score(y, np.r_[ida, oa]), abs=1e-12) == pytest.approx(v_id.mean(), abs=1e-12)
    diff, se, p = M.delong_test(ida, {"s": oa}, idb, {"s": ob})
    ref = delong_by_definition(ida, oa, idb, ob)
    assert (diff, se, p) == pytest.approx(ref, rel=1e-9, abs=1e-12)


def test_delong_standard_error_agrees_with_a_paired_bootstrap() -> None:
    ida, oa, idb, ob = correlated(1, 400, 300)
    _, se, _ = M.delong_test(ida, {"s": oa}, idb, {"s": ob})
    reps_a = M.bootstrap_samples(ida, {"s": oa}, n_boot=1500, seed=0)["s"]["auroc"]
    reps_b = M.bootstrap_samples(idb, {"s": ob}, n_boot=1500, seed=0)["s"]["auroc"]
    assert se == pytest.approx(np.std(reps_a - reps_b, ddof=1), rel=0.12)


def test_delong_of_a_group_average_shares_the_id_samples() -> None:
    """The mean over two OOD sets scored against one ID set: the difference is the mean of the
    sets' differences, and its variance is the bootstrap's (ID resampled once for both sets),
    which is more than treating the sets as if they had separate ID samples would give."""
    ida, oa, idb, ob = correlated(2, 400, 250)
    rng = np.random.default_rng(5)
    oa2 = rng.normal(2.0, 1, 250)
    ob2 = oa2 + 0.6 * rng.normal(size=250)
    diff, se, _ = M.delong_test(ida, {"s": oa, "t": oa2}, idb, {"s": ob, "t": ob2})
    d1, se1, _ = M.delong_test(ida, {"s": oa}, idb, {"s": ob})
    d2, se2, _ = M.delong_test(ida, {"t": oa2}, idb, {"t": ob2})
    assert diff == pytest.approx((d1 + d2) / 2)
    reps = {k: M.bootstrap_samples(i, {"s": o1, "t": o2}, n_boot=1500, seed=1)
            for k, (i, o1, o2) in {"a": (ida, oa, oa2), "b": (idb, ob, ob2)}.items()}
    boot = (reps["a"]["s"]["auroc"] + reps["a"]["t"]["auroc"] - reps["b"]["s"]["auroc"] - reps["b"]["t"]["auroc"]) / 2
    assert se == pytest.approx(np.std(boot, ddof=1), rel=0.12)
    assert se > np.hypot(se1, se2) / 2  # as if the two sets had their own ID samples


def test_delong_of_identical_detectors_is_not_significant_and_mismatched_samples_fail() -> None:
    ida, oa, _, _ = correlated(3, 50, 40)
    assert M.delong_test(ida, {"s": oa}, ida.copy(), {"s": oa.copy()}) == (0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="same samples"):
        M.delong_test(ida, {"s": oa}, ida[:-1], {"s": oa})


def test_holm_by_hand() -> None:
    # sorted: .005*4 = .02, .01*3 = .03, .03*2 = .06, .04*1 = .04 -> .06 (monotone), back in input order
    assert M.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert M.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert M.holm([]).size == 0
    with pytest.raises(ValueError, match="NaN"):
        M.holm([0.1, np.nan])


def test_bootstrap_p_is_the_normal_p_of_the_bootstrap_standard_error() -> None:
    reps = np.random.default_rng(0).normal(0.1, 0.05, 500)
    assert M.bootstrap_p(0.1, reps) == pytest.approx(2 * stats.norm.sf(0.1 / reps.std(ddof=1)))
    assert M.bootstrap_p(0.0, np.zeros(10)) == 1.0


def dense_maps(seed: int, n: int = 12, size: int = 16):
    rng = np.random.default_rng(seed)
    label = np.zeros((n, size, size), np.uint8)
    label[:, 4:9, 4:9] = 1
    label[:, 0, :] = 255  # void row, ignored
    good = rng.normal(size=label.shape) + 1.5 * (label == 1)
    poor = good + rng.normal(size=label.shape) * 1.5
    return label, good.astype(np.float32), poor.astype(np.float32)


def test_dense_paired_differences_match_sklearn_and_resample_scenes_alike() -> None:
    label, good, poor = dense_maps(0)
    acc = {}
    for name, maps in (("good", good), ("poor", poor)):
        pm = M.PixelMetrics(None)  # exact: values equal sklearn's
        for i in range(0, len(label), 4):
            pm.update(maps[i : i + 4], label[i : i + 4])
        acc[name] = {"near": pm}
    out = dense_paired_differences(acc, [("good", "poor", "near", "vs MSP"), ("good", "good", "near", "same")],
                                   n_boot=100, seed=0).set_index(["b", "metric"])
    valid = label != 255
    y = label[valid] == 1
    ap = {k: average_precision_score(y, m[valid]) for k, m in (("good", good), ("poor", poor))}
    row = out.loc[("poor", "ap")]
    assert row["diff"] == pytest.approx(ap["good"] - ap["poor"], abs=1e-9) and row["lo"] <= row["diff"] <= row["hi"]
    assert row["p"] < 0.05 and row["n_images"] == len(label)
    same = out.loc[("good", "ap")]  # the same scenes drawn for both: a zero difference in every replicate
    assert same["diff"] == 0 and same["lo"] == same["hi"] == 0 and same["p"] == 1.0
    assert set(pd.unique(out.index.get_level_values("metric"))) == {"ap", "fpr95"}


def test_a_subset_detector_is_ranked_only_among_detectors_on_its_images() -> None:
    """`subset_summaries`: every detector restricted to the images a subset detector scored (and only
    those that have them all), each value equal to sklearn's AUROC on exactly those images."""
    from ood.pipeline.summarize import subset_summaries

    rng = np.random.default_rng(0)
    rows = []
    for det, shift in (("msp", 0.5), ("knn", 1.0)):
        for s, n, mu in (("id", 60, 0.0), ("a", 40, shift), ("b", 40, 2 * shift)):
            rows += [(det, s, i, float(x), s != "id") for i, x in enumerate(rng.normal(mu, 1, n))]
    scores = pd.DataFrame(rows, columns=["detector", "set", "index", "score", "is_ood"])
    keep = {"id": [1, 5, 7, 20, 33, 40, 59], "a": [0, 3, 9, 11], "b": [2, 4, 6, 8, 39]}
    sub = pd.concat([scores[(scores["detector"] == "msp") & (scores["set"] == s) & scores["index"].isin(i)] for s, i in keep.items()])
    partial = scores[(scores["detector"] == "knn") & (scores["set"] != "b")]  # lacks set b: not in the company
    scores = pd.concat([scores, sub.assign(detector="dg", score=sub["score"] * -1.0), partial.assign(detector="half")])
    out = subset_summaries(scores, {"near": ["a"], "far": ["b"]}, n_boot=20)
    assert set(out["subset"]) == {"dg", "half"}
    dg = out[out["subset"] == "dg"].set_index(["detector", "set", "metric"])
    assert set(dg.index.get_level_values(0)) == {"msp", "knn", "dg"}  # not "half": it lacks those images in b
    assert dg["member"].groupby(level=0).first().to_dict() == {"dg": True, "knn": False, "msp": False}
    for det in ("msp", "knn", "dg"):
        mine = scores[scores["detector"] == det]
        ids = mine[(mine["set"] == "id") & mine["index"].isin(keep["id"])]["score"]
        ood = mine[(mine["set"] == "a") & mine["index"].isin(keep["a"])]["score"]
        want = roc_auc_score(np.r_[np.zeros(len(ids)), np.ones(len(ood))], np.r_[ids, ood])
        assert dg.loc[(det, "a", "auroc"), "value"] == pytest.approx(want)
    assert subset_summaries(scores[scores["detector"].isin(["msp", "knn"])], {"near": ["a"]}, n_boot=20).empty
