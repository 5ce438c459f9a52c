"""The ``summarize`` stage: every scores file -> summary tables with CIs and ``reports/metrics.json``.

``python -m ood.pipeline.summarize`` (what dvc runs) reads only files written by the scoring stages:

* image benchmark: ``reports/scores/<benchmark>/<stage>.csv`` (tidy per-image scores; rows of
  ``set == "val"`` are ID validation images, used to fit combinations and never in metrics);
* dense benchmarks (the dense benchmark, and ``<benchmark>_loc``, localisation): the tidy summaries
  ``reports/<dense>/<stage>_summary.csv`` written by each dense scoring stage, which streams its
  per-pixel maps to ``reports/scores/<dense>/<stage>.npz`` (recomputing dense metrics means a
  pass over every map, so it happens once, where the maps are made);
* the networks' quality: ``reports/<benchmark>/classifier.json``, ``reports/<dense>/segmenter.json``
  and, for a method that trains its own segmenter, ``reports/<dense>/<method>_train.json``
  (its ``miou`` becomes ``miou_<method>`` in the benchmark's ``model`` entry, e.g. ``miou_nflowjs``).

Combinations ``a+b`` (params.yaml ``combine``) are computed here from the scores files: each
score is standardised with the mean and standard deviation of its ID *validation* scores, then
combined by the rule (``zmean``: the mean of the two z-scores; ``zmax``: the larger). Nothing is
fitted on test or OOD data. Images are paired by ``(set, index)``.

Ablations (a method's other scores and settings, e.g. MoodCat's distances and oracle label mode)
come from ``reports/scores/<benchmark>/ablations/<stage>.csv`` and go to ``reports/ablations.json``
(same shape as metrics.json) and ``reports/<benchmark>/ablations.csv``, never to metrics.json.

Writes ``reports/<benchmark>/summary.csv`` (image metrics with CIs, combinations included),
``reports/<benchmark>/roc.csv`` and ``pr.csv`` (every curve on a fixed grid: the DVC plots),
``reports/<benchmark>/paired.csv`` and ``reports/<dense>/paired.csv`` (paired tests),
``reports/<dense>/summary.csv`` (every dense stage's summary), ``reports/scores/<benchmark>/combine.csv``
and ``reports/metrics.json`` (DVC metrics, values only).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .. import metrics as M
from ..io import atomic_write
from ..sets import ID_SET, VAL_SET
from . import params as P

__all__ = ["combine", "comparison_pairs", "curve_files", "fit_standardiser", "metrics_json",
           "paired_differences", "reference_comparisons", "run"]


def fit_standardiser(scores: pd.DataFrame, detector: str) -> tuple[float, float]:
    """Mean and standard deviation of ``detector``'s ID validation scores (the only data fitted)."""
    val = scores.loc[(scores["detector"] == detector) & (scores["set"] == VAL_SET), "score"].to_numpy(np.float64)
    if val.size < 2:
        raise ValueError(f"combine: {detector!r} has no ID validation scores (set 'val') to standardise on")
    std = float(val.std(ddof=1))
    return float(val.mean()), (std if std > 0 else 1.0)


def combine(scores: pd.DataFrame, name: str, rule: str = "zmean", band: Sequence[float] = (0.5, 0.95)) -> pd.DataFrame:
    """Scores of the combination ``name = "a+b"``, on the images both parts scored (a part scored
    on a seeded subset restricts the other to it): z-scores on ID validation, then ``rule``.

    ``zmean``/``zmax``: the mean / larger of the two z-scores. ``trust`` (DiffGuard's "trust the
    baseline where it is confident, DiffGuard on the hard cases"): ``b`` decides where its score
    lies outside the ``band`` of quantiles of its own ID validation scores (below: confidently ID,
    ranked lowest; above: confidently OOD, ranked highest, each by ``b``), ``a`` ranks the images
    in between. Monotone maps (arctan) keep the three tiers apart: (-2, -1), (-1/2, 1/2), (1, 2)."""
    a, b = name.split("+")
    z, val = {}, {}
    for det in (a, b):
        mean, std = fit_standardiser(scores, det)
        rows = scores[scores["detector"] == det].set_index(["set", "index"])
        z[det] = (rows["score"] - mean) / std
        val[det] = z[det].loc[VAL_SET] if VAL_SET in z[det].index.get_level_values(0) else z[det].iloc[:0]
    common = z[a].index.intersection(z[b].index)
    if len(common) == 0:
        raise ValueError(f"combine {name}: {a} and {b} scored no image in common")
    za, zb = z[a].loc[common], z[b].loc[common]
    if rule == "zmean":
        value = (za + zb) / 2
    elif rule == "zmax":
        value = np.maximum(za, zb)
    elif rule == "trust":
        lo, hi = np.quantile(val[b].to_numpy(np.float64), band)
        tier = np.where(zb > hi, 1.5, np.where(zb < lo, -1.5, 0.0))
        value = pd.Series(np.where(tier == 0, np.arctan(za) / np.pi, tier + np.arctan(zb) / np.pi), index=common)
    else:
        raise ValueError(f"combine {name}: unknown rule {rule!r}")
    ref = scores[scores["detector"] == a].set_index(["set", "index"]).loc[common]
    out = ref.assign(score=value.to_numpy(), detector=name).reset_index()
    return out[scores.columns]


def paired_differences(scores: pd.DataFrame, comparisons: Sequence[tuple[str, str, str, str]],
                       groups: Mapping[str, Sequence[str]], *, metric: str = "auroc", n_boot: int = 200,
                       level: float = 0.95, seed: int = 0, replicates: Mapping[str, dict] | None = None) -> pd.DataFrame:
    """``metric(a) − metric(b)`` for each comparison ``(a, b, target, role)`` (target: an OOD set
    or a group of ``groups``; role: why the pair is compared), on the test images both scored
    (paired by ``(set, index)``), with a percentile bootstrap interval of the difference (both
    detectors resampled with the same draws, :func:`ood.metrics.bootstrap_samples`) and, for AUROC,
    DeLong's standard error and two-sided p-value (:func:`ood.metrics.delong_test`). Columns: ``a,
    b, role, set, metric, a_value, b_value, diff, lo, hi, se, p, n_id, n_ood``. Correct ``p`` for
    the number of rows with :func:`ood.metrics.holm`. ``replicates``: each detector's bootstrap
    replicates on all its test images, as :func:`ood.metrics.summarize` fills them (same seed and
    n_boot), reused where a pair's common images are all of them."""
    test = scores[scores["set"] != VAL_SET]
    by_detector = {d: df.set_index(["set", "index"])["score"] for d, df in test.groupby("detector", sort=False)}
    cache: dict[tuple[str, int], tuple] = {}

    def view(det: str, common: pd.Index, sets: list[str]):
        """ID scores, OOD scores per set, metric values and bootstrap replicates of ``det`` on ``common``."""
        key = (det, hash(tuple(common)))
        if key not in cache:
            sc = by_detector[det].loc[common]
            ids = sc.loc[ID_SET].to_numpy(np.float64)
            ood = {s: sc.loc[s].to_numpy(np.float64) for s in sets}
            values = {s: M.image_metrics(ids, ood[s]) for s in sets}
            whole = replicates is not None and det in replicates and len(common) == len(by_detector[det])
            reps = replicates[det] if whole else M.bootstrap_samples(ids, ood, n_boot=n_boot, seed=seed)
            cache[key] = ids, ood, values, reps
        return cache[key]

    rows = []
    todo: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for a, b, target, role in comparisons:
        todo.setdefault((a, b), []).append((target, role))
    for (a, b), targets in todo.items():
        common = by_detector[a].index.intersection(by_detector[b].index).sort_values()
        sets = [s for s in common.get_level_values(0).unique() if s != ID_SET]
        (id_a, ood_a, val_a, rep_a), (id_b, ood_b, val_b, rep_b) = view(a, common, sets), view(b, common, sets)
        n_id = int((common.get_level_values(0) == ID_SET).sum())
        for target, role in targets:
            members = list(groups[target]) if target in groups else [target]
            if not all(s in sets for s in members):
                continue  # a detector scored on a subset of sets has no value on this target
            va, vb, diff = M.mean_difference(val_a, rep_a, val_b, rep_b, members, metric)
            se, p = (M.delong_test(id_a, ood_a, id_b, ood_b, members)[1:] if metric == "auroc"
                     else (float(diff.std(ddof=1)), M.bootstrap_p(va - vb, diff)))
            n_ood = int(sum((common.get_level_values(0) == s).sum() for s in members))
            rows.append((a, b, role, target, metric, va, vb, va - vb, *M.percentile_interval(diff, level), se, p, n_id, n_ood))
    return pd.DataFrame(rows, columns=["a", "b", "role", "set", "metric", "a_value", "b_value", "diff", "lo", "hi", "se",
                                       "p", "n_id", "n_ood"])


def subset_summaries(evaluated: pd.DataFrame, groups: Mapping[str, Sequence[str]], *, n_boot: int = 200,
                     level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Every detector on the images of each detector scored on fewer test images than the others (a
    seeded subset, e.g. DiffGuard on a CPU): the only company it can be ranked in. Columns
    ``subset`` (its first detector), ``member`` (scored on exactly those images), then
    :data:`ood.metrics.SUMMARY_COLUMNS`; detectors that lack some of the images are left out."""
    test = evaluated[evaluated["set"] != VAL_SET]
    keys = {d: frozenset(map(tuple, df[["set", "index"]].to_numpy().tolist())) for d, df in test.groupby("detector", sort=False)}
    full = max(len(k) for k in keys.values())
    subsets: dict[frozenset, list[str]] = {}
    for det, k in keys.items():
        if len(k) < full:
            subsets.setdefault(k, []).append(det)
    frames = []
    for images, members in subsets.items():
        inside = [d for d, k in keys.items() if images <= k]
        rows = test[test["detector"].isin(inside)]
        rows = rows[pd.MultiIndex.from_frame(rows[["set", "index"]]).isin(list(images))]
        sets = {s for s, _ in images}
        table = M.summarize(rows, {g: m for g, m in groups.items() if set(m) <= sets}, n_boot=n_boot, level=level, seed=seed)
        frames.append(table.assign(subset=members[0], member=table["detector"].isin(members)))
    columns = ["subset", "member", *M.SUMMARY_COLUMNS]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def comparison_pairs(names: Sequence[str]) -> list[tuple[str, str]]:
    """What the combinations claim: each ``a+b`` against ``b`` alone, and ``a`` alone against ``b``."""
    pairs = []
    for name in names:
        a, b = name.split("+")
        pairs += [p for p in ((name, b), (a, b)) if p not in pairs]
    return pairs


def reference_comparisons(detectors: Sequence[str], best: Mapping[str, str], groups: Mapping[str, Sequence[str]],
                          combinations: Sequence[str] = (), msp: str = "msp") -> list[tuple[str, str, str, str]]:
    """``(a, b, target, role)``: every detector against MSP and against the best baseline of each
    group (on the group and on each of its sets), and what the combinations claim
    (:func:`comparison_pairs`, every target). A pair with several roles appears once, roles joined."""
    roles: dict[tuple[str, str, str], list[str]] = {}
    for group, members in groups.items():
        for target in [group, *members]:
            for det in detectors:
                for ref, role in ((msp, "vs MSP"), (best.get(group), "vs best baseline")):
                    if ref is not None and ref != det and ref in detectors:
                        roles.setdefault((det, ref, target), []).append(role)
    for a, b in comparison_pairs(combinations):
        for target in [*groups, *(s for m in groups.values() for s in m)]:
            roles.setdefault((a, b, target), []).append("combination part")
    return [(a, b, target, "; ".join(dict.fromkeys(r))) for (a, b, target), r in roles.items()]


def dense_pixel_accumulators(root: Path, bench: str, bins: int) -> dict[str, dict[str, M.PixelMetrics]]:
    """``{detector: {set: PixelMetrics}}`` from every score-map store of ``bench``, streamed chunk by
    chunk in the order written (so images are resampled alike for every detector), plus ``all``
    (the pooled sets, as the scoring stages build it)."""
    from ..evaluation.scoremaps import ScoreMaps
    from ..sets import ALL_SET

    out: dict[str, dict[str, M.PixelMetrics]] = {}
    for path in sorted((root / "reports" / "scores" / bench).glob("*.npz")):
        with ScoreMaps(path) as maps:
            for set_name in maps.sets():
                for batch in maps.iter_batches(set_name):
                    for det in (k for k in batch if k != "label"):
                        out.setdefault(det, {}).setdefault(set_name, M.PixelMetrics(bins)).update(batch[det], batch["label"])
    for per_set in out.values():
        per_set[ALL_SET] = M.PixelMetrics.merged(*per_set.values())
    return out


def dense_paired_differences(accumulators: Mapping[str, Mapping[str, M.PixelMetrics]],
                             comparisons: Sequence[tuple[str, str, str, str]], metrics: Sequence[str] = ("ap", "fpr95"),
                             *, n_boot: int = 200, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Dense counterpart of :func:`paired_differences` for pixel metrics: scenes resampled (the
    same scenes for both detectors: streams keyed on the set), the interval of the difference, and
    a normal p-value from its bootstrap standard error (:func:`ood.metrics.bootstrap_p`)."""
    reps: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    values: dict[tuple[str, str], dict[str, float]] = {}
    rows = []
    for a, b, target, role in comparisons:
        for det in (a, b):
            if (det, target) not in reps:
                acc = accumulators[det][target]
                values[det, target] = acc.compute()
                reps[det, target] = acc.bootstrap_samples(n_boot, seed, key=target)
        n_images = accumulators[a][target].n_images
        for m in metrics:
            va, vb = values[a, target][m], values[b, target][m]
            diff = reps[a, target][m] - reps[b, target][m]
            lo, hi = M.percentile_interval(diff[np.isfinite(diff)], level)
            rows.append((a, b, role, target, m, va, vb, va - vb, lo, hi, float(np.nanstd(diff, ddof=1)),
                         M.bootstrap_p(va - vb, diff), n_images))
    return pd.DataFrame(rows, columns=["a", "b", "role", "set", "metric", "a_value", "b_value", "diff", "lo", "hi", "se",
                                       "p", "n_images"])


def curve_files(scores: pd.DataFrame, points: int = 101) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ROC (``detector, set, fpr, tpr``) and PR (``detector, set, recall, precision``) curves of
    every detector on every OOD set, on a fixed grid (:func:`ood.metrics.curve_points`): the DVC
    plots of ``dvc.yaml``, small enough to diff across experiments (``dvc plots diff``)."""
    roc, pr = [], []
    for det, df in scores[scores["set"] != VAL_SET].groupby("detector", sort=False):
        ids = df.loc[df["set"] == ID_SET, "score"].to_numpy(np.float64)
        for set_name, part in df[df["set"] != ID_SET].groupby("set", sort=False):
            c = M.curve_points(ids, part["score"].to_numpy(np.float64), points)
            roc.append(pd.DataFrame({"detector": det, "set": set_name, "fpr": c["fpr"], "tpr": c["tpr"]}))
            pr.append(pd.DataFrame({"detector": det, "set": set_name, "recall": c["recall"], "precision": c["precision"]}))
    return pd.concat(roc, ignore_index=True).round(5), pd.concat(pr, ignore_index=True).round(5)


def image_scores(root: Path, benchmark: str) -> pd.DataFrame:
    files = sorted((root / "reports" / "scores" / benchmark).glob("*.csv"))
    files = [f for f in files if f.stem != "combine"]
    if not files:
        raise FileNotFoundError(f"no scores in reports/scores/{benchmark}/; run the scoring stages first (dvc repro)")
    return pd.concat([pd.read_csv(f) for f in files], ignore_index=True)


def metrics_json(entries: Mapping[str, tuple[dict[str, float], pd.DataFrame]],
                 order: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """``{benchmark: {"model": {...}, "detectors": {detector: {set: {metric: v}}}}}`` (ARCHITECTURE.md, "Contracts")."""
    out: dict[str, Any] = {}
    for bench, (model, summary) in entries.items():
        detectors = M.to_metrics_json(summary)
        if order and bench in order:
            rank = {d: i for i, d in enumerate(order[bench])}
            detectors = dict(sorted(detectors.items(), key=lambda kv: rank.get(kv[0], len(rank))))
        out[bench] = {"model": {k: round(float(v), 6) for k, v in model.items()}, "detectors": detectors}
    return out


def run(params: Mapping[str, Any], root: Path) -> dict[str, Any]:
    """Everything the stage writes; returns the metrics.json content."""
    E, C = params["evaluate"], params["combine"]
    name, dense = params["benchmark"]["name"], params["dense_benchmark"]["name"]
    loc = f"{name}_loc"
    reports = root / "reports"
    groups = json.loads((reports / name / "data.json").read_text())["groups"]

    scores = image_scores(root, name)
    rule_of = lambda c: C["rules"].get(c.split("+")[0], C["rule"])  # noqa: E731
    combos = [combine(scores, c, rule_of(c), C["band"]) for c in C["names"]]
    combined = pd.concat(combos, ignore_index=True) if combos else scores.iloc[:0]
    combined.to_csv(reports / "scores" / name / "combine.csv", index=False)
    evaluated = pd.concat([scores, combined], ignore_index=True)
    evaluated = evaluated[evaluated["set"] != VAL_SET]
    replicates: dict[str, dict] = {}
    summary = M.summarize(evaluated, groups, n_boot=E["bootstrap"], level=E["ci_level"], seed=params["data_seed"],
                          replicates=replicates)
    summary.to_csv(reports / name / "summary.csv", index=False)
    subset_summaries(evaluated, groups, n_boot=E["bootstrap"], level=E["ci_level"],
                     seed=params["data_seed"]).to_csv(reports / name / "subsets.csv", index=False)
    roc, pr = curve_files(evaluated)
    roc.to_csv(reports / name / "roc.csv", index=False)
    pr.to_csv(reports / name / "pr.csv", index=False)
    detectors = list(pd.unique(evaluated["detector"]))
    best = M.best_baselines(summary, params["detectors"]["names"], list(groups), "auroc")
    paired = paired_differences(evaluated, reference_comparisons(detectors, best, groups, C["names"]), groups,
                                n_boot=E["bootstrap"], level=E["ci_level"], seed=params["data_seed"], replicates=replicates)
    paired["p_holm"] = M.holm(paired["p"])  # one family: every row of the table
    paired.to_csv(reports / name / "paired.csv", index=False)

    def dense_summary(bench: str) -> pd.DataFrame:
        parts = sorted((reports / bench).glob("*_summary.csv"))
        df = pd.concat([pd.read_csv(f) for f in parts], ignore_index=True) if parts else pd.DataFrame(columns=M.SUMMARY_COLUMNS)
        df.to_csv(reports / bench / "summary.csv", index=False)
        return df

    # Ablations (other scores and settings of a method, e.g. MoodCat's distances and its oracle
    # label mode): reports/scores/<benchmark>/ablations/*.csv -> reports/ablations.json, never metrics.json.
    ablation_files = sorted((reports / "scores" / name / "ablations").glob("*.csv"))
    ablations = pd.concat([pd.read_csv(f) for f in ablation_files], ignore_index=True) if ablation_files else None
    ablation_summary = (M.summarize(ablations[ablations["set"] != VAL_SET], groups, n_boot=E["bootstrap"],
                                    level=E["ci_level"], seed=params["data_seed"])
                        if ablations is not None else pd.DataFrame(columns=M.SUMMARY_COLUMNS))
    ablation_summary.to_csv(reports / name / "ablations.csv", index=False)
    ablation_json = metrics_json({name: ({}, ablation_summary)}) if ablations is not None else {}
    atomic_write(reports / "ablations.json", json.dumps(ablation_json, indent=2) + "\n")

    clf = json.loads((reports / name / "classifier.json").read_text())
    seg = json.loads((reports / dense / "segmenter.json").read_text())
    model = {"miou": seg["miou"]}
    for trained in sorted((reports / dense).glob("*_train.json")):  # segmenters trained by a method, e.g. NFlowJS
        method = trained.name.removesuffix("_train.json")
        record = json.loads(trained.read_text())
        if "miou" in record:
            model[f"miou_{method}"] = record["miou"]
    dense_table = dense_summary(dense)
    entries = {name: ({"accuracy": clf["accuracy"]}, summary), dense: (model, dense_table)}
    # Paired tests on the dense benchmark: every map against MSP and against the best per-pixel
    # baseline of each set (by AP), scenes resampled; Holm over this table, its own family.
    dense_sets = list(pd.unique(dense_table["set"]))
    best = {t: (M.best_baselines(dense_table, params["dense_detectors"]["names"], [t], "ap") or {}).get(t) for t in dense_sets}
    accumulators = dense_pixel_accumulators(root, dense, params["dense_evaluate"]["bins"])
    dense_paired = dense_paired_differences(accumulators, reference_comparisons(list(accumulators), best,
                                                                                {t: [] for t in dense_sets}),
                                            n_boot=E["bootstrap"], level=E["ci_level"], seed=params["data_seed"])
    dense_paired["p_holm"] = M.holm(dense_paired["p"])
    dense_paired.to_csv(reports / dense / "paired.csv", index=False)
    if (reports / loc).is_dir():
        entries[loc] = ({"accuracy": clf["accuracy"]}, dense_summary(loc))
    image_order = [*params["detectors"]["names"], *(d for d in scores["detector"].unique() if d not in params["detectors"]["names"]), *C["names"]]
    result = metrics_json(entries, {name: image_order})
    atomic_write(reports / "metrics.json", json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    try:
        params = P.load(methods=())  # summarize reads the scores files, not the methods' sections
    except P.ParamsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    root = P.project_root()
    result = run(params, root)
    n = sum(len(v["detectors"]) for v in result.values())
    print(f"wrote reports/metrics.json: {len(result)} benchmarks, {n} detector rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
