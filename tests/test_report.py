"""Report figures and tables on tiny synthetic scores."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ood import metrics as M  # noqa: E402
from ood.report import figures as F  # noqa: E402
from ood.report import tables as T  # noqa: E402

GROUPS = {"near": ["shirt", "bag"], "far": ["digits"]}
SHIFTS = {"msp": (0.2, 1.0, 3.0), "energy": (0.8, 0.5, 4.0), "knn": (0.4, 0.6, 5.0)}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def scores_df():
    rng = np.random.default_rng(0)
    rows = []
    for det, shift in SHIFTS.items():
        rows += [(det, "id", i, s, False) for i, s in enumerate(rng.normal(size=120))]
        for name, mu, n in zip(["shirt", "bag", "digits"], shift, [40, 30, 25]):
            rows += [(det, name, i, s, True) for i, s in enumerate(rng.normal(mu, size=n))]
    return pd.DataFrame(rows, columns=["detector", "set", "index", "score", "is_ood"])


@pytest.fixture(scope="module")
def summary(scores_df):
    return M.summarize(scores_df, GROUPS, n_boot=50, seed=0)


def _sel(df, det, s):
    return df[(df["detector"] == det) & (df["set"] == s)]["score"].to_numpy()


def _data_lines(ax):
    return [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]


# --------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------
def test_roc_curves_one_set(scores_df):
    fig = F.roc_curves(scores_df, "bag")
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 3 + 2  # detectors + chance diagonal + TPR 95 % guide
    assert len(_data_lines(ax)) == 3
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    for det, label in zip(SHIFTS, labels):
        a = M.auroc(_sel(scores_df, det, "id"), _sel(scores_df, det, "bag"))
        assert label == f"{det} ({100 * a:.1f})"
    assert "OOD = positive" in ax.get_title()
    assert ax.get_xlabel().startswith("FPR") and ax.get_ylabel().startswith("TPR")


def test_roc_curves_group_average_has_mean_area(scores_df):
    fig = F.roc_curves(scores_df, "near", detectors=["knn", "msp"], groups=GROUPS)
    lines = _data_lines(fig.axes[0])
    assert [ln.get_label().split()[0] for ln in lines] == ["knn", "msp"]
    for det, ln in zip(["knn", "msp"], lines):
        x, y = ln.get_data()
        assert np.all(np.diff(x) >= 0) and y[0] == 0 and y[-1] == 1
        id_s = _sel(scores_df, det, "id")
        mean_auroc = np.mean([M.auroc(id_s, _sel(scores_df, det, s)) for s in GROUPS["near"]])
        assert np.trapezoid(y, x) == pytest.approx(mean_auroc, abs=1e-12)
    assert "mean over shirt, bag" in fig.axes[0].get_title()


def test_roc_curves_list_of_sets_and_title(scores_df):
    fig = F.roc_curves(scores_df, ["shirt", "bag"], title="embedded: near-OOD")
    title = fig.axes[0].get_title()
    assert title.startswith("embedded: near-OOD\n") and "shirt, bag" in title and "OOD = positive" in title
    ref = F.roc_curves(scores_df, "near", groups=GROUPS)
    for a, b in zip(_data_lines(fig.axes[0]), _data_lines(ref.axes[0])):
        np.testing.assert_array_equal(a.get_xydata(), b.get_xydata())
        assert a.get_label() == b.get_label()
    assert plt.fignum_exists(fig.number)  # pyplot-managed: `fig = ...; plt.show()` displays it


def test_roc_curves_into_existing_axes(scores_df):
    fig = Figure()
    axes = fig.subplots(1, 2)
    assert F.roc_curves(scores_df, "digits", ax=axes[1]) is fig
    assert len(axes[0].get_lines()) == 0 and len(_data_lines(axes[1])) == 3


def test_score_histograms_facets(scores_df):
    fig = F.score_histograms(scores_df, "msp")
    assert isinstance(fig, Figure) and len(fig.axes) == 3  # one facet per OOD set
    assert [ax.get_title().split(" — ")[0] for ax in fig.axes] == ["shirt", "bag", "digits"]
    assert all(len(ax.patches) == 2 for ax in fig.axes)  # ID and OOD step histograms
    by_detector = F.score_histograms(scores_df, set_name="shirt", col_wrap=2)
    assert len(by_detector.axes) == 3  # one facet per detector, unused grid cell removed
    assert F.score_histograms(scores_df, "energy", sets=["digits"]).axes[0].get_title().startswith("digits")
    with pytest.raises(ValueError):
        F.score_histograms(scores_df)


def test_score_histograms_non_finite(scores_df):
    df = scores_df.copy()
    df.loc[(df.detector == "msp") & (df.set == "bag") & (df["index"] == 0), "score"] = np.inf
    fig = F.score_histograms(df, "msp", sets=["bag"])
    assert "1 non-finite" in fig.axes[0].get_title()


class _Images:
    def __init__(self, n, c, label=0):
        self.x = np.random.default_rng(n).uniform(size=(n, c, 6, 6)).astype(np.float32)
        self.label = label

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.label


def test_sample_grid():
    torch = pytest.importorskip("torch")
    tensors = torch.utils.data.TensorDataset(torch.rand(10, 1, 5, 5), torch.arange(10) % 3)
    datasets = {"id": tensors, "rgb": _Images(3, 3, label=-1), "gray": _Images(20, 1)}
    fig = F.sample_grid(datasets, n=4, seed=0, class_names=["a", "b", "c"])
    assert isinstance(fig, Figure) and len(fig.axes) == 3 * 4
    n_images = [sum(len(ax.get_images()) for ax in fig.axes[r * 4 : (r + 1) * 4]) for r in range(3)]
    assert n_images == [4, 3, 4]  # the RGB set has only 3 images
    assert fig.axes[4].get_images()[0].get_array().shape == (6, 6, 3)
    assert fig.axes[0].get_images()[0].get_array().shape == (5, 5)
    assert [fig.axes[r * 4].get_ylabel() for r in range(3)] == ["id", "rgb", "gray"]
    assert fig.axes[0].get_title() in {"a", "b", "c"} and fig.axes[4].get_title() == ""  # OOD label -1
    first = F.sample_grid({"gray": _Images(20, 1)}, n=2)
    np.testing.assert_allclose(first.axes[1].get_images()[0].get_array(), _Images(20, 1).x[1, 0])


def test_training_curves():
    hist = {"epoch": [1, 2, 3], "train_loss": [1.0, 0.6, 0.4], "val_loss": [1.1, 0.8, 0.7],
            "train_acc": [0.6, 0.8, 0.9], "val_acc": [0.55, 0.75, 0.8]}
    fig = F.training_curves(hist)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert [len(ax.get_lines()) for ax in fig.axes] == [2, 2]
    np.testing.assert_array_equal(fig.axes[1].get_lines()[1].get_ydata(), hist["val_acc"])
    only_loss = F.training_curves(pd.DataFrame({"train_loss": [1.0, 0.5]}))
    assert len(only_loss.axes) == 1
    np.testing.assert_array_equal(only_loss.axes[0].get_lines()[0].get_xdata(), [1, 2])


def test_confusion_matrix():
    y_true = [0, 0, 1, 1, 2, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 0, 2]
    fig = F.confusion_matrix(y_true, y_pred, ["a", "b", "c"])
    assert isinstance(fig, Figure) and len(fig.axes) == 2  # heatmap + colour bar
    ax = fig.axes[0]
    assert "accuracy 71.4" in ax.get_title()
    cells = np.asarray(ax.collections[0].get_array()).reshape(3, 3)
    np.testing.assert_allclose(cells, [[0.5, 0.5, 0], [0, 1, 0], [1 / 3, 0, 2 / 3]])
    counts = F.confusion_matrix(y_true, y_pred, ["a", "b", "c"], normalize=False)
    assert np.asarray(counts.axes[0].collections[0].get_array()).reshape(3, 3)[2, 2] == 2
    with pytest.raises(ValueError):
        F.confusion_matrix([0, 3], [0, 1], ["a", "b"])


def test_ci_plot(summary):
    fig = F.ci_plot(summary, "fpr95")
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    assert "lower is better" in fig.axes[0].get_ylabel()
    assert len(fig.axes[0].get_legend().get_texts()) == 3


def test_palette_is_stable():
    p = F.detector_palette(["msp", "energy", "knn"])
    assert list(p) == ["msp", "energy", "knn"] and len(set(p.values())) == 3


# --------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------
def test_results_frame(summary):
    df = T.results_frame(summary)
    assert list(df.index) == list(SHIFTS)
    assert list(df.columns) == [(s, m) for s in ["shirt", "bag", "digits", "near", "far"] for m in ["auroc", "fpr95"]]
    row = summary.set_index(["detector", "set", "metric"]).loc[("msp", "near", "auroc")]
    assert df.loc["msp", ("near", "auroc")] == f"{100 * row.value:.1f} ({100 * row.lo:.1f}–{100 * row.hi:.1f})"
    bag = summary.set_index(["detector", "set", "metric"]).loc[("msp", "bag", "auroc"), "value"]
    assert T.results_frame(summary, "auroc", ci=False, digits=2).loc["msp", ("bag", "auroc")] == f"{100 * bag:.2f}"
    plain = T.results_frame(summary, ("auroc",), ci=False, percent=False, digits=3)
    v = summary.set_index(["detector", "set", "metric"]).loc[("knn", "far", "auroc"), "value"]
    assert plain.loc["knn", ("far", "auroc")] == f"{v:.3f}"
    assert T.results_frame(summary, pretty=True).columns[1] == ("shirt", "FPR95 ↓")


def test_results_table_bolds_best(summary):
    values = T.results_values(summary)
    best_auroc = values[("bag", "auroc")].idxmax()
    best_fpr = values[("bag", "fpr95")].idxmin()
    assert best_auroc == "msp"  # largest shift on 'bag'
    styler = T.results_table(summary)
    html = styler.to_html()
    assert "OOD = positive class" in html
    ctx = styler._compute().ctx  # (row, col) -> css of each cell
    cols = list(values.columns)
    rows = list(values.index)
    for col, best in [(("bag", "auroc"), best_auroc), (("bag", "fpr95"), best_fpr)]:
        j = cols.index(col)
        bold = [rows[i] for i in range(len(rows)) if ("font-weight", "bold") in ctx.get((i, j), [])]
        assert bold == [best], col
    # every column has at least one bold cell
    for j in range(len(cols)):
        assert any(("font-weight", "bold") in ctx.get((i, j), []) for i in range(len(rows)))


def test_results_table_ties_and_direction():
    summary = pd.DataFrame(
        [
            ("a", "s", "auroc", 0.90, 0.85, 0.95), ("a", "s", "fpr95", 0.30, 0.2, 0.4),
            ("b", "s", "auroc", 0.90, 0.86, 0.94), ("b", "s", "fpr95", 0.50, 0.4, 0.6),
            ("c", "s", "auroc", 0.80, 0.70, 0.90), ("c", "s", "fpr95", 0.10, 0.05, 0.2),
        ],
        columns=M.SUMMARY_COLUMNS,
    )
    md = T.results_markdown(summary)
    lines = md.splitlines()
    assert lines[0] == "| detector | s AUROC ↑ | s FPR95 ↓ |"
    assert lines[2] == "| a | **90.0 (85.0–95.0)** | 30.0 (20.0–40.0) |"
    assert lines[3] == "| b | **90.0 (86.0–94.0)** | 50.0 (40.0–60.0) |"  # tie: both bold
    assert lines[4] == "| c | 80.0 (70.0–90.0) | **10.0 (5.0–20.0)** |"  # lowest FPR95 is best


def test_glance_table_ranks_detectors_by_near_and_keeps_the_summary_values():
    summary = pd.DataFrame([
        {"detector": d, "set": st, "metric": m, "value": v, "lo": v - 0.01, "hi": v + 0.01}
        for d, near, far in (("a", 0.6, 0.9), ("b", 0.8, 0.7), ("c", 0.7, 0.95))
        for st, v in (("near", near), ("far", far), ("x", 0.5))
        for m in ("auroc", "fpr95")])
    values = T.glance_values(summary, ["near", "far"])
    assert list(values.index) == ["b", "c", "a"] and list(values.columns) == ["near", "far"]
    assert values.loc["c", "far"] == 0.95 and values.loc["a", "near"] == 0.6
    assert list(T.glance_values(summary, ["near"], metric="fpr95").index) == ["a", "c", "b"]  # lower is better
    html = T.glance_table(summary, ["near", "far"], caption="at a glance").to_html()
    assert "80.0" in html and "95.0" in html and "at a glance" in html and "background-color" in html


# --------------------------------------------------------------------------------------------
# PR curves, paired tables, HTML pieces, provenance
# --------------------------------------------------------------------------------------------
def test_pr_curves_legend_is_the_mean_aupr_out(scores_df):
    fig = F.pr_curves(scores_df, "near", ["msp", "knn"], groups=GROUPS)
    labels = [ln.get_label() for ln in _data_lines(fig.axes[0])]
    for det, label in zip(["msp", "knn"], labels):
        mean = np.mean([M.aupr_out(_sel(scores_df, det, "id"), _sel(scores_df, det, s)) for s in GROUPS["near"]])
        assert label == f"{det} ({100 * mean:.1f})"


def paired_rows() -> pd.DataFrame:
    cols = ["a", "b", "role", "set", "metric", "diff", "lo", "hi", "p_holm"]
    return pd.DataFrame([("heatmap", "msp", "vs MSP", "near", "auroc", 0.118, 0.109, 0.126, 1e-9),
                         ("heatmap", "knn", "vs best baseline", "near", "auroc", -0.02, -0.05, 0.01, 0.4),
                         ("knn", "msp", "vs MSP; combination part", "near", "auroc", 0.05, 0.04, 0.06, 0.01)], columns=cols)


def test_paired_frame_marks_holm_significance_and_names_the_reference():
    frame = T.paired_frame(paired_rows(), ["near"])
    assert list(frame.columns) == [("near", "vs msp"), ("near", "vs best: knn")]
    assert frame.loc["heatmap", ("near", "vs msp")] == "+11.8 [+10.9, +12.6] ✓"
    assert frame.loc["heatmap", ("near", "vs best: knn")] == "-2.0 [-5.0, +1.0]"  # p_holm 0.4: no mark
    assert frame.loc["knn", ("near", "vs best: knn")] == "–"
    parts = T.paired_frame(paired_rows(), ["near"], roles=("combination part",))
    assert list(parts.index) == ["knn"] and list(parts.columns) == [("near", "vs msp")]


def test_paired_table_colours_wins_by_the_metrics_direction():
    auroc = T.paired_table(paired_rows(), ["near"], source="b/paired.csv").to_html()
    assert 'data-source="b/paired.csv" data-metric="auroc"' in auroc and "#d9f0d3" in auroc and "#f4d3d3" not in auroc
    fpr = T.paired_table(paired_rows().assign(metric="fpr95"), ["near"]).to_html()
    assert "#f4d3d3" in fpr and "#d9f0d3" not in fpr  # a higher FPR95 is a loss
    with pytest.raises(ValueError, match="one metric"):
        T.paired_table(pd.concat([paired_rows(), paired_rows().assign(metric="fpr95")]), ["near"])


def test_img_tag_embeds_the_figure_and_closes_it():
    import base64

    from ood.report.html import details, img_tag

    fig = plt.figure(figsize=(2, 1))
    tag = img_tag(fig, dpi=50, alt="a <b>")
    assert not plt.fignum_exists(fig.number) and 'alt="a &lt;b&gt;"' in tag
    png = base64.b64decode(tag.split("base64,")[1].split('"')[0])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") == 100  # 2 in x 50 dpi
    assert details("s", "<p>b</p>") == "<details><summary>s</summary>\n<p>b</p>\n</details>"
    assert details("s", "", open_=True).startswith("<details open>")


def test_provenance_names_the_commit_params_and_data(tmp_path):
    import hashlib
    import subprocess

    from ood.report.provenance import provenance

    (tmp_path / "params.yaml").write_text("seed: 0\n")
    (tmp_path / "data.dvc").write_text("outs:\n- md5: abc.dir\n  path: data\n")
    assert provenance(tmp_path)["code (git)"] == "not a git checkout"
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "PATH": "/usr/bin:/bin"}
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "x"]):
        subprocess.run(["git", *cmd], cwd=tmp_path, env=env, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    prov = provenance(tmp_path)
    assert prov["code (git)"] == f"{head[:12]} (clean tree)" and prov["data/ (DVC md5)"] == "abc.dir"
    assert prov["params.yaml (sha256)"] == hashlib.sha256(b"seed: 0\n").hexdigest()[:16]
    assert "torch " in prov["packages"] and "nflows " in prov["packages"]
    (tmp_path / "params.yaml").write_text("seed: 1\n")
    assert "uncommitted changes" in provenance(tmp_path)["code (git)"]


def test_a_subset_detector_is_never_ranked_against_full_set_numbers(scores_df):
    """A detector scored on a subset ("dg": 30 ID images, 10 per set) scores perfectly there; the
    glance ranking, the bolded tables and the curves of the full sets leave it out, and its own
    section ranks it among every detector on its images only."""
    from IPython.display import Markdown

    from ood.pipeline.summarize import subset_summaries
    from ood.report import study

    keep = scores_df["index"] < np.where(scores_df["set"] == "id", 30, 10)
    dg = scores_df[keep].assign(detector="dg")
    dg["score"] = dg["is_ood"].astype(float) * 10.0
    scores = pd.concat([scores_df, dg], ignore_index=True)
    S = study.Study(P={"detectors": {"names": ["msp", "energy", "knn"]}, "evaluate": {"ci_level": 0.95, "bootstrap": 20}},
                    root=None, name="img", dense="scenes", clf={"accuracy": 0.9}, seg={}, data={"groups": GROUPS},
                    summary=M.summarize(scores, GROUPS, n_boot=20), dense_summary=None, loc_summary=None,
                    paired=pd.DataFrame({"role": ["vs best baseline"] * 2, "set": ["near", "far"], "b": ["energy", "knn"]}),
                    dense_paired=None, ablations=None, scores=scores,
                    cards=[{"name": "dg", "outlier_exposure": False}], subsets=subset_summaries(scores, GROUPS, n_boot=20),
                    spread=None)
    assert S.on_subset == {"dg": "dg"}
    glance = study.glance(S)
    assert isinstance(glance[0], Markdown) and "dg" in glance[0].data
    assert "dg" not in glance[1].data.index  # the full-set ranking
    assert all("dg" not in part.data.index for part in study.image_results(S)[1:] if hasattr(part, "data") and
               isinstance(part.data, pd.DataFrame))
    own = study.subset_results(S)
    ranking = own[1].data
    assert ranking.index[0] == "dg" and set(ranking.index) == {"dg", "msp", "energy", "knn"}
    restricted = S.subsets[(S.subsets["detector"] == "msp") & (S.subsets["set"] == "shirt") & (S.subsets["metric"] == "auroc")]
    ids, ood = _sel(scores_df, "msp", "id")[:30], _sel(scores_df, "msp", "shirt")[:10]
    assert restricted["value"].iat[0] == pytest.approx(M.auroc(ids, ood))
