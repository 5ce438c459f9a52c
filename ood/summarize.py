"""The ``summarize`` stage: every scores file -> summary tables with CIs and ``reports/metrics.json``.

``python -m ood.summarize`` (what dvc runs) reads only files written by the scoring stages:

* image benchmark: ``reports/scores/<benchmark>/<stage>.csv`` (tidy per-image scores; rows of
  ``set == "val"`` are ID validation images, used to fit combinations and never in metrics);
* dense benchmarks (the dense benchmark, and ``<benchmark>_loc``, localisation): the tidy summaries
  ``reports/<dense>/<stage>_summary.csv`` written by each dense scoring stage, which streams its
  per-pixel maps to ``reports/scores/<dense>/<stage>.npz`` (recomputing dense metrics means a
  pass over every map, so it happens once, where the maps are made);
* the networks' quality: ``reports/<benchmark>/classifier.json``, ``reports/<dense>/segmenter.json``.

Combinations ``a+b`` (params.yaml ``combine``) are computed here from the scores files: each
score is standardised with the mean and standard deviation of its ID *validation* scores, then
combined by the rule (``zmean``: the mean of the two z-scores; ``zmax``: the larger). Nothing is
fitted on test or OOD data. Images are paired by ``(set, index)``.

Ablations (a method's other scores and settings, e.g. MoodCat's distances and oracle label mode)
come from ``reports/scores/<benchmark>/ablations/<stage>.csv`` and go to ``reports/ablations.json``
(same shape as metrics.json) and ``reports/<benchmark>/ablations.csv``, never to metrics.json.

Writes ``reports/<benchmark>/summary.csv`` (image metrics with CIs, combinations included),
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

from . import metrics as M
from . import params as P
from .evaluate import ID_SET, VAL_SET

__all__ = ["combine", "fit_standardiser", "metrics_json", "run"]


def fit_standardiser(scores: pd.DataFrame, detector: str) -> tuple[float, float]:
    """Mean and standard deviation of ``detector``'s ID validation scores (the only data fitted)."""
    val = scores.loc[(scores["detector"] == detector) & (scores["set"] == VAL_SET), "score"].to_numpy(np.float64)
    if val.size < 2:
        raise ValueError(f"combine: {detector!r} has no ID validation scores (set 'val') to standardise on")
    std = float(val.std(ddof=1))
    return float(val.mean()), (std if std > 0 else 1.0)


def combine(scores: pd.DataFrame, name: str, rule: str = "zmean") -> pd.DataFrame:
    """Scores of the combination ``name = "a+b"``: z-scores on ID validation, then ``rule``."""
    a, b = name.split("+")
    z = {}
    for det in (a, b):
        mean, std = fit_standardiser(scores, det)
        rows = scores[scores["detector"] == det].set_index(["set", "index"])
        z[det] = (rows["score"] - mean) / std
    if not z[a].index.equals(z[b].index):
        missing = z[a].index.symmetric_difference(z[b].index)
        raise ValueError(f"combine {name}: {a} and {b} scored different samples, e.g. {list(missing[:3])}")
    both = pd.concat([z[a], z[b]], axis=1)
    value = both.mean(axis=1) if rule == "zmean" else both.max(axis=1)
    ref = scores[scores["detector"] == a].set_index(["set", "index"])
    out = ref.assign(score=value.loc[ref.index].to_numpy(), detector=name).reset_index()
    return out[scores.columns]


def image_scores(root: Path, benchmark: str) -> pd.DataFrame:
    files = sorted((root / "reports" / "scores" / benchmark).glob("*.csv"))
    files = [f for f in files if f.stem != "combine"]
    if not files:
        raise FileNotFoundError(f"no scores in reports/scores/{benchmark}/; run the scoring stages first (dvc repro)")
    return pd.concat([pd.read_csv(f) for f in files], ignore_index=True)


def metrics_json(entries: Mapping[str, tuple[dict[str, float], pd.DataFrame]],
                 order: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """``{benchmark: {"model": {...}, "detectors": {detector: {set: {metric: v}}}}}`` (DESIGN.md)."""
    out: dict[str, Any] = {}
    for bench, (model, summary) in entries.items():
        detectors = M.to_metrics_json(summary)
        if order and bench in order:
            rank = {d: i for i, d in enumerate(order[bench])}
            detectors = dict(sorted(detectors.items(), key=lambda kv: rank.get(kv[0], len(rank))))
        out[bench] = {"model": {k: round(float(v), 6) for k, v in model.items()}, "detectors": detectors}
    return out


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def run(params: Mapping[str, Any], root: Path) -> dict[str, Any]:
    """Everything the stage writes; returns the metrics.json content."""
    E, C = params["evaluate"], params["combine"]
    name, dense = params["benchmark"]["name"], params["dense_benchmark"]["name"]
    loc = f"{name}_loc"
    reports = root / "reports"
    groups = json.loads((reports / name / "data.json").read_text())["groups"]

    scores = image_scores(root, name)
    combos = [combine(scores, c, C["rule"]) for c in C["names"]]
    combined = pd.concat(combos, ignore_index=True) if combos else scores.iloc[:0]
    combined.to_csv(reports / "scores" / name / "combine.csv", index=False)
    evaluated = pd.concat([scores, combined], ignore_index=True)
    evaluated = evaluated[evaluated["set"] != VAL_SET]
    summary = M.summarize(evaluated, groups, n_boot=E["bootstrap"], level=E["ci_level"], seed=params["seed"])
    summary.to_csv(reports / name / "summary.csv", index=False)

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
                                    level=E["ci_level"], seed=params["seed"])
                        if ablations is not None else pd.DataFrame(columns=M.SUMMARY_COLUMNS))
    ablation_summary.to_csv(reports / name / "ablations.csv", index=False)
    ablation_json = metrics_json({name: ({}, ablation_summary)}) if ablations is not None else {}
    _atomic_write(reports / "ablations.json", json.dumps(ablation_json, indent=2) + "\n")

    clf = json.loads((reports / name / "classifier.json").read_text())
    seg = json.loads((reports / dense / "segmenter.json").read_text())
    entries = {name: ({"accuracy": clf["accuracy"]}, summary), dense: ({"miou": seg["miou"]}, dense_summary(dense))}
    if (reports / loc).is_dir():
        entries[loc] = ({"accuracy": clf["accuracy"]}, dense_summary(loc))
    image_order = [*params["detectors"]["names"], *(d for d in scores["detector"].unique() if d not in params["detectors"]["names"]), *C["names"]]
    result = metrics_json(entries, {name: image_order})
    _atomic_write(reports / "metrics.json", json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    try:
        params = P.load()
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
