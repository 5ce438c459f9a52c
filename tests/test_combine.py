"""Combinations and paired comparisons in `summarize`: the `trust` rule (DiffGuard's "trust the
baseline where it is confident"), restriction to the images both parts scored (subsets), and
paired AUROC differences checked against scikit-learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from ood.metrics import best_baselines
from ood.pipeline.summarize import combine, comparison_pairs, paired_differences, reference_comparisons


def tidy(detector: str, sets: dict[str, np.ndarray]) -> pd.DataFrame:
    return pd.concat([pd.DataFrame({"benchmark": "toy", "detector": detector, "set": s, "index": np.arange(len(v)),
                                    "score": v, "is_ood": s not in ("id", "val")}) for s, v in sets.items()],
                     ignore_index=True)


def scores(seed: int = 0, n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    b = {"val": rng.normal(0, 1, n), "id": rng.normal(0, 1, n), "near": rng.normal(0.5, 1, n), "far": rng.normal(2, 1, n)}
    a = {k: v + rng.normal(0, 1, n) * 0.5 + (0.7 if k in ("near", "far") else 0) for k, v in b.items()}
    return pd.concat([tidy("a", a), tidy("b", b)], ignore_index=True)


def test_trust_lets_b_decide_outside_its_validation_band_and_a_inside() -> None:
    df = scores()
    out = combine(df, "a+b", "trust", band=(0.5, 0.95)).set_index(["set", "index"])["score"]
    b = df[df.detector == "b"].set_index(["set", "index"])["score"]
    lo, hi = np.quantile(b.loc["val"], [0.5, 0.95])  # thresholds from b's ID validation scores only
    assert (out[b > hi] > 1).all() and (out[b < lo] < -1).all() and (out[(b >= lo) & (b <= hi)].abs() < 0.5).all()
    # inside the band the order is a's; on each side, b's
    a = df[df.detector == "a"].set_index(["set", "index"])["score"]
    inside = (b >= lo) & (b <= hi)
    assert (np.argsort(out[inside].to_numpy()) == np.argsort(a[inside].to_numpy())).all()
    assert (np.argsort(out[b > hi].to_numpy()) == np.argsort(b[b > hi].to_numpy())).all()
    # OOD scores do not move the thresholds: shifting every far score of b changes only far rows
    shifted = df.copy()
    shifted.loc[(shifted.detector == "b") & (shifted.set == "far"), "score"] += 10
    moved = combine(shifted, "a+b", "trust", band=(0.5, 0.95)).set_index(["set", "index"])["score"]
    pd.testing.assert_series_equal(moved.drop("far", level="set"), out.drop("far", level="set"))


def test_a_part_scored_on_a_subset_restricts_the_other() -> None:
    df = scores()
    keep = (df.detector == "b") | df["index"].isin(range(0, 200, 4))  # a scored every 4th image only
    out = combine(df[keep], "a+b", "zmean")
    assert set(out["index"]) == set(range(0, 200, 4)) and len(out) == 4 * 50
    with pytest.raises(ValueError, match="no image in common"):
        combine(df.assign(index=df["index"] + np.where(df.detector == "a", 1000, 0)), "a+b")  # disjoint images


def test_paired_differences_match_sklearn_on_common_images() -> None:
    df = scores()
    df = df[(df.detector == "b") | df["index"].isin(range(100))]  # a on a subset of 100 per set
    groups = {"ood": ["near", "far"]}
    out = paired_differences(df, [("a", "b", t, "r") for t in ("near", "far", "ood")], groups, n_boot=100).set_index("set")
    common = lambda d, s: df[(df.detector == d) & (df.set == s) & (df["index"] < 100)]["score"].to_numpy()  # noqa: E731
    for s in ("near", "far"):
        auc = {d: roc_auc_score(np.r_[np.zeros(100), np.ones(100)], np.r_[common(d, "id"), common(d, s)]) for d in "ab"}
        assert out.loc[s, "diff"] == pytest.approx(auc["a"] - auc["b"], abs=1e-9)
        assert out.loc[s, "lo"] <= out.loc[s, "diff"] <= out.loc[s, "hi"] and out.loc[s, "n_ood"] == 100
    assert out.loc["ood", "diff"] == pytest.approx((out.loc["near", "diff"] + out.loc["far", "diff"]) / 2)
    assert (out["p"] < 0.05).all() and (out["se"] > 0).all()  # a is better by construction
    same = paired_differences(pd.concat([df, df[df.detector == "b"].assign(detector="c")]), [("b", "c", "near", "r")], {},
                              n_boot=50)
    assert (same[["diff", "lo", "hi", "se"]].abs().to_numpy() < 1e-12).all()  # identical detectors: a degenerate interval
    assert same["p"].item() == 1.0


def test_paired_differences_reuse_the_summary_replicates_without_changing_them() -> None:
    import ood.metrics as M

    df = scores()
    groups = {"ood": ["near", "far"]}
    test = df[df.set != "val"]
    reps: dict = {}
    M.summarize(test, groups, n_boot=40, seed=3, replicates=reps)
    wanted = [("a", "b", t, "r") for t in ("near", "far", "ood")]
    pd.testing.assert_frame_equal(paired_differences(test, wanted, groups, n_boot=40, seed=3, replicates=reps),
                                  paired_differences(test, wanted, groups, n_boot=40, seed=3))


def test_every_detector_meets_msp_and_the_best_baseline_of_its_group() -> None:
    summary = pd.DataFrame([(d, s, "auroc", v, v, v) for d, s, v in [
        ("msp", "near", 0.6), ("knn", "near", 0.7), ("vim", "near", 0.65), ("msp", "far", 0.9), ("knn", "far", 0.8),
        ("vim", "far", 0.95), ("method", "near", 0.9), ("method", "far", 0.99)]],
        columns=["detector", "set", "metric", "value", "lo", "hi"])
    best = best_baselines(summary, ["msp", "knn", "vim"], ["near", "far"], "auroc")
    assert best == {"near": "knn", "far": "vim"}  # the method is not a baseline, so never "best"
    fpr = summary.assign(metric="fpr95")
    assert best_baselines(fpr, ["msp", "knn", "vim"], ["near"], "fpr95") == {"near": "msp"}  # lower is better
    rows = reference_comparisons(["msp", "knn", "vim", "method", "method+msp"], best, {"near": ["n1"], "far": ["f1"]},
                                 ["method+msp"])
    got = {(a, b, t): r for a, b, t, r in rows}
    assert len(got) == len(rows)  # each pair and target once
    assert got["method", "msp", "near"] == "vs MSP; combination part" and got["method", "knn", "n1"] == "vs best baseline"
    assert got["method", "vim", "far"] == "vs best baseline" and ("method", "knn", "far") not in got
    assert got["method+msp", "msp", "f1"] == "vs MSP; combination part"
    assert ("msp", "msp", "near") not in got and got["msp", "knn", "near"] == "vs best baseline"


def test_comparison_pairs_are_what_the_combinations_claim() -> None:
    assert comparison_pairs(["diffguard+msp", "diffguard+energy", "moodcat+msp"]) == [
        ("diffguard+msp", "msp"), ("diffguard", "msp"), ("diffguard+energy", "energy"), ("diffguard", "energy"),
        ("moodcat+msp", "msp"), ("moodcat", "msp")]
