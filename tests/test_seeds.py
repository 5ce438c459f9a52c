"""Verdicts over training seeds: the seed-aware test against hand-computed numbers, the aggregation
against a direct computation, and the one-seed report's use of the committed spread."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ood import metrics as M
from ood.pipeline import compare as C
from ood.pipeline import seeds as SP
from ood.report import seeds as SR
from ood.report import tables


# --------------------------------------------------------------------------------------------
# the test itself
# --------------------------------------------------------------------------------------------
def test_seed_test_by_hand() -> None:
    """d = 2, 4, 3 points, each with a within-seed se of 1 point. mean 3; var(d) = (1 + 1 + 0)/2 = 1
    -> 1/3 per mean; within 1; se = sqrt(4/3) = 1.1547; df = (4/3)^2 / ((1/3)^2 / 2) = 32;
    t(32, 0.975) = 2.0369 (tables) -> [0.648, 5.352]; p = 2 P(T32 > 2.598) = 0.0141."""
    t = M.seed_test([0.02, 0.04, 0.03], [1e-4] * 3)
    assert t.mean == pytest.approx(0.03)
    assert t.se == pytest.approx(0.011547, abs=1e-6)
    assert t.df == pytest.approx(32.0)
    assert (t.lo, t.hi) == (pytest.approx(0.00648, abs=2e-5), pytest.approx(0.05352, abs=2e-5))
    assert t.p == pytest.approx(0.0141, abs=5e-4)
    assert (t.n, t.wins) == (3, 3)


def test_training_noise_alone_gives_student_t_with_n_minus_1_df() -> None:
    """No within-seed noise: the one-sample t-test of scipy on the differences."""
    d = np.array([0.05, -0.01, 0.03, 0.02])
    t = M.seed_test(d, np.zeros(4))
    ref = stats.ttest_1samp(d, 0.0)
    assert t.df == pytest.approx(3) and t.p == pytest.approx(ref.pvalue)
    assert t.wins == 3 and M.seed_test(d, np.zeros(4), higher_is_better=False).wins == 1


def test_identical_seeds_leave_only_test_noise_which_more_seeds_never_shrink() -> None:
    t = M.seed_test([0.01, 0.01, 0.01], [1e-4] * 3)
    assert math.isinf(t.df) and t.se == pytest.approx(0.01)  # not 0.01 / sqrt(3): the same test images
    assert t.p == pytest.approx(2 * stats.norm.sf(1.0))
    # 1 point against a test-set se of 1 point: no number of seeds resolves it
    assert M.seeds_needed([0.01, 0.012, 0.008], [1e-4] * 3) is None


def test_seeds_needed_is_the_first_count_whose_interval_excludes_zero() -> None:
    d, v = np.array([0.04, 0.0, 0.02]), np.full(3, 1e-6)  # mean 2 points, seed std 2 points
    n = M.seeds_needed(d, v)
    spread, within = d.var(ddof=1), v.mean()
    lo = lambda k: M.combined_test(0.02, spread / k, k - 1, within)[2]  # noqa: E731
    assert n is not None and lo(n) > 0 and lo(n - 1) <= 0


def test_one_run_test_adds_the_seed_spread_to_its_own_variance() -> None:
    t = M.one_run_test(0.02, 1e-4, seed_std=0.03, seed_n=3)
    var = 0.03 ** 2 + 1e-4
    df = var ** 2 / (0.03 ** 4 / 2)
    assert t.se == pytest.approx(math.sqrt(var)) and t.df == pytest.approx(df)
    assert t.p == pytest.approx(2 * stats.t.sf(0.02 / math.sqrt(var), df))


@pytest.mark.parametrize("bad", [([0.1], [0.0]), ([0.1, 0.2], [0.0]), ([0.1, np.nan], [0.0, 0.0]), ([0.1, 0.2], [0.0, -1.0])])
def test_bad_input_is_rejected(bad) -> None:
    with pytest.raises(ValueError):
        M.seed_test(*bad)


# --------------------------------------------------------------------------------------------
# aggregation
# --------------------------------------------------------------------------------------------
def _run(name: str, seed: int, knob: int = 1, offset: float = 0.0) -> C.Run:
    rows = [("img", det, s, "auroc", base + offset * k, base + offset * k - 0.01, base + offset * k + 0.01)
            for k, (det, base) in enumerate((("msp", 0.7), ("knn", 0.8), ("heatmap", 0.85))) for s in ("near", "far")]
    rows.append(("img", C.MODEL, "", "accuracy", 0.95 + offset, np.nan, np.nan))
    results = pd.DataFrame(rows, columns=[*C.KEY, "value", "lo", "hi"])
    return C.Run(name, None if name == "workspace" else f"{seed:040d}", {"seed": seed, "knob": knob}, results, fs=None)


def test_seed_runs_keep_one_run_per_seed_with_the_same_params() -> None:
    ws = _run("workspace", 0)
    head, one, other, two = _run("HEAD", 0), _run("e1", 1), _run("e2", 1, knob=2), _run("e3", 2)
    runs = SP.seed_runs(ws, [head, two, one, other])
    assert [r.name for r in runs] == ["workspace", "e1", "e3"]


def test_summary_matches_a_direct_computation() -> None:
    runs = [_run("workspace", 0, offset=0.0), _run("e1", 1, offset=0.02), _run("e2", 2, offset=-0.01)]
    values = SP.values_table(runs)
    summary = SP.summary_table(values).set_index(C.KEY)
    for det, k in (("msp", 0), ("knn", 1), ("heatmap", 2)):
        v = np.array([0.7, 0.8, 0.85][k] + np.array([0.0, 0.02, -0.01]) * k)
        row = summary.loc[("img", det, "near", "auroc")]
        assert row["n"] == 3 and row["mean"] == pytest.approx(v.mean()) and row["std"] == pytest.approx(v.std(ddof=1))
        assert (row["min"], row["max"]) == (pytest.approx(v.min()), pytest.approx(v.max()))
        assert row["ci_half"] == pytest.approx(0.01)
    best = SP.references(summary.reset_index(), "img", ["msp", "knn"], ["near"], "auroc")
    assert best == {"near": "knn"}


def test_verdicts_run_the_seed_test_on_each_comparison_and_holm_per_benchmark() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(3):
        for a, true in (("heatmap", 0.05), ("knn", 0.0), ("energy", -0.03)):
            rows.append(("img", seed, a, "msp", "vs MSP", "near", "auroc", true + rng.normal(0, 0.01), 0.005))
        rows.append(("scenes", seed, "nflowjs", "msp", "vs MSP", "all", "fpr95", -0.02 + rng.normal(0, 0.005), 0.004))
    per_seed = pd.DataFrame(rows, columns=["benchmark", "seed", "a", "b", "role", "set", "metric", "diff", "se"])
    out = SP.verdicts(per_seed, 0.95).set_index(["benchmark", "a"])
    for (bench, a), g in per_seed.groupby(["benchmark", "a"]):
        t = M.seed_test(g["diff"], g["se"] ** 2, 0.95, M.HIGHER_IS_BETTER[g["metric"].iat[0]])
        r = out.loc[(bench, a)]
        assert (r["mean"], r["p"], r["lo"], r["hi"], r["wins"]) == pytest.approx((t.mean, t.p, t.lo, t.hi, t.wins))
        assert r["diffs"] == ";".join(f"{x:.6g}" for x in g["diff"])
    img = out.loc["img"]
    np.testing.assert_allclose(img["p_holm"], M.holm(img["p"].to_numpy()))  # one family per benchmark
    assert out.loc[("scenes", "nflowjs"), "p_holm"] == pytest.approx(out.loc[("scenes", "nflowjs"), "p"])
    assert out.loc[("scenes", "nflowjs"), "wins"] == 3  # a lower FPR95 is a win


def test_a_comparison_missing_in_one_seed_is_left_out() -> None:
    per_seed = pd.DataFrame([("img", s, "a", "msp", "vs MSP", "near", "auroc", 0.01, 0.01) for s in (0, 1)]
                            + [("img", 0, "b", "msp", "vs MSP", "near", "auroc", 0.01, 0.01)],
                            columns=["benchmark", "seed", "a", "b", "role", "set", "metric", "diff", "se"])
    assert SP.verdicts(per_seed, 0.95)["a"].tolist() == ["a"]


# --------------------------------------------------------------------------------------------
# tables, page and the one-seed report
# --------------------------------------------------------------------------------------------
STUDY = {"command": "make study SEEDS=3", "date": "2026-12-07", "seeds": [0, 1, 2], "revision": "abc1234def",
         "runs": {"workspace": None, "e1": "1" * 40, "e2": "2" * 40}, "params": {"knob": 1}}


def test_paper_tables_show_mean_and_std_in_percent() -> None:
    runs = [_run("workspace", 0), _run("e1", 1, offset=0.02), _run("e2", 2, offset=-0.01)]
    summary = SP.summary_table(SP.values_table(runs))
    md, tex = SR.markdown_tables(summary, STUDY), SR.latex_tables(summary, STUDY)
    heat = np.array([0.85, 0.89, 0.83])
    cell = f"{100 * heat.mean():.1f} ± {100 * heat.std(ddof=1):.1f}"
    assert f"| heatmap | {cell} | {cell} |" in md and md.index("| heatmap") < md.index("| msp")  # ranked by near
    latex = "$" + cell.replace(" ± ", r" \pm ") + "$"
    assert f"heatmap & {latex} & {latex}" in tex and r"\toprule" in tex


def test_the_page_renders_every_section() -> None:
    runs = [_run("workspace", 0), _run("e1", 1, offset=0.02), _run("e2", 2, offset=-0.01)]
    values = SP.values_table(runs)
    summary = SP.summary_table(values)
    tests = pd.DataFrame([("img", "heatmap", "msp", "vs MSP", "near", "auroc", 3, "0.1;0.2;0.15", "0.01;0.01;0.01", 0.15,
                           0.05, 0.01, 0.03, 5.0, 0.07, 0.23, 0.004, 3, 3, 0.012)],
                         columns=["benchmark", "a", "b", "role", "set", "metric", "n", "diffs", "ses", "mean", "std",
                                  "within_se", "se", "df", "lo", "hi", "p", "wins", "seeds_needed", "p_holm"])
    page = SR.render_html(values, summary, tests, STUDY, 0.95)
    assert "make study SEEDS=3" in page and "3 of 3" in page and "+15.00 [+7.00, +23.00] ✓" in page
    assert "<img" in page and "<script" not in page


def _paired(diff: float, se: float) -> pd.DataFrame:
    return pd.DataFrame([("heatmap", "msp", "vs MSP", "near", "auroc", 0.8, 0.8 - diff, diff, diff - 2 * se, diff + 2 * se,
                          se, 2 * stats.norm.sf(diff / se), 0.0)],
                        columns=["a", "b", "role", "set", "metric", "a_value", "b_value", "diff", "lo", "hi", "se", "p",
                                 "p_holm"]).assign(p_holm=lambda t: t["p"])


def test_one_seed_report_does_not_mark_a_difference_inside_the_seed_spread(tmp_path) -> None:
    """+2.7 points, DeLong p ~ 1e-4 (a finding on its own), but the seeds move it by 4 points."""
    folder = tmp_path / SR.SEEDS
    folder.mkdir(parents=True)
    (folder / "study.json").write_text(json.dumps(STUDY))
    comparisons = pd.DataFrame([("img", "heatmap", "msp", "vs MSP", "near", "auroc", 0.04),
                                ("img", "knn", "msp", "vs MSP", "near", "auroc", 0.002)],
                               columns=["benchmark", "a", "b", "role", "set", "metric", "std"])
    comparisons.to_csv(folder / "comparisons.csv", index=False)
    spread = SR.load_spread(tmp_path, {"knob": 1, "seed": 7})
    assert spread.stale == [] and spread.seeds == [0, 1, 2]
    alone = tables.paired_frame(_paired(0.027, 0.007), ["near"]).iat[0, 0]
    assert alone.endswith("✓")  # without the spread: marked
    marked = tables.paired_frame(SR.with_seed_spread(_paired(0.027, 0.007), spread, "img", 0.95), ["near"]).iat[0, 0]
    assert "sd 4.0" in marked and not marked.endswith("✓")
    # a difference far outside a small spread stays a finding
    knn = SR.with_seed_spread(_paired(0.027, 0.007).assign(a="knn"), spread, "img", 0.95)
    assert tables.paired_frame(knn, ["near"]).iat[0, 0].endswith("✓")
    assert SR.load_spread(tmp_path, {"knob": 2}).stale == ["knob"]
    assert SR.load_spread(tmp_path / "none", {"knob": 1}) is None
    (folder / "study.json").write_text(json.dumps({"command": None, "seeds": [], "params": {}}))  # as committed before any
    assert SR.load_spread(tmp_path, {"knob": 1}) is None
