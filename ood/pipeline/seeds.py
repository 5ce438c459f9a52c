"""The study over several training seeds: runs them as DVC experiments and writes the seed-aggregated report.

    python -m ood.pipeline.seeds run 3     # `make study SEEDS=3`: seeds s, s+1, s+2 (s: params.yaml's seed), then report
    python -m ood.pipeline.seeds report    # the report alone, from the workspace and its experiments

``run`` reproduces the workspace at its own seed (``dvc repro``) and every other seed as a DVC
experiment of HEAD (``dvc exp run -S seed=…``; DVC's run cache shares the stages that do not read
the training seed), skipping seeds that already have one with the same parameters, and puts the
workspace back as it was. ``report`` gathers the runs whose parameters differ from the workspace's
only in ``seed`` (one per seed) and writes ``reports/seeds/`` (committed with the code, not a DVC
out, so the one-seed report can show the spread):

* ``values.csv``: every metric of every run (``benchmark, detector, set, metric, seed, value, lo, hi``);
* ``summary.csv``: mean, std (ddof 1), min and max over seeds and the mean within-run CI half-width;
* ``comparisons.csv``: every detector against MSP and against the best baseline (best by the mean
  over seeds: it favours the baseline), per seed ``diffs`` and within-seed ``ses``, then the
  seed-aware test (:func:`ood.metrics.seed_test`), Holm over each benchmark, ``wins`` in ``n`` seeds
  and ``seeds_needed``;
* ``tables.md`` and ``tables.tex``: paper tables, mean ± std;
* ``study.json``: the command, seeds, runs and the parameters (seed aside) the spread belongs to;
* ``report.html``: the page (:mod:`ood.report.seeds`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import yaml

from .. import metrics as M
from ..io import atomic_write
from ..report import seeds as page
from ..schema import apart_from_seed
from . import compare as C
from . import summarize as S

__all__ = ["OUT", "comparisons", "dense_differences", "image_differences", "main", "references", "report", "run",
           "seed_runs", "summary_table", "values_table", "verdicts"]

OUT = Path("reports/seeds")
MSP = "msp"
# What ``dvc exp run`` rewrites in the workspace besides cached outs (restored after each seed).
WORKSPACE_FILES = ("params.yaml", "dvc.lock", *C.METRICS_FILES)


# --------------------------------------------------------------------------------------------
# gathering the runs
# --------------------------------------------------------------------------------------------
def seed_runs(baseline: C.Run, candidates: Sequence[C.Run]) -> list[C.Run]:
    """``baseline`` and every candidate whose params differ from its only in ``seed``, one run per
    seed (the first listed wins), ordered by seed."""
    by_seed: dict[int, C.Run] = {}
    for r in [baseline, *candidates]:
        if apart_from_seed(r.params) == apart_from_seed(baseline.params) and not r.results.empty:
            by_seed.setdefault(int(r.params["seed"]), r)
    return [by_seed[s] for s in sorted(by_seed)]


def values_table(runs: Sequence[C.Run]) -> pd.DataFrame:
    """Every run's metrics, tidy: ``benchmark, detector, set, metric, seed, value, lo, hi``."""
    frames = [r.results.assign(seed=int(r.params["seed"])) for r in runs]
    return pd.concat(frames, ignore_index=True)[[*C.KEY, "seed", "value", "lo", "hi"]]


def summary_table(values: pd.DataFrame) -> pd.DataFrame:
    """Per ``benchmark, detector, set, metric``: ``n`` seeds, ``mean``, ``std`` (ddof 1), ``min``,
    ``max`` and ``ci_half`` (the mean within-run interval half-width)."""
    t = values.assign(half=(values["hi"] - values["lo"]) / 2)
    agg = t.groupby(C.KEY, sort=False).agg(n=("value", "size"), mean=("value", "mean"),
                                           std=("value", lambda v: v.std(ddof=1)), min=("value", "min"),
                                           max=("value", "max"), ci_half=("half", "mean"))
    return agg.reset_index()


def references(summary: pd.DataFrame, bench: str, baselines: Sequence[str], targets: Sequence[str], metric: str) -> dict[str, str]:
    """The best baseline of each target by its mean ``metric`` over seeds (one reference for every seed)."""
    rows = summary[(summary["benchmark"] == bench)].rename(columns={"mean": "value"})
    return M.best_baselines(rows, baselines, targets, metric)


# --------------------------------------------------------------------------------------------
# paired differences of each seed
# --------------------------------------------------------------------------------------------
def image_differences(run: C.Run, bench: str, detectors: Sequence[str], best: Mapping[str, str],
                      groups: Mapping[str, Sequence[str]], n_boot: int, level: float, data_seed: int) -> pd.DataFrame:
    """AUROC differences of one run (every detector against MSP and the fixed best baselines, on
    the images both scored: a subset detector is compared on its subset), with DeLong's ``se``."""
    scores = C.run_scores(run, bench)
    if scores is None:
        raise C.CompareError(f"{run.name}: the per-image scores of {bench} are not in the local DVC cache (dvc exp pull)")
    scores = scores[scores["detector"].isin(detectors)]
    pairs = S.reference_comparisons(list(detectors), best, groups, msp=MSP)
    return S.paired_differences(scores, pairs, groups, metric="auroc", n_boot=n_boot, level=level, seed=data_seed)


def dense_differences(run: C.Run, bench: str, best: Mapping[str, str], bins: int, n_boot: int, level: float,
                      data_seed: int) -> pd.DataFrame:
    """Pixel AP and FPR95 differences of one run (every map against MSP and the fixed best
    baselines, scenes resampled), from its score maps, with the bootstrap ``se``."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for path in run.fs.glob(f"reports/scores/{bench}/*.npz"):
                local = Path(tmp) / path.lstrip("/")
                local.parent.mkdir(parents=True, exist_ok=True)
                run.fs.get_file(path, str(local))
        except C.UNREACHABLE as err:
            raise C.CompareError(f"{run.name}: the score maps of {bench} are not in the local DVC cache (dvc exp pull)") from err
        acc = S.dense_pixel_accumulators(Path(tmp), bench, bins)
    sets = sorted({s for per in acc.values() for s in per})
    pairs = S.reference_comparisons(list(acc), best, {t: [] for t in sets}, msp=MSP)
    return S.dense_paired_differences(acc, pairs, ("ap", "fpr95"), n_boot=n_boot, level=level, seed=data_seed)


def comparisons(runs: Sequence[C.Run], summary: pd.DataFrame, params: Mapping[str, Any], progress: bool = True) -> pd.DataFrame:
    """Per seed, every detector against MSP and the best baseline: ``benchmark, seed, a, b, role,
    set, metric, diff, se`` (image benchmarks: AUROC on every set and group; dense: AP and FPR95)."""
    n_boot, level, data_seed = int(params["evaluate.bootstrap"]), float(params["evaluate.ci_level"]), C.data_seed(params)
    image, dense = params["benchmark.name"], params["dense_benchmark.name"]
    # One set of references for every seed: the runs share their data (and so the groups)
    groups = C.run_groups(runs[0], image)
    detectors = [d for d in pd.unique(summary.loc[summary["benchmark"] == image, "detector"])
                 if d != C.MODEL and "[" not in d]  # ablations (e.g. moodcat[oracle]) are not compared
    image_best = references(summary, image, params["detectors.names"], list(groups), "auroc")
    sets = [s for s in pd.unique(summary.loc[summary["benchmark"] == dense, "set"]) if s]
    dense_best = {t: references(summary, dense, params["dense_detectors.names"], [t], "ap").get(t) for t in sets}
    frames = []
    for run in runs:
        seed = int(run.params["seed"])
        if progress:
            print(f"paired differences of {run.name} (seed {seed})", file=sys.stderr)
        d = image_differences(run, image, detectors, image_best, groups, n_boot, level, data_seed)
        frames.append(d.assign(benchmark=image, seed=seed))
        d = dense_differences(run, dense, dense_best, int(params["dense_evaluate.bins"]), n_boot, level, data_seed)
        frames.append(d.assign(benchmark=dense, seed=seed))
    cols = ["benchmark", "seed", "a", "b", "role", "set", "metric", "diff", "se"]
    return pd.concat(frames, ignore_index=True)[cols]


def verdicts(per_seed: pd.DataFrame, level: float) -> pd.DataFrame:
    """The seed-aware test of each comparison present in every seed, Holm over each benchmark:
    ``benchmark, a, b, role, set, metric, n, diffs, ses, mean, std, within_se, se, df, lo, hi, p,
    p_holm, wins, seeds_needed`` (``diffs``/``ses``: per seed, in seed order, ``;``-joined)."""
    n = per_seed["seed"].nunique()
    rows = []
    for key, g in per_seed.sort_values("seed").groupby(["benchmark", "a", "b", "role", "set", "metric"], sort=False):
        if len(g) != n:
            continue  # a pair one seed does not have (e.g. a detector missing there)
        d, v = g["diff"].to_numpy(np.float64), g["se"].to_numpy(np.float64) ** 2
        t = M.seed_test(d, v, level, M.HIGHER_IS_BETTER[key[-1]])
        rows.append((*key, n, ";".join(f"{x:.6g}" for x in d), ";".join(f"{x:.6g}" for x in np.sqrt(v)), t.mean,
                     float(d.std(ddof=1)), float(np.sqrt(v.mean())), t.se, t.df, t.lo, t.hi, t.p, np.nan, t.wins,
                     M.seeds_needed(d, v, level)))
    out = pd.DataFrame(rows, columns=["benchmark", "a", "b", "role", "set", "metric", "n", "diffs", "ses", "mean", "std",
                                      "within_se", "se", "df", "lo", "hi", "p", "p_holm", "wins", "seeds_needed"])
    for _, idx in out.groupby("benchmark").groups.items():
        out.loc[idx, "p_holm"] = M.holm(out.loc[idx, "p"].to_numpy())
    out["seeds_needed"] = out["seeds_needed"].astype("Int64")
    return out


# --------------------------------------------------------------------------------------------
# the report and the runs
# --------------------------------------------------------------------------------------------
def report(root: Path, command: str, progress: bool = True) -> Path:
    """Writes ``reports/seeds/`` from the workspace and the experiments of HEAD; returns its folder."""
    available = C.list_experiments(root)
    baseline = C.load_run(root, "workspace", None)
    others = [C.load_run(root, name, rev) for name, rev in available.items() if rev is not None]
    runs = seed_runs(baseline, others)
    if len(runs) < 2:
        raise C.CompareError(f"{len(runs)} seed(s) with the workspace's parameters; a spread needs two or more "
                             "(make study SEEDS=3)")
    for r in runs:
        if r.notes:
            raise C.CompareError("; ".join(r.notes))
    values = values_table(runs)
    summary = summary_table(values)
    level = float(baseline.params["evaluate.ci_level"])
    per_seed = comparisons(runs, summary, baseline.params, progress)
    tests = verdicts(per_seed, level)
    out = root / OUT
    out.mkdir(parents=True, exist_ok=True)
    study = {"command": command, "date": date.today().isoformat(), "seeds": [int(r.params["seed"]) for r in runs],
             "runs": {r.name: r.rev for r in runs}, "revision": _head(root),
             "params": apart_from_seed(baseline.params)}
    atomic_write(out / "values.csv", values.to_csv(index=False))
    atomic_write(out / "summary.csv", summary.to_csv(index=False))
    atomic_write(out / "comparisons.csv", tests.to_csv(index=False))
    atomic_write(out / "study.json", json.dumps(study, indent=2, default=str) + "\n")
    atomic_write(out / "tables.md", page.markdown_tables(summary, study))
    atomic_write(out / "tables.tex", page.latex_tables(summary, study))
    atomic_write(out / "report.html", page.render_html(values, summary, tests, study, level))
    return out


def _head(root: Path) -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()


def _dvc(args: Sequence[str], root: Path) -> None:
    print("$ dvc " + " ".join(args), file=sys.stderr, flush=True)
    start = time.perf_counter()
    if subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root).returncode != 0:
        raise SystemExit(f"dvc {' '.join(args)} failed; fix the stage it names, then run the same command again "
                         "(finished stages and seeds are kept)")
    print(f"$ dvc {' '.join(args)}: done in {(time.perf_counter() - start) / 60:.1f} min", file=sys.stderr, flush=True)


def run(root: Path, n: int) -> list[int]:
    """Reproduces the workspace and, as experiments of HEAD, the ``n − 1`` seeds after its own;
    seeds that already have an experiment with these parameters are skipped. Returns the seeds."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    seeds = [int(params["seed"]) + i for i in range(n)]
    _dvc(["repro"], root)
    baseline = C.load_run(root, "workspace", None)
    done = {int(r.params["seed"]) for r in seed_runs(baseline, [C.load_run(root, name, rev)
                                                                 for name, rev in C.list_experiments(root).items() if rev])}
    saved = {f: (root / f).read_bytes() for f in WORKSPACE_FILES if (root / f).exists()}
    try:
        for seed in (s for s in seeds[1:] if s not in done):
            _dvc(["exp", "run", "-S", f"seed={seed}"], root)
    finally:  # the workspace as it was: its params, lock and metrics, then its cached outs
        for f, content in saved.items():
            atomic_write(root / f, content)
        _dvc(["checkout", "--quiet"], root)
    return seeds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ood.pipeline.seeds", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    go = sub.add_parser("run", help="run the study for N training seeds, then write reports/seeds/")
    go.add_argument("n", type=int, help="number of training seeds (2 or more)")
    sub.add_parser("report", help="write reports/seeds/ from the workspace and its experiments")
    args = parser.parse_args(argv)
    root = Path.cwd()
    command = "python -m ood.pipeline.seeds " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.command == "run":
        if not 2 <= args.n <= 100:
            print(f"error: the number of seeds must be an integer in [2, 100], got {args.n}", file=sys.stderr)
            return 2
        run(root, args.n)
        command = f"make study SEEDS={args.n}"
    try:
        out = report(root, command)
    except C.CompareError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out}/: report.html, tables.md, tables.tex, summary.csv, comparisons.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
