"""The study over training seeds end to end: `python -m ood.pipeline.seeds run 2` (what `make study
SEEDS=2` runs) on tiny data, then its report, the one-seed report that reads the spread, and the
workspace left as it was. Marked ``slow`` (two whole tiny studies): `make test-slow` and CI run it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

import browser
import report_numbers
from fakes import write_fake_fashion_mnist
from workspace import copy_repo, run, tiny

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("seeds")
    copy_repo(work)
    params = tiny(yaml.safe_load((work / "params.yaml").read_text()))
    params["detectors"]["names"] = ["msp", "energy", "knn"]  # the seed machinery is under test, not the detectors
    params["combine"]["names"] = []
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    write_fake_fashion_mnist(work / "data" / "fashion-mnist", n_train=1200, n_test=400, gz=False)
    run(["git", "init", "-q"], work)
    run(["dvc", "add", "-q", "data"], work)
    run(["git", "add", "-A"], work)
    run(["git", "commit", "-qm", "fixture"], work)
    out = run([sys.executable, "-m", "ood.pipeline.seeds", "run", "2"], work)
    (work / "run.log").write_text(out.stdout + out.stderr)
    return work


def test_every_seed_runs_and_the_workspace_is_left_as_it_was(seeds: Path) -> None:
    assert yaml.safe_load((seeds / "params.yaml").read_text())["seed"] == 0
    study = json.loads((seeds / "reports" / "seeds" / "study.json").read_text())
    assert study["seeds"] == [0, 1] and study["command"] == "make study SEEDS=2"
    status = run(["dvc", "status", "--json"], seeds).stdout.strip()
    assert json.loads(status) == {"report": [{"changed deps": {"reports/seeds/comparisons.csv": "modified",
                                                               "reports/seeds/study.json": "modified"}}]}
    # only the training seed varied: the data stage came from DVC's run cache
    log = (seeds / "run.log").read_text()
    assert "Stage 'data' is cached - skipping run" in log or "Stage 'data' didn't change" in log, log[-3000:]


def test_seed_values_and_comparisons_come_from_each_seeds_own_run(seeds: Path) -> None:
    values = pd.read_csv(seeds / "reports" / "seeds" / "values.csv")
    ws = json.loads((seeds / "reports" / "metrics.json").read_text())
    row = values[(values["benchmark"] == "fmnist6") & (values["detector"] == "heatmap") & (values["set"] == "near")
                 & (values["metric"] == "auroc")]
    assert row.set_index("seed").loc[0, "value"] == pytest.approx(ws["fmnist6"]["detectors"]["heatmap"]["near"]["auroc"])
    assert row["value"].nunique() == 2  # another training seed, another network
    tests = pd.read_csv(seeds / "reports" / "seeds" / "comparisons.csv")
    # seed 0's difference to MSP is the one its own summarize wrote (same images, resamples and DeLong)
    paired = pd.read_csv(seeds / "reports" / "fmnist6" / "paired.csv")
    mine = paired[(paired["a"] == "heatmap") & (paired["b"] == "msp") & (paired["set"] == "near")].iloc[0]
    theirs = tests[(tests["a"] == "heatmap") & (tests["b"] == "msp") & (tests["set"] == "near")].iloc[0]
    assert float(theirs["diffs"].split(";")[0]) == pytest.approx(mine["diff"], rel=1e-5)
    assert float(theirs["ses"].split(";")[0]) == pytest.approx(mine["se"], rel=1e-5)
    dense = tests[(tests["benchmark"] == "scenes") & (tests["a"] == "nflowjs") & (tests["set"] == "all")]
    assert set(dense["metric"]) == {"ap", "fpr95"} and (dense["n"] == 2).all()
    # the diffguard subset is compared on its own images only
    assert set(tests.loc[tests["a"] == "diffguard", "b"]) <= {"msp", "energy", "knn"}
    for f in ("tables.md", "tables.tex", "summary.csv"):
        assert (seeds / "reports" / "seeds" / f).stat().st_size > 200, f


def test_the_seed_page_opens_in_a_headless_browser(seeds: Path) -> None:
    browser.require_chromium()
    shot = seeds / "reports" / "seeds" / "report.png"
    page = browser.check_page(seeds / "reports" / "seeds" / "report.html", shot, expect_visible="h1")
    assert page.problems() == [] and page.visible
    assert page.title == "oodstudy: 2 training seeds"


def test_the_one_seed_report_shows_the_spread_it_read(seeds: Path) -> None:
    run(["dvc", "repro", "report"], seeds)
    html = (seeds / "reports" / "report.html").read_text()
    assert "over 2 training seeds" in html and " sd " in html and "Stale spread" not in html
    assert report_numbers.problems(seeds) == []
