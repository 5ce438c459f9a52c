"""ood.pipeline.compare on a real (tiny) git + DVC repository: one stage writes metrics.json, summary tables
and per-image scores from params.yaml; experiments change a knob or the seed."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
import dvc.api
from sklearn.metrics import roc_auc_score

from ood.pipeline import compare as C
from ood.report.compare import render_html

STAGE = '''
"""Toy pipeline: scores drawn from params -> reports/metrics.json, summary tables, scores."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from ood.metrics import summarize, to_metrics_json

p = yaml.safe_load(open("params.yaml"))
rng = np.random.default_rng(p["seed"])
rows = []
for det, strength in (("msp", 1.0), ("energy", 0.5)):
    for s, n, shift in (("val", 20, 0.0), ("id", 40, 0.0), ("a1", 30, 1.0), ("a2", 25, 1.5), ("b", 30, 2.0)):
        mu = shift * strength * p["knob"]
        rows += [(det, s, i, float(x), s not in ("id", "val")) for i, x in enumerate(rng.normal(mu, 1.0, n))]
scores = pd.DataFrame(rows, columns=["detector", "set", "index", "score", "is_ood"])
groups = {"near": ["a1", "a2"], "far": ["b"]}
for d in ("reports/img", "reports/scores/img", "reports/dense"):
    Path(d).mkdir(parents=True, exist_ok=True)
scores.to_csv("reports/scores/img/x.csv", index=False)
Path("reports/img/data.json").write_text(json.dumps({"groups": groups}))
E = p["evaluate"]
summary = summarize(scores[scores["set"] != "val"], groups, n_boot=E["bootstrap"], level=E["ci_level"], seed=p["seed"])
summary.to_csv("reports/img/summary.csv", index=False)
# a dense benchmark: summary table and metrics only (per-pixel maps are not per-image scores)
dense = pd.DataFrame([("msp", s, m, v, v - 0.01, v + 0.01) for s in ("near", "far", "all") for m, v in
                      (("ap", 0.3 + 0.1 * p["knob"] + 0.01 * p["seed"]), ("auroc", 0.8))],
                     columns=["detector", "set", "metric", "value", "lo", "hi"])
dense.to_csv("reports/dense/summary.csv", index=False)
Path("reports/metrics.json").write_text(json.dumps({
    "img": {"model": {"accuracy": 0.9}, "detectors": to_metrics_json(summary)},
    "dense": {"model": {"miou": 0.7}, "detectors": to_metrics_json(dense)}}, indent=1))
'''

N_BOOT, LEVEL = 50, 0.9
ENV = {"DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
       "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}


def sh(repo: Path, *cmd: str) -> str:
    return subprocess.run(cmd, cwd=repo, check=True, capture_output=True, text=True, env={**os.environ, **ENV}).stdout


def dvc_cli(repo: Path, *args: str) -> str:
    return sh(repo, sys.executable, "-m", "dvc", *args)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """main (knob 1, seed 0) and experiments knob2, seed1, seed2, each run from main's params."""
    root = tmp_path_factory.mktemp("exps")
    (root / "stage.py").write_text(STAGE)
    (root / "params.yaml").write_text(f"seed: 0\nknob: 1.0\nevaluate:\n  bootstrap: {N_BOOT}\n  ci_level: {LEVEL}\n")
    (root / "dvc.yaml").write_text(textwrap.dedent(f"""\
        stages:
          run:
            cmd: {sys.executable} stage.py
            deps: [stage.py]
            params: [seed, knob, evaluate]
            outs: [reports/img/summary.csv, reports/img/data.json, reports/dense/summary.csv, reports/scores/img]
            metrics:
              - reports/metrics.json:
                  cache: false
        """))
    sh(root, "git", "init", "-q", "-b", "main")
    dvc_cli(root, "init", "-q")
    # the data index lives in the site cache: keep it inside the test's folder
    dvc_cli(root, "config", "--local", "core.site_cache_dir", str(root.parent / f"{root.name}-site"))
    dvc_cli(root, "repro", "-q")
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-qm", "baseline")
    for name, change in (("knob2", "knob=2"), ("seed1", "seed=1"), ("seed2", "seed=2")):
        sh(root, "git", "checkout", "--", ".")  # dvc exp run leaves its results in the workspace
        dvc_cli(root, "exp", "run", "-q", "-n", name, "-S", change)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in ENV.items():
            mp.setenv(k, v)
        mp.chdir(root)
        available = C.list_experiments(root)
        runs = {name: C.load_run(root, name, rev) for name, rev in available.items() if name != "workspace"}
        yield root, available, runs


def git_json(root: Path, rev: str, path: str):
    return json.loads(sh(root, "git", "show", f"{rev}:{path}"))


def test_lists_baseline_and_experiments(repo):
    root, available, _ = repo
    assert list(available)[:2] == ["workspace", "main"]
    assert set(available) == {"workspace", "main", "knob2", "seed1", "seed2"}
    assert available["main"] == sh(root, "git", "rev-parse", "HEAD").strip()


def test_differing_params(repo):
    _, _, runs = repo
    diff = C.differing_params(runs["main"], [runs["knob2"], runs["seed1"]])
    assert list(diff.index) == ["seed", "knob"]
    assert diff.loc["knob"].tolist() == [1.0, 2, 1.0]
    assert diff.loc["seed"].tolist() == [0, 0, 1]


def cells(page: str, bench: str) -> dict[tuple[str, str], list[str]]:
    """Rows of ``bench``'s headline table, keyed on (set, detector)."""
    section = page.split(f"<h3>{bench}</h3>")[1]
    table = section.split("</table>")[0]
    rows = [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r) for r in re.findall(r"<tr>(.*?)</tr>", table)]
    return {(r[0], r[1]): r[2:] for r in rows[1:]}


def test_html_shows_each_runs_metrics(repo, capsys):
    root, available, _ = repo
    out = root / "reports" / "compare.html"
    assert C.main(["knob2", "seed1", "-o", str(out)]) == 0
    page = out.read_text()
    assert "<script" not in page and "http" not in page  # self-contained
    img, dense = cells(page, "img"), cells(page, "dense")
    for col, name in ((0, "main"), (1, "knob2"), (3, "seed1")):
        metrics = git_json(root, available[name], "reports/metrics.json")
        for s in ("near", "far", "a1", "b"):
            v = metrics["img"]["detectors"]["msp"][s]["auroc"]
            assert img[s, "msp"][col].startswith(f"{100 * v:.1f} [")  # value [CI]
        v = metrics["dense"]["detectors"]["msp"]["all"]["ap"]  # dense headline: AP
        assert dense["all", "msp"][col].startswith(f"{100 * v:.1f} [")
    assert list(img)[:4] == [("near", "msp"), ("near", "energy"), ("far", "msp"), ("far", "energy")]  # headline sets first
    assert dense["near", "msp"][2].endswith("†")  # no per-image scores: difference of values alone
    assert re.fullmatch(r"[+-]\d+\.\d\d \[-?\d+\.\d\d, -?\d+\.\d\d\]", img["near", "msp"][2])


def independent_auroc_reps(scores: pd.DataFrame, det: str, s: str) -> np.ndarray:
    """AUROC of each bootstrap replicate with sklearn, on the index streams bootstrap_samples
    documents: ID keyed on (seed 0, "id"), each OOD set on (seed 0, set name)."""
    d = scores[scores["detector"] == det].sort_values("index")
    ids, ood = d.loc[d["set"] == "id", "score"].to_numpy(), d.loc[d["set"] == s, "score"].to_numpy()
    i = np.random.default_rng([0, zlib.crc32(b"id")]).integers(0, ids.size, (N_BOOT, ids.size))
    o = np.random.default_rng([0, zlib.crc32(s.encode())]).integers(0, ood.size, (N_BOOT, ood.size))
    y = np.r_[np.zeros(ids.size), np.ones(ood.size)]
    return np.array([roc_auc_score(y, np.r_[ids[i[b]], ood[o[b]]]) for b in range(N_BOOT)])


def test_paired_difference_matches_numpy(repo):
    root, available, runs = repo
    table = C.compare(runs["main"], [runs["knob2"]])
    got = table[(table["run"] == "knob2") & (table["benchmark"] == "img") & (table["detector"] == "msp")
                & (table["metric"] == "auroc")].set_index("set")
    scores = {n: pd.read_csv(io.StringIO(dvc.api.read("reports/scores/img/x.csv", repo=str(root), rev=available[n])))
              for n in ("main", "knob2")}
    diffs = {s: independent_auroc_reps(scores["knob2"], "msp", s) - independent_auroc_reps(scores["main"], "msp", s)
             for s in ("a1", "a2", "b")}
    alpha = (1 - LEVEL) / 2
    for target, members in (("a1", ["a1"]), ("b", ["b"]), ("near", ["a1", "a2"])):
        reps = np.mean([diffs[s] for s in members], axis=0)
        assert got.loc[target, ["delta_lo", "delta_hi"]].tolist() == pytest.approx(np.quantile(reps, [alpha, 1 - alpha]), abs=1e-12)
        metrics = [git_json(root, available[n], "reports/metrics.json")["img"]["detectors"]["msp"][target]["auroc"]
                   for n in ("main", "knob2")]
        assert got.loc[target, "delta"] == pytest.approx(metrics[1] - metrics[0], abs=1e-6)
    dense = table[(table["run"] == "knob2") & (table["benchmark"] == "dense")]
    assert dense["delta_lo"].isna().all() and dense["delta"].notna().all()


def test_seed_summary_matches_numpy(repo):
    root, available, runs = repo
    seeds = C.seed_summary(runs["main"], [runs["knob2"], runs["seed1"], runs["seed2"]])
    assert set(seeds["config"]) == {"baseline params"}  # knob2 is a configuration of one run
    row = seeds[(seeds["benchmark"] == "img") & (seeds["detector"] == "energy") & (seeds["set"] == "near")
                & (seeds["metric"] == "fpr95")].iloc[0]
    names = ["main", "seed1", "seed2"]
    values = [git_json(root, available[n], "reports/metrics.json")["img"]["detectors"]["energy"]["near"]["fpr95"] for n in names]
    halves = [(lambda r: (r["hi"] - r["lo"]) / 2)(runs[n].results.set_index(C.KEY).loc[("img", "energy", "near", "fpr95")])
              for n in names]
    assert (row["n"], row["runs"]) == (3, "main, seed1, seed2")
    assert row["mean"] == pytest.approx(np.mean(values)) and row["std"] == pytest.approx(np.std(values, ddof=1))
    assert row["ci_half"] == pytest.approx(np.mean(halves)) and row["ci_half"] > 0


def test_unknown_experiment_lists_available(repo, capsys):
    assert C.main(["no-such-exp"]) == 2
    err = capsys.readouterr().err
    assert "unknown experiment 'no-such-exp'" in err and all(n in err for n in ("main", "knob2", "seed1", "seed2"))


def test_headline_view(repo, capsys):
    assert C.main(["--headline", "knob2"]) == 0
    out = capsys.readouterr().out
    assert "img auroc" in out and "dense ap" in out and "knob2" in out


def test_missing_cache_falls_back_to_values(repo, tmp_path):
    """An experiment whose outs are not in the local cache: values without intervals, and a note."""
    root, available, _ = repo
    clone = tmp_path / "clone"
    shutil.copytree(root, clone)
    dvc_cli(clone, "config", "--local", "core.site_cache_dir", str(tmp_path / "site"))
    lock = yaml.safe_load(sh(clone, "git", "show", f"{available['knob2']}:dvc.lock"))
    for out in lock["stages"]["run"]["outs"]:
        if out["path"] in ("reports/img/summary.csv", "reports/scores/img"):
            md5 = out["md5"]
            (clone / ".dvc/cache/files/md5" / md5[:2] / md5[2:]).unlink()
    base, knob2 = C.load_run(clone, "main", available["main"]), C.load_run(clone, "knob2", available["knob2"])
    img = knob2.results[knob2.results["benchmark"] == "img"]
    assert img["lo"].isna().all() and img["value"].notna().all()
    table = C.compare(base, [knob2])
    rows = table[(table["run"] == "knob2") & (table["benchmark"] == "img")]
    assert rows["delta_lo"].isna().all() and rows["delta"].notna().all()
    assert any("summary.csv is not in the local DVC cache" in n for n in knob2.notes)
    assert any("per-image scores of img are not in the local DVC cache" in n for n in knob2.notes)
    page = render_html(base, [knob2], table, C.differing_params(base, [knob2]), C.seed_summary(base, [knob2]),
                       *C.settings(base))
    assert "not in the local DVC cache" in page
