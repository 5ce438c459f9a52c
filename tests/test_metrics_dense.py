"""Dense OOD metrics: pixel AP/FPR95/AUROC against scikit-learn, streaming and merging, SMIYC
component metrics on hand-built masks, bootstrap over images, tidy summaries."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from ood import metrics as M
from ood.metrics import ComponentMetrics, PixelMetrics

VOID = 255


def sk_pixel(maps, labels, tpr=0.95):
    """Reference pixel metrics: void pixels masked out, all images pooled, anomaly positive."""
    y = np.concatenate([np.asarray(lab).ravel()[np.asarray(lab).ravel() != VOID] for lab in labels])
    s = np.concatenate(
        [np.asarray(m, float).ravel()[np.asarray(lab).ravel() != VOID] for m, lab in zip(maps, labels)]
    )
    fpr, tpr_curve, _ = roc_curve(y, s, drop_intermediate=False)
    return {
        "ap": average_precision_score(y, s),
        "fpr95": fpr[np.argmax(tpr_curve >= tpr)],
        "auroc": roc_auc_score(y, s),
    }


def random_images(seed, n=6, shape=(32, 48), ranges=None, decimals=None, void=0.1, p_anomaly=0.2):
    """Score maps with a different range per image (exercises the adaptive lattice) and void."""
    rng = np.random.default_rng(seed)
    ranges = ranges or [(0.0, 1.0), (-5.0, 5.0), (10.0, 30.0), (-1.0, 0.0), (0.0, 2.9), (-20.0, 3.0)]
    maps, labels = [], []
    for i in range(n):
        lab = (rng.random(shape) < p_anomaly).astype(np.uint8)
        lab[rng.random(shape) < void] = VOID
        lo, hi = ranges[i % len(ranges)]
        # anomalies score higher on average, with overlap
        s = lo + (hi - lo) * np.clip(rng.beta(2, 5, shape) + 0.25 * (lab == 1), 0, 1)
        if decimals is not None:
            s = np.round(s, decimals)
        s[lab == VOID] = np.nan  # void scores are never looked at
        maps.append(s)
        labels.append(lab)
    return maps, labels


def fill(acc, maps, labels):
    for m, lab in zip(maps, labels):
        acc.update(m, lab)
    return acc


# --------------------------------------------------------------------------------------------
# pixel metrics against scikit-learn
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_path_equals_sklearn(seed):
    maps, labels = random_images(seed)
    got = fill(PixelMetrics(bins=None), maps, labels).compute()
    ref = sk_pixel(maps, labels)
    for k in M.PIXEL_METRICS:
        assert got[k] == pytest.approx(ref[k], abs=1e-9), k


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binned_path_within_1e3_and_within_its_bound(seed):
    maps, labels = random_images(seed)
    pm = fill(PixelMetrics(), maps, labels)
    got, bound = pm.compute(), pm.error_bound()
    ref = sk_pixel(maps, labels)
    for k in M.PIXEL_METRICS:
        assert abs(got[k] - ref[k]) <= 1e-3, k
        assert abs(got[k] - ref[k]) <= bound[k] + 1e-12, k
    # the lattice widened while images arrived: it spans [-20, 30] now, at its finest width
    assert pm._e is not None and pm._hist.shape[1] <= pm.bins


def test_binned_path_with_many_ties_is_exact():
    maps, labels = random_images(3, decimals=1)
    ref = sk_pixel(maps, labels)
    for bins in (None, 2**16):
        got = fill(PixelMetrics(bins), maps, labels).compute()
        for k in M.PIXEL_METRICS:
            assert got[k] == pytest.approx(ref[k], abs=1e-9), (bins, k)


def test_coarse_lattice_error_stays_within_bound():
    maps, labels = random_images(4, ranges=[(0, 1), (-1000, 1000)])  # one wide image squeezes the rest
    ref = sk_pixel(maps, labels)
    for bins in (64, 1024):
        pm = fill(PixelMetrics(bins), maps, labels)
        got, bound = pm.compute(), pm.error_bound()
        for k in M.PIXEL_METRICS:
            assert abs(got[k] - ref[k]) <= bound[k] + 1e-12, (bins, k)
    # the wide image coarsens the lattice for everyone (bins of width 2 for the [0, 1] image):
    # the binned AP/AUROC are far off, and the bound says so
    alone = fill(PixelMetrics(1024), maps[:1], labels[:1]).error_bound()
    stretched = fill(PixelMetrics(1024), maps[:2], labels[:2]).error_bound()
    assert stretched["ap"] > 0.1 > alone["ap"] and stretched["auroc"] > 0.1 > alone["auroc"]


def test_fpr95_convention_matches_image_metric():
    maps, labels = random_images(5, decimals=2)
    ids = np.concatenate([m[lab == 0] for m, lab in zip(maps, labels)])
    oods = np.concatenate([m[lab == 1] for m, lab in zip(maps, labels)])
    pm = fill(PixelMetrics(bins=None), maps, labels)
    assert pm.compute()["fpr95"] == M.fpr_at_tpr(ids, oods)
    assert pm.compute()["ap"] == pytest.approx(M.aupr_out(ids, oods), abs=1e-12)
    assert pm.compute()["auroc"] == pytest.approx(M.auroc(ids, oods), abs=1e-12)


def test_infinite_scores_are_ordered_exactly():
    maps, labels = random_images(6)
    maps[0][labels[0] == 1] = np.inf
    maps[1][:4][labels[1][:4] == 0] = -np.inf
    maps[2][:2][labels[2][:2] == 0] = np.inf
    exact = fill(PixelMetrics(None), maps, labels).compute()
    binned = fill(PixelMetrics(), maps, labels).compute()
    for k in M.PIXEL_METRICS:
        assert binned[k] == pytest.approx(exact[k], abs=1e-3), k


def test_input_validation_and_void_handling():
    s = np.zeros((4, 4))
    lab = np.zeros((4, 4), np.uint8)
    with pytest.raises(ValueError, match="0 \\(inlier\\), 1 \\(anomaly\\) or 255"):
        PixelMetrics().update(s, lab + 2)
    bad = s.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        PixelMetrics().update(bad, lab)
    lab[0, 0] = VOID
    PixelMetrics().update(bad, lab)  # NaN on void is fine
    with pytest.raises(ValueError, match="shape"):
        PixelMetrics().update(s, lab[:2])
    with pytest.raises(ValueError, match="anomaly pixels"):
        PixelMetrics().update(s, lab).compute()


def test_torch_inputs_and_batches():
    maps, labels = random_images(7, n=4)
    maps = [np.nan_to_num(m) for m in maps]
    ref = fill(PixelMetrics(), maps, labels).compute()
    batch = PixelMetrics().update(torch.tensor(np.stack(maps), dtype=torch.float64), torch.tensor(np.stack(labels)))
    assert batch.n_images == 4
    assert batch.compute() == ref
    half = PixelMetrics(None).update(torch.tensor(np.stack(maps)).half(), torch.tensor(np.stack(labels)).long())
    f16 = [m.astype(np.float16) for m in maps]
    assert half.compute() == pytest.approx(sk_pixel(f16, labels), abs=1e-9)


# --------------------------------------------------------------------------------------------
# streaming
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bins", [None, 2**16, 256])
def test_streaming_equals_all_at_once_in_any_order(bins):
    maps, labels = random_images(8, shape=(24, 24))
    maps = [np.nan_to_num(m) for m in maps]
    one_by_one = fill(PixelMetrics(bins), maps, labels)
    at_once = PixelMetrics(bins).update(np.stack(maps), np.stack(labels))
    reverse = fill(PixelMetrics(bins), maps[::-1], labels[::-1])
    halves = PixelMetrics.merged(
        fill(PixelMetrics(bins), maps[:3], labels[:3]), fill(PixelMetrics(bins), maps[3:], labels[3:])
    )
    ref = one_by_one.compute()
    for other in (at_once, reverse, halves):
        assert other.compute() == ref
        assert other.n_images == len(maps)
    if bins is not None:  # the very same histogram, whatever the order
        for other in (at_once, reverse, halves):
            assert (other._e, other._k0) == (one_by_one._e, one_by_one._k0)
            np.testing.assert_array_equal(other._hist, one_by_one._hist)
    assert at_once.bootstrap_samples(20, seed=3)["ap"].tolist() == halves.bootstrap_samples(20, seed=3)["ap"].tolist()


# --------------------------------------------------------------------------------------------
# best-F1 threshold (SMIYC's threshold for the component metrics)
# --------------------------------------------------------------------------------------------
def test_best_f1_threshold_is_the_brute_force_maximiser():
    maps, labels = random_images(9, decimals=2, n=3)
    s = np.concatenate([m[lab != VOID] for m, lab in zip(maps, labels)])
    y = np.concatenate([lab[lab != VOID] for lab in labels]) == 1
    cand = np.unique(s)[::-1]
    f1 = [2 * np.sum(y & (s >= t)) / (np.sum(s >= t) + y.sum()) for t in cand]
    best = cand[int(np.argmax(f1))]
    assert PixelMetrics(None).update(maps[0], labels[0]).update(maps[1], labels[1]).update(
        maps[2], labels[2]
    ).best_f1_threshold() == best
    assert fill(PixelMetrics(), maps, labels).best_f1_threshold() == pytest.approx(best, abs=0.01)


# --------------------------------------------------------------------------------------------
# component metrics on hand-built masks
# --------------------------------------------------------------------------------------------
def scene_a():
    """10 x 20 image; score 1 = predicted anomaly (threshold 0.5).

    Ground truth: G1 = rows 1-3 x cols 1-4 (12 px), G2 = rows 1-3 x cols 6-9 (12 px), separated by
    the inlier column 5. Prediction P1 = rows 1-3 x cols 1-7 (21 px): all of G1, the gap column,
    half of G2. P2 = rows 6-7 x cols 12-14 (6 px) and P2b = rows 6-7 x cols 16-17 (4 px) on
    inlier road, separated by void column 15 that also scores 1: void is dropped before the
    connected components, so they stay two components (joined they would be one of 12 px).
    A void block rows 6-8 x cols 0-3 scores 1 too and is ignored.

    sIoU(G1): P(G1) = P1; |G1 ∩ P1| = 12; A(G1) = P1 ∩ G2 = 6 px;
              |(G1 ∪ P1) \\ A| = 21 - 6 = 15  ->  12/15 = 0.8   (plain IoU 12/21)
    sIoU(G2): |G2 ∩ P1| = 6; A(G2) = P1 ∩ G1 = 12 px;
              |(G2 ∪ P1) \\ A| = (12 + 21 - 6) - 12 = 15  ->  6/15 = 0.4   (plain IoU 6/27)
    PPV(P1) = 18/21 = 6/7, PPV(P2) = PPV(P2b) = 0.
    """
    lab = np.zeros((10, 20), np.uint8)
    s = np.zeros((10, 20))
    lab[1:4, 1:5] = 1
    lab[1:4, 6:10] = 1
    s[1:4, 1:8] = 1
    s[6:8, 12:15] = 1
    s[6:8, 16:18] = 1
    lab[6:8, 15] = VOID
    s[6:8, 15] = 1
    lab[6:9, 0:4] = VOID
    s[6:9, 0:4] = 1
    return s, lab


def scene_b():
    """8 x 8 image without anomalies: one predicted blob P3 (2 x 2 = 4 px, PPV 0) and a void corner."""
    lab = np.zeros((8, 8), np.uint8)
    s = np.zeros((8, 8))
    s[2:4, 2:4] = 1
    lab[6:, 6:] = VOID
    return s, lab


def test_component_metrics_hand_built():
    cm = ComponentMetrics(0.5, min_size=0, min_gt_size=0)
    cm.update(*scene_a()).update(*scene_b())
    comp = cm.components()
    np.testing.assert_allclose(comp["siou"][0], [0.8, 0.4])
    np.testing.assert_allclose(comp["ppv"][0], [6 / 7, 0, 0])
    assert comp["siou"][1].size == 0 and comp["ppv"][1].tolist() == [0.0]  # only an FP
    # per tau (paper rule: TP if sIoU > tau, FP if PPV <= tau): FP = P2, P2b, P3 at every tau
    #   tau in {0.25, 0.30, 0.35}: TP 2 (G1, G2), FN 0, FP 3 -> F1 = 4/7
    #   tau in {0.40, ..., 0.75}:  TP 1 (G1),     FN 1, FP 3 -> F1 = 2/6  (sIoU(G2) = 0.4 is not > 0.4)
    got = cm.compute()
    assert got["siou"] == pytest.approx((0.8 + 0.4) / 2)
    assert got["ppv"] == pytest.approx((6 / 7) / 4)
    assert got["mean_f1"] == pytest.approx((3 * 4 / 7 + 8 * 2 / 6) / 11)
    per = cm.per_tau()
    assert per["tp"].tolist() == [2] * 3 + [1] * 8
    assert per["fn"].tolist() == [0] * 3 + [1] * 8
    assert per["fp"].tolist() == [3] * 11


def test_component_tau_rule_of_the_benchmark_code():
    # code rule (TP if sIoU >= tau, FP if PPV < tau): sIoU(G2) = 0.4 is a TP at tau = 0.40 too
    cm = ComponentMetrics(0.5, min_size=0, min_gt_size=0, tau_rule="code").update(*scene_a()).update(*scene_b())
    assert cm.per_tau()["tp"].tolist() == [2] * 4 + [1] * 7
    assert cm.compute()["mean_f1"] == pytest.approx((4 * 4 / 7 + 7 * 2 / 6) / 11)


def test_component_min_size_removes_small_predictions():
    # min_size 5: P2b (4 px) and P3 (4 px) are dropped; P2 (6 px) stays the only FP
    #   taus 0.25-0.35: F1 = 4/(4+0+1); taus 0.40-0.75: F1 = 2/(2+1+1)
    cm = ComponentMetrics(0.5, min_size=5, min_gt_size=0).update(*scene_a()).update(*scene_b())
    got = cm.compute()
    assert got["ppv"] == pytest.approx((6 / 7) / 2)
    assert got["mean_f1"] == pytest.approx((3 * 0.8 + 8 * 0.5) / 11)


def test_component_small_ground_truth_becomes_void():
    # G_small = 3 px, G_big = rows 4-6 x cols 4-7 (12 px); min_gt_size 10 voids G_small.
    # P_a = exactly G_small: no valid pixel left -> neither TP nor FP.
    # P_b = G_big plus one column (rows 4-6 x cols 4-8, 15 px): sIoU = 12/15, PPV = 12/15.
    lab = np.zeros((10, 12), np.uint8)
    s = np.zeros((10, 12))
    lab[1, 1:4] = 1
    s[1, 1:4] = 1
    lab[4:7, 4:8] = 1
    s[4:7, 4:9] = 1
    cm = ComponentMetrics(0.5, min_size=0, min_gt_size=10).update(s, lab)
    assert cm.components()["siou"][0].tolist() == [pytest.approx(0.8)]
    assert cm.components()["ppv"][0].tolist() == [pytest.approx(0.8)]
    assert cm.compute()["mean_f1"] == pytest.approx(1.0)  # 0.8 > every tau, no FP
    # without the size rule G_small is a perfect TP of its own
    cm0 = ComponentMetrics(0.5, min_size=0, min_gt_size=0).update(s, lab)
    assert sorted(cm0.components()["siou"][0].tolist()) == [pytest.approx(0.8), 1.0]


def test_component_connectivity_and_threshold_convention():
    lab = np.zeros((6, 6), np.uint8)
    lab[1, 1] = lab[2, 2] = 1  # diagonal neighbours
    s = lab.astype(float) * 0.7
    assert ComponentMetrics(0.7, min_size=0, min_gt_size=0).update(s, lab).components()["siou"][0].tolist() == [1.0]
    four = ComponentMetrics(0.7, min_size=0, min_gt_size=0, connectivity=4).update(s, lab)
    assert four.components()["siou"][0].tolist() == [1.0, 1.0]
    # score >= threshold is predicted; just above it nothing is
    above = ComponentMetrics(np.nextafter(0.7, 1), min_size=0, min_gt_size=0).update(s, lab)
    assert above.compute()["siou"] == 0.0 and np.isnan(above.compute()["ppv"])


def test_component_official_defaults():
    cm = ComponentMetrics(0.5)
    assert (cm.min_size, cm.min_gt_size, cm.connectivity) == (500, 100, 8)
    assert cm.taus == (0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75)
    assert M.SMIYC_TRACKS["obstacle"] == {"min_size": 50, "min_gt_size": 10}


# --------------------------------------------------------------------------------------------
# bootstrap over images
# --------------------------------------------------------------------------------------------
def test_pixel_bootstrap_exact_replicates_are_resampled_images():
    maps, labels = random_images(10, n=5)
    pm = fill(PixelMetrics(None), maps, labels)
    reps = pm.bootstrap_samples(n_boot=4, seed=7, key="near")
    idx = np.random.default_rng([7, zlib.crc32(b"near")]).integers(0, 5, size=(4, 5))
    for b in range(4):
        ref = sk_pixel([maps[i] for i in idx[b]], [labels[i] for i in idx[b]])
        for k in M.PIXEL_METRICS:
            assert reps[k][b] == pytest.approx(ref[k], abs=1e-9), (b, k)


def test_pixel_bootstrap_interval_and_seed():
    maps, labels = random_images(11, n=12)
    for bins in (None, 2**16):
        pm = fill(PixelMetrics(bins), maps, labels)
        point = pm.compute()
        ci = pm.bootstrap(n_boot=200, level=0.95, seed=0)
        for k in M.PIXEL_METRICS:
            assert ci[k][0] <= point[k] <= ci[k][1], (bins, k)
            assert 0 <= ci[k][0] < ci[k][1] <= 1
        assert pm.bootstrap(n_boot=200, seed=0) == ci
        assert pm.bootstrap(n_boot=200, seed=1) != ci
    # binned replicates track the exact ones: they are computed on the per-image lattice (here
    # 4096 bins over [-20, 30], so the [0, 1] images get ~80 bins) and re-centred on the point
    # estimate; the error is of the order of the coarse lattice's bound. Even at full resolution
    # (image_bins = bins) a resample is evaluated on the whole data's lattice (2**-10 here).
    exact = fill(PixelMetrics(None), maps, labels).bootstrap_samples(50, seed=2)
    binned = fill(PixelMetrics(), maps, labels).bootstrap_samples(50, seed=2)
    fine = fill(PixelMetrics(image_bins=2**16), maps, labels).bootstrap_samples(50, seed=2)
    for k in M.PIXEL_METRICS:
        assert np.max(np.abs(exact[k] - binned[k])) < 5e-3, k
        assert np.max(np.abs(exact[k] - fine[k])) < 2e-3, k
        assert np.mean(np.abs(exact[k] - binned[k])) < 1e-3, k


def test_component_bootstrap_interval_seed_and_pairing():
    rng = np.random.default_rng(12)
    scenes = [scene_a(), scene_b()] * 3
    scenes = [(np.where(rng.random(s.shape) < 0.02, 1.0, s), lab) for s, lab in scenes]  # speckle FPs
    cm = ComponentMetrics(0.5, min_size=0, min_gt_size=0)
    for s, lab in scenes:
        cm.update(s, lab)
    point = cm.compute()
    ci = cm.bootstrap(n_boot=200, seed=0)
    for k in M.COMPONENT_METRICS:
        assert ci[k][0] <= point[k] <= ci[k][1], k
    assert cm.bootstrap(n_boot=200, seed=0) == ci
    # a resample that drew only copies of scene_b has no ground-truth component: sIoU is NaN there
    # (and dropped from the interval), PPV and F1 stay defined
    idx = np.random.default_rng([0, zlib.crc32(b"dense")]).integers(0, len(scenes), size=(500, len(scenes)))
    reps = cm.bootstrap_samples(500, seed=0)
    no_gt = (idx % 2 == 1).all(axis=1)  # scene_b sits at the odd positions
    assert no_gt.any()
    np.testing.assert_array_equal(np.isnan(reps["siou"]), no_gt)
    assert not np.isnan(reps["ppv"]).any() and not np.isnan(reps["mean_f1"]).any()
    # replicate b recomputes the metrics on the images drawn (the stream the pixel metrics use too)
    reps_c = cm.bootstrap_samples(5, seed=0)
    for b in range(5):
        manual = ComponentMetrics(0.5, min_size=0, min_gt_size=0)
        for i in idx[b]:
            manual.update(*scenes[i])
        np.testing.assert_allclose([reps_c[k][b] for k in M.COMPONENT_METRICS], list(manual.compute().values()))


# --------------------------------------------------------------------------------------------
# convenience and summaries
# --------------------------------------------------------------------------------------------
def test_dense_metrics_uses_the_best_f1_threshold():
    maps, labels = random_images(13, n=4, shape=(30, 30), ranges=[(0, 1)], void=0.0)
    maps = [np.where(lab == 1, m + 3.0, m) for m, lab in zip(maps, labels)]  # separable
    pm, cm = M.dense_accumulators(maps, labels, min_size=0, min_gt_size=0)
    assert cm.threshold == pm.best_f1_threshold()
    got = M.dense_metrics(maps, labels, min_size=0, min_gt_size=0)
    assert set(got) == set(M.DENSE_METRICS)
    assert got["ap"] == pytest.approx(1.0) and got["fpr95"] == 0.0 and got["auroc"] == pytest.approx(1.0)
    assert got == {**pm.compute(), **cm.compute()}
    fixed = M.dense_metrics(np.stack(maps), np.stack(labels), threshold=1e9, min_size=0, min_gt_size=0)
    assert fixed["siou"] == 0.0 and fixed["mean_f1"] == 0.0


def test_summarize_dense_shape_and_metrics_json():
    sets = {}
    for i, name in enumerate(["near", "far"]):
        maps, labels = random_images(20 + i, n=4, void=0.05)
        maps = [np.nan_to_num(m) for m in maps]
        sets[name] = M.dense_accumulators(maps, labels, min_size=0, min_gt_size=0, threshold=0.0)
    sets["all"] = (  # pooled images, not a mean
        PixelMetrics.merged(sets["near"][0], sets["far"][0]),
        ComponentMetrics.merged(sets["near"][1], sets["far"][1]),
    )
    df = M.summarize_dense(sets, detector="energy", n_boot=50, seed=0)
    assert list(df.columns) == M.SUMMARY_COLUMNS
    assert len(df) == 3 * 6
    assert df["metric"].tolist()[:6] == list(M.DENSE_METRICS)
    assert ((df["lo"] <= df["value"] + 1e-12) & (df["value"] <= df["hi"] + 1e-12)).all()
    js = M.to_metrics_json(df)
    assert set(js["energy"]) == {"near", "far", "all"} and set(js["energy"]["all"]) == set(M.DENSE_METRICS)
    json.dumps(js)
    # nested form, groups, and pairing across detectors
    nested = M.summarize_dense({"a": sets, "b": sets}, groups={"mean": ["near", "far"]}, n_boot=50, seed=0)
    a, b = nested[nested.detector == "a"].reset_index(drop=True), nested[nested.detector == "b"].reset_index(drop=True)
    pd.testing.assert_frame_equal(a.drop(columns="detector"), b.drop(columns="detector"))
    mean_ap = a[(a.set == "mean") & (a.metric == "ap")]["value"].item()
    assert mean_ap == pytest.approx((js["energy"]["near"]["ap"] + js["energy"]["far"]["ap"]) / 2, abs=1e-6)
    # pixel metrics alone
    only_px = M.summarize_dense({"near": (sets["near"][0], None)}, detector="msp", n_boot=10)
    assert only_px["metric"].tolist() == list(M.PIXEL_METRICS)
    with pytest.raises(ValueError, match="detector="):
        M.summarize_dense(sets)


def test_mean_iou_by_hand_and_against_sklearn() -> None:
    from sklearn.metrics import jaccard_score

    from ood.metrics import iou_per_class, mean_iou, pixel_confusion

    target = np.array([[0, 0, 1, 1], [2, 2, 255, 1]])
    pred = np.array([[0, 1, 1, 1], [2, 0, 2, 1]])
    conf = pixel_confusion(pred, target, 3)
    # class 0: TP 1, FP 1 (true 2 -> 0), FN 1 (true 0 -> 1): 1/3; class 1: TP 3, FP 1, FN 0: 3/4;
    # class 2: TP 1, FN 1 (void pixel ignored): 1/2
    assert np.allclose(iou_per_class(conf), [1 / 3, 3 / 4, 1 / 2])
    assert mean_iou(conf) == pytest.approx((1 / 3 + 3 / 4 + 1 / 2) / 3)
    keep = target != 255
    assert mean_iou(conf) == pytest.approx(jaccard_score(target[keep], pred[keep], average="macro"))
