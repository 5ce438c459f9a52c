"""Ablation reports: DVC experiments side by side, as one self-contained HTML page.

``python -m ood.pipeline.compare [EXP ...] [--baseline REV] [-o reports/compare.html] [--headline]``

Runs are named as ``dvc exp show`` names them (experiment names, ``workspace``, the baseline's
branch) or by any git revision; by default every experiment of the workspace's HEAD, against HEAD.
Each run is read at its commit through :class:`dvc.api.DVCFileSystem`: ``params.yaml`` and the
metrics files (in git) always; the summary tables (bootstrap CIs) and per-image scores are cached
DVC outs, read from the local cache, and a run whose outs are not there (``dvc exp pull`` fetches
them) is shown without intervals, with a note saying so.

The page has (1) the parameters that differ from the baseline; (2) per benchmark and metric, every
detector x set with its value [CI] in each run and its difference to the baseline: for image
benchmarks a *paired* bootstrap interval (both runs' per-image scores resampled with the same draws,
:func:`ood.metrics.bootstrap_samples`, with the baseline's seed, resamples and level), elsewhere the
difference of values alone; (3) for runs whose parameters differ only in ``seed``, mean ± std across
seeds next to the mean within-run CI half-width (:func:`seed_summary`), as OpenOOD reports three
checkpoints: which one dominates says how much of a difference is noise.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import yaml
from dvc.api import DVCFileSystem
from dvc_data.index import DataIndexDirError

from .. import metrics as M
from ..io import atomic_write
from ..schema import apart_from_seed, flatten
from ..report.compare import HEADLINE_SETS, MODEL, headline_metric, render_html
from ..sets import ID_SET, VAL_SET

__all__ = ["CompareError", "Run", "compare", "differing_params", "headline_frame", "list_experiments", "load_run",
           "main", "resolve", "run_groups", "run_scores", "seed_summary", "settings", "data_seed"]

# What the summarize stage writes: metrics (git), summary tables and per-image scores (DVC outs);
# ablations.json has the same shape as metrics.json, with other detector names.
METRICS_FILES = ("reports/metrics.json", "reports/ablations.json")
SUMMARY_FILES = ("reports/{bench}/summary.csv", "reports/{bench}/ablations.csv")
SCORES_GLOBS = ("reports/scores/{bench}/*.csv", "reports/scores/{bench}/ablations/*.csv")
# A cached out missing from the local cache: a file, or a directory whose listing is unknown.
UNREACHABLE = (FileNotFoundError, DataIndexDirError)
ABSENT = "(absent)"  # a param a run does not have
KEY = ["benchmark", "detector", "set", "metric"]


class CompareError(ValueError):
    """An experiment cannot be found or read; the message says what is available."""


@dataclass
class Run:
    """One run: its params (dotted keys, as ``dvc exp show``) and tidy results
    ``benchmark, detector, set, metric, value, lo, hi`` (lo/hi NaN where the summary is unreachable)."""

    name: str
    rev: str | None  # git commit; None = the workspace
    params: dict[str, Any]
    results: pd.DataFrame
    fs: DVCFileSystem = field(repr=False)  # the repository at rev
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# finding and reading runs
# --------------------------------------------------------------------------------------------
def list_experiments(root: Path) -> dict[str, str | None]:
    """Name -> commit of what ``dvc exp show`` lists: the workspace (None), the baseline (HEAD),
    then its experiments that have results (queued, running and failed ones have none)."""
    proc = subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--json"], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise CompareError(f"dvc exp show failed in {root}: {proc.stderr.strip()}")
    out: dict[str, str | None] = {}
    for row in json.loads(proc.stdout):
        if row["rev"] == "workspace":
            out["workspace"] = None
            continue
        out[row["name"] or row["rev"][:7]] = row["rev"]
        for exp in row.get("experiments") or []:
            state = (exp.get("executor") or {}).get("state", "success")
            for r in exp["revs"]:
                if state == "success" and not r.get("error"):
                    out[r["name"] or r["rev"][:7]] = r["rev"]
    return out


def resolve(root: Path, names: Sequence[str], available: Mapping[str, str | None]) -> list[tuple[str, str | None]]:
    """``(name, commit)`` of each name: an entry of ``available`` or any git revision."""
    out = []
    for name in names:
        if name in available:
            out.append((name, available[name]))
            continue
        proc = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}"], cwd=root,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise CompareError(f"unknown experiment {name!r}; available: {', '.join(available)} (or any git revision)")
        out.append((name, proc.stdout.strip()))
    return out


def _tidy_metrics(doc: Mapping[str, Any]) -> list[tuple]:
    rows = []
    for bench, entry in doc.items():
        rows += [(bench, MODEL, "", m, v) for m, v in entry.get("model", {}).items()]
        rows += [(bench, det, s, m, v) for det, sets in entry.get("detectors", {}).items()
                 for s, values in sets.items() for m, v in values.items()]
    return rows


def load_run(root: Path, name: str, rev: str | None) -> Run:
    """Params, metrics and (where the DVC cache has them) the summary tables' intervals of one run."""
    fs = DVCFileSystem(str(root), rev=rev)
    params = flatten(yaml.safe_load(fs.read_text("params.yaml")) or {})
    rows = [r for path in METRICS_FILES if fs.exists(path) for r in _tidy_metrics(json.loads(fs.read_text(path)))]
    results = pd.DataFrame(rows, columns=[*KEY, "value"])
    notes, intervals = [], []
    for bench in pd.unique(results["benchmark"]):
        for pattern in SUMMARY_FILES:
            path = pattern.format(bench=bench)
            if not fs.exists(path):
                continue
            try:
                with fs.open(path) as f:
                    intervals.append(pd.read_csv(f).assign(benchmark=bench)[[*KEY, "lo", "hi"]])
            except UNREACHABLE:  # listed in the commit's dvc.lock, not in the local cache
                notes.append(f"{name}: {path} is not in the local DVC cache (dvc exp pull / dvc pull fetches it): "
                             "its values are shown without intervals")
    ci = pd.concat(intervals, ignore_index=True) if intervals else pd.DataFrame(columns=[*KEY, "lo", "hi"])
    results = results.merge(ci.astype({"lo": float, "hi": float}), on=KEY, how="left")
    return Run(name, rev, params, results, fs, notes)


def run_scores(run: Run, bench: str) -> pd.DataFrame | None:
    """Per-image test scores of ``bench`` (every scores file, ablations included), or None."""
    try:
        paths = [p for pattern in SCORES_GLOBS for p in run.fs.glob(pattern.format(bench=bench))]
        if not paths:
            return None  # dense benchmarks keep per-pixel maps, not per-image scores
        frames = []
        for path in paths:
            with run.fs.open(path) as f:
                frames.append(pd.read_csv(f))
    except UNREACHABLE:
        run.notes.append(f"{run.name}: per-image scores of {bench} are not in the local DVC cache: "
                         "differences without paired intervals")
        return None
    scores = pd.concat(frames, ignore_index=True)
    return scores[scores["set"] != VAL_SET]


def run_groups(run: Run, bench: str) -> dict[str, list[str]]:
    try:
        return json.loads(run.fs.read_text(f"reports/{bench}/data.json"))["groups"]
    except (FileNotFoundError, KeyError):
        return {}


# --------------------------------------------------------------------------------------------
# differences to the baseline
# --------------------------------------------------------------------------------------------
def differing_params(baseline: Run, runs: Sequence[Run]) -> pd.DataFrame:
    """Parameters where any run differs from the baseline: index = key, one column per run
    (the baseline first; :data:`ABSENT` where a run lacks the key)."""
    keys = [k for k in dict.fromkeys([*baseline.params, *(k for r in runs for k in r.params)])
            if any(r.params.get(k, ABSENT) != baseline.params.get(k, ABSENT) for r in runs)]
    columns = {r.name: pd.Series([r.params.get(k, ABSENT) for k in keys], dtype=object) for r in [baseline, *runs]}
    return pd.DataFrame(columns).set_axis(pd.Index(keys, name="param"))  # object dtype: 0 stays 0, not 0.0


@dataclass(frozen=True)
class _Boot:
    keys: pd.MultiIndex  # (set, index) of every test image, sorted: pairing needs the same images
    values: dict[str, dict[str, float]]
    reps: dict[str, dict[str, np.ndarray]]


def _bootstrap(scores: pd.DataFrame, n_boot: int, seed: int) -> dict[str, _Boot]:
    """Each detector's metric values and bootstrap replicates per OOD set, computed once per run
    (the baseline's are reused against every experiment)."""
    out = {}
    for det, df in scores.groupby("detector", sort=False):
        df = df.sort_values(["set", "index"], kind="stable")  # the order summarize resamples in
        ids = df.loc[df["set"] == ID_SET, "score"].to_numpy(np.float64)
        ood = {s: g["score"].to_numpy(np.float64) for s, g in df[df["set"] != ID_SET].groupby("set", sort=False)}
        if ids.size and ood:
            out[det] = _Boot(pd.MultiIndex.from_frame(df[["set", "index"]]),
                             {s: M.image_metrics(ids, o) for s, o in ood.items()},
                             M.bootstrap_samples(ids, ood, n_boot=n_boot, seed=seed))
    return out


def _paired_deltas(base: Mapping[str, _Boot], other: Mapping[str, _Boot], groups: Mapping[str, Sequence[str]],
                   level: float) -> pd.DataFrame:
    """``other − base`` per detector, set (and group: mean over its sets, replicate by replicate,
    as :func:`ood.metrics.summarize`) and metric, with the percentile interval of the paired
    replicates (:func:`ood.metrics.mean_difference`); only detectors that scored the same images in
    both runs."""
    rows = []
    for det in [d for d in other if d in base and other[d].keys.equals(base[d].keys)]:
        a, b = other[det], base[det]
        targets = [(s, [s]) for s in a.values]
        targets += [(g, list(m)) for g, m in groups.items() if m and all(s in a.values for s in m)]
        for target, members in targets:
            for m in M.METRICS:
                va, vb, reps = M.mean_difference(a.values, a.reps, b.values, b.reps, members, m)
                rows.append((det, target, m, va - vb, *M.percentile_interval(reps, level)))
    return pd.DataFrame(rows, columns=["detector", "set", "metric", "delta", "delta_lo", "delta_hi"])


def data_seed(params: Mapping[str, Any]) -> int:
    """The seed that drew a run's data and bootstrap: ``data_seed`` (``seed`` before the two were split)."""
    return int(params.get("data_seed", params.get("seed", 0)))


def settings(baseline: Run) -> tuple[int, float, int]:
    """Resamples, level and data seed of the intervals: the baseline's (params.yaml defaults if absent)."""
    p = baseline.params
    return int(p.get("evaluate.bootstrap", 200)), float(p.get("evaluate.ci_level", 0.95)), data_seed(p)


def compare(baseline: Run, runs: Sequence[Run]) -> pd.DataFrame:
    """Tidy comparison: ``run, benchmark, detector, set, metric, value, lo, hi, delta, delta_lo,
    delta_hi`` (delta = run − baseline; NaN for the baseline's own rows). delta_lo/hi: paired
    bootstrap interval where both runs have per-image scores of the same images (the same
    data seed, which draws the splits and sets), else NaN (delta is then the difference of the
    metrics-file values)."""
    n_boot, level, seed = settings(baseline)
    boots: dict[tuple[str, str], dict[str, _Boot]] = {}

    def boot(run: Run, bench: str) -> dict[str, _Boot]:
        if (run.name, bench) not in boots:
            scores = run_scores(run, bench)
            boots[run.name, bench] = {} if scores is None else _bootstrap(scores, n_boot, seed)
        return boots[run.name, bench]

    base_values = baseline.results.set_index(KEY)["value"]
    frames = [baseline.results.assign(run=baseline.name, delta=np.nan, delta_lo=np.nan, delta_hi=np.nan)]
    for run in runs:
        t = run.results.set_index(KEY)
        t["delta"] = t["value"] - base_values.reindex(t.index)
        t["delta_lo"] = t["delta_hi"] = np.nan
        # another data seed draws other splits: the same (set, index) may be another image
        same_images = data_seed(run.params) == data_seed(baseline.params)
        for bench in pd.unique(run.results["benchmark"]) if same_images else []:
            base_boot = boot(baseline, bench)
            paired = _paired_deltas(base_boot, boot(run, bench), run_groups(baseline, bench), level) if base_boot else None
            if paired is not None and len(paired):
                t.update(paired.assign(benchmark=bench).set_index(KEY))
        frames.append(t.reset_index().assign(run=run.name))
    cols = ["run", *KEY, "value", "lo", "hi", "delta", "delta_lo", "delta_hi"]
    return pd.concat(frames, ignore_index=True)[cols]


def seed_summary(baseline: Run, runs: Sequence[Run]) -> pd.DataFrame:
    """Runs (the baseline among them) whose params differ only in ``seed`` form one configuration;
    for each with two runs or more: ``config, runs, n, benchmark, detector, set, metric, mean, std
    (ddof=1, across seeds), ci_half`` (mean within-run CI half-width, NaN without intervals).
    ``config`` names the params that differ from the baseline's (seed aside)."""
    configs: dict[str, list[Run]] = {}
    for run in [baseline, *(r for r in runs if r.name != baseline.name)]:
        mine, theirs = apart_from_seed(run.params), apart_from_seed(baseline.params)
        changed = {k: v for k, v in mine.items() if v != theirs.get(k, ABSENT)}
        changed |= {k: ABSENT for k in theirs if k not in mine}
        label = ", ".join(f"{k}={v}" for k, v in sorted(changed.items())) or "baseline params"
        configs.setdefault(label, []).append(run)
    frames = []
    for label, members in configs.items():
        if len(members) < 2:
            continue
        t = pd.concat([r.results.assign(half=(r.results["hi"] - r.results["lo"]) / 2) for r in members])
        agg = t.groupby(KEY, sort=False).agg(n=("value", "size"), mean=("value", "mean"),
                                             std=("value", lambda v: v.std(ddof=1)), ci_half=("half", "mean"))
        frames.append(agg.reset_index().assign(config=label, runs=", ".join(r.name for r in members)))
    cols = ["config", "runs", "n", *KEY, "mean", "std", "ci_half"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def headline_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """Headline metric of each benchmark on its headline sets: rows (benchmark, detector),
    columns (run, set); for a terminal (``--headline``)."""
    frames = []
    for run in runs:
        r = run.results
        head = {b: headline_metric(r[r["benchmark"] == b]) for b in pd.unique(r["benchmark"])}
        keep = r["set"].isin(HEADLINE_SETS) & (r["metric"] == r["benchmark"].map(head))
        frames.append(r[keep].assign(run=run.name, benchmark=r["benchmark"] + " " + r["metric"]))
    t = pd.concat(frames)
    return t.pivot_table(index=["benchmark", "detector"], columns=["run", "set"], values="value", sort=False)


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ood.pipeline.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("experiments", nargs="*",
                        help="experiment names or git revisions (default: all experiments of HEAD)")
    parser.add_argument("--baseline", help="run to compare against (default: HEAD, the baseline row of dvc exp show)")
    parser.add_argument("-o", "--output", default="reports/compare.html", type=Path)
    parser.add_argument("--headline", action="store_true", help="print the headline metric per run instead of writing HTML")
    args = parser.parse_args(argv)
    root = Path.cwd()
    try:
        available = list_experiments(root)
        head = next(n for n, rev in available.items() if rev is not None)  # HEAD's row follows the workspace's
        (base_name, base_rev), = resolve(root, [args.baseline or head], available)
        names = args.experiments or [n for n in available if n not in ("workspace", head)]
        if not names:
            raise CompareError(f"no experiments of {head} to compare; run some (dvc exp run -S ...) or name revisions")
        baseline = load_run(root, base_name, base_rev)
        runs = [load_run(root, n, rev) for n, rev in resolve(root, names, available) if n != base_name]
    except CompareError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.headline:
        with pd.option_context("display.width", 250, "display.max_rows", None, "display.max_columns", None,
                               "display.max_colwidth", 60):
            print(differing_params(baseline, runs).to_string(), end="\n\n")
            print((headline_frame([baseline, *runs]) * 100).round(1).to_string())
        return 0
    table = compare(baseline, runs)  # before rendering: it notes runs whose scores are unreachable
    page = render_html(baseline, runs, table, differing_params(baseline, runs), seed_summary(baseline, runs),
                       *settings(baseline))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(args.output, page)
    print(f"wrote {args.output}: {len(runs)} run(s) vs {base_name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
