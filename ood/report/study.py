"""The study's report (``notebooks/report.ipynb``), section by section, from the files the stages
wrote: the summary, paired and cost tables, the scores, and each trained method's card
(``reports/<benchmark>/<method>_card.json``: its title, its section text, whether it saw auxiliary
outliers) and galleries. Nothing here names a method: a new one appears through its card.

Every function returns a list of things for IPython's ``display`` (Markdown, HTML, tables,
images); every table carries a ``data-source`` attribute naming the file its numbers come from
(``tests/report_numbers.py`` checks them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import HTML, Image, Markdown, display

from ..metrics import best_baselines
from ..sets import VAL_SET
from . import figures, tables
from .html import details, img_tag
from .provenance import provenance
from .published import PROFILES, paper_vs_ours
from .seeds import Spread, load_spread, with_seed_spread

__all__ = ["Study", "auxiliary", "costs", "curves", "dense_maps", "dense_results", "every_detector", "glance", "image_results",
           "intro", "load", "methods", "paired_tests", "provenance_table", "published", "seed_note", "show",
           "subset_results", "wins_and_losses"]


@dataclass
class Study:
    """Everything the report reads, loaded once."""
    P: Mapping[str, Any]
    root: Path
    name: str
    dense: str
    clf: dict
    seg: dict
    data: dict
    summary: pd.DataFrame
    dense_summary: pd.DataFrame
    loc_summary: pd.DataFrame
    paired: pd.DataFrame
    dense_paired: pd.DataFrame
    ablations: pd.DataFrame
    scores: pd.DataFrame
    cards: list[dict]
    subsets: pd.DataFrame  # every detector on the images of each detector scored on a subset
    spread: Spread | None  # the committed seed study (reports/seeds/), None without one

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def level(self) -> float:
        return self.P["evaluate"]["ci_level"]

    @property
    def alpha(self) -> float:  # family-wise error rate of the paired tests, matching the intervals
        return 1 - self.level

    @property
    def groups(self) -> dict[str, list[str]]:
        return self.data["groups"]

    @property
    def trained(self) -> list[str]:
        """The trained methods, in the registry's order."""
        return [c["name"] for c in self.cards]

    @property
    def on_subset(self) -> dict[str, str]:
        """Detectors scored on a seeded subset of the images -> the subset (``subsets.csv``) they are ranked in."""
        members = self.subsets[self.subsets["member"]]
        return dict(zip(members["detector"], members["subset"]))

    @property
    def full(self) -> pd.DataFrame:
        """The summary of the detectors scored on every image: the ones ranked, bolded and plotted together."""
        return self.summary[~self.summary["detector"].isin(self.on_subset)]

    def mark(self, detector: str) -> str:
        """``detector †`` where it (or a part of a combination) saw auxiliary outliers."""
        seen = {c["name"] for c in self.cards if c["outlier_exposure"]}
        return f"{detector} †" if any(part in seen for part in detector.split("+")) else detector

    def caption(self, dense: bool = False) -> str:
        return tables.caption(self.level, dense=dense, n_boot=self.P["evaluate"]["bootstrap"])


def show(parts: list[Any]) -> None:
    """Display a section's parts in the notebook (a figure once: closed after it is shown)."""
    for part in parts:
        display(part)
        if isinstance(part, plt.Figure):
            plt.close(part)


def load(P: Mapping[str, Any], root: Path) -> Study:
    name, dense = P["benchmark"]["name"], P["dense_benchmark"]["name"]
    reports = root / "reports"
    scores = pd.concat([pd.read_csv(f) for f in sorted((reports / "scores" / name).glob("*.csv"))], ignore_index=True)
    cards = [json.loads(f.read_text()) for f in [*(reports / name).glob("*_card.json"), *(reports / dense).glob("*_card.json")]]
    spread, level = load_spread(root, P), P["evaluate"]["ci_level"]
    return Study(
        P=P, root=root, name=name, dense=dense,
        clf=json.loads((reports / name / "classifier.json").read_text()),
        seg=json.loads((reports / dense / "segmenter.json").read_text()),
        data=json.loads((reports / name / "data.json").read_text()),
        summary=pd.read_csv(reports / name / "summary.csv"), subsets=pd.read_csv(reports / name / "subsets.csv"),
        dense_summary=pd.read_csv(reports / dense / "summary.csv"),
        loc_summary=pd.read_csv(reports / f"{name}_loc" / "summary.csv"),
        paired=with_seed_spread(pd.read_csv(reports / name / "paired.csv"), spread, name, level),
        dense_paired=with_seed_spread(pd.read_csv(reports / dense / "paired.csv"), spread, dense, level),
        ablations=pd.read_csv(reports / name / "ablations.csv"),
        scores=scores[scores["set"] != VAL_SET],  # ID validation rows fit combinations; they are not evaluated
        cards=sorted(cards, key=lambda c: c["rank"]), spread=spread)


def intro(S: Study) -> list[Any]:
    E, C = S.P["evaluate"], S.P["combine"]
    exposed = [c["name"] for c in S.cards if c["outlier_exposure"]]
    counts = S.scores[S.scores["set"] == "id"].groupby("detector").size()
    subsets = [f"{d}: {counts[d]} ID test images" for d in S.on_subset if "+" not in d]
    return [Markdown(f"""
**How to read the numbers.** OOD is the positive class and every detector's score is *higher = more OOD*.
All metrics are in %. FPR@95TPR is the fraction of ID samples (images, or pixels for dense benchmarks) scored above the
threshold at which 95 % of the OOD samples are detected (OpenOOD v1.5 convention). In parentheses: {S.level * 100:g} % bootstrap
confidence interval ({E['bootstrap']} resamples; images: ID and OOD resampled separately; dense: scenes
resampled). *near* and *far* of image benchmarks are unweighted means over the sets of each group; *all* of dense
benchmarks pools the pixels of every scene. Best per column in **bold**. Every number comes from the per-sample scores
in `reports/scores/` written by this run; `reports/metrics.json` holds the same values without intervals.

**†** marks detectors trained with **auxiliary outliers** (outlier exposure: {', '.join(exposed) or 'none'}). The post-hoc
baselines see only ID data, so this is not a like-for-like comparison (each method's section says what it trained on).
Combinations `a+b` add the two scores after standardising each on ID validation images (`combine.rule` = `{C['rule']}`),
except {', '.join(f'`{m}+…`: {r}' for m, r in C['rules'].items())} (`trust`: b decides where its score lies outside the
{C['band']} quantiles of its ID validation scores, a ranks the rest); nothing is fitted on test or OOD data. Detectors
scored on a seeded **subset** of each set ({'; '.join(subsets) or 'none here'}) are ranked, bolded and plotted only next to the
others *on the same images* ("Detectors scored on a subset" below), never against full-set numbers; the paired
comparisons restrict both detectors to the images both scored.
""")]


def glance(S: Study) -> list[Any]:
    apart = [Markdown(f"Not ranked here (scored on a subset; see *Detectors scored on a subset*): {', '.join(S.on_subset)}.")
             ] if S.on_subset else []
    return apart + [tables.glance_table(S.full.assign(detector=S.full["detector"].map(S.mark)),
                                ["near", "far", *S.groups["near"], *S.groups["far"]],
                                caption=f"{S.name}: AUROC (%), ranked by the near-OOD average", source=f"{S.name}/summary.csv")]


def _made(network: dict[str, Any]) -> str:
    """How the stage got its network: shipped weights (a recipe's, with provenance) or trained here."""
    source = network.get("source", "trained")
    return "trained in the stage" if source == "trained" else f"shipped weights `{source}`, trained by their recipe"


def image_results(S: Study) -> list[Any]:
    out: list[Any] = [Markdown(f"## {S.name} (image OOD detection)\nClassifier ID test accuracy: "
                               f"**{S.clf['accuracy'] * 100:.1f} %** ({_made(S.clf)}). "
                               f"Near-OOD: {', '.join(S.groups['near'])}. Far-OOD: {', '.join(S.groups['far'])}.")]
    shown = S.full.assign(detector=S.full["detector"].map(S.mark))
    for metric, label in (("auroc", "AUROC (higher is better)"), ("fpr95", "FPR@95TPR (lower is better)")):
        out += [Markdown(f"**{label}**"), tables.results_table(shown, metric_pairs=(metric,), caption=S.caption(),
                                                               source=f"{S.name}/summary.csv")]
    return out


def subset_results(S: Study) -> list[Any]:
    """Each subset's detectors next to every other detector on the same images: ranking, AUROC
    table (best in bold among them) and curves."""
    out: list[Any] = []
    for subset, rows in S.subsets.groupby("subset", sort=False):
        members = list(rows.loc[rows["member"], "detector"].unique())
        source = f"{S.name}/subsets.csv#{subset}"
        n = S.scores[(S.scores["detector"] == members[0]) & (S.scores["set"] == "id")].shape[0]
        table = rows.drop(columns=["subset", "member"])
        best = best_baselines(table, S.P["detectors"]["names"], list(S.groups), "auroc")
        shown = list(dict.fromkeys([*members, "msp", *best.values()]))
        keys = pd.MultiIndex.from_frame(S.scores.loc[S.scores["detector"] == members[0], ["set", "index"]])
        scores = S.scores[S.scores["detector"].isin(shown)]
        scores = scores[pd.MultiIndex.from_frame(scores[["set", "index"]]).isin(keys)]
        fig, axes = plt.subplots(2, len(S.groups), figsize=(5.2 * len(S.groups), 9.6), layout="constrained")
        for col, g in enumerate(S.groups):
            figures.roc_curves(scores, g, shown, groups=S.groups, title=f"{S.name}, {subset}'s images: {g}-OOD", ax=axes[0, col])
            figures.pr_curves(scores, g, shown, groups=S.groups, ax=axes[1, col])
        out += [Markdown(f"### Detectors scored on a subset: {', '.join(members)}\n{', '.join(members)} scored a seeded "
                         f"subset of {n} ID test images and as many per OOD set (at most); every detector below is "
                         f"evaluated on exactly those images, so these numbers (and the base rate behind AUPR) are "
                         f"comparable with each other, not with the full-set tables above."),
                tables.glance_table(table.assign(detector=table["detector"].map(S.mark)), ["near", "far", *S.groups["near"],
                                    *S.groups["far"]], caption=f"AUROC (%) on {subset}'s images, ranked by near-OOD",
                                    source=source),
                tables.results_table(table.assign(detector=table["detector"].map(S.mark)), metric_pairs=("auroc",),
                                     caption=S.caption(), source=source),
                HTML(img_tag(fig, dpi=80, alt=f"ROC and PR curves on {subset}'s images"))]
    return out


def wins_and_losses(S: Study) -> list[Any]:
    """AUROC per set of each trained method next to MSP's on the same images, with intervals."""
    out = []
    for det in [d for d in S.trained if d in set(S.summary["detector"])]:
        rows = S.subsets[S.subsets["subset"] == S.on_subset[det]] if det in S.on_subset else S.summary
        fig = figures.ci_plot(rows[rows["detector"].isin(["msp", det])], "auroc",
                              sets=[*S.groups["near"], *S.groups["far"], "near", "far"])
        out.append(HTML(img_tag(fig, dpi=80, alt=f"{det} against MSP")))
    return out


def seed_note(S: Study) -> str:
    """What the ``sd`` in the paired tables is, where it comes from, and whether it is stale."""
    if S.spread is None:
        return ("**No seed spread**: these intervals cover the test images, not training; one training run decides "
                "(`make study SEEDS=3` measures the spread and writes `reports/seeds/`).")
    n = len(S.spread.seeds)
    text = (f"**sd**: the std of the same difference over {n} training seeds (`reports/seeds/`, made by "
            f"`{S.spread.command}`); ✓ also needs the test that adds this training noise to the difference's own "
            f"variance (t with Welch–Satterthwaite df, Holm), so a difference inside the seed spread is never marked. "
            f"No sd: the seed study has no such comparison (e.g. another best baseline there).")
    if S.spread.stale:
        keys = ", ".join(f"`{k}`" for k in S.spread.stale[:8]) + (" …" if len(S.spread.stale) > 8 else "")
        text += (f" ⚠ **Stale spread**: it was measured with other parameters ({keys} differ); re-measure with "
                 f"`make study SEEDS={n}`.")
    return text


def paired_tests(S: Study) -> list[Any]:
    paired, groups = S.paired, list(S.groups)
    per_set = tables.paired_table(paired, [*S.groups["near"], *S.groups["far"]], alpha=S.alpha, source=f"{S.name}/paired.csv",
                                  caption="AUROC difference (points) per OOD set")
    claims = paired[paired["role"].str.contains("combination part") & paired["set"].isin(groups)]
    return [
        Markdown(f"**{len(paired)} comparisons** in this benchmark's table (every detector against MSP and against the best "
                 f"baseline on each set and group, and each combination against its parts), corrected together with "
                 f"**Holm's** step-down method: ✓ marks a difference whose Holm-adjusted p-value is at most {S.alpha:g} "
                 f"(family-wise error rate). Intervals are {S.level * 100:g} % and not adjusted. Green: a significant "
                 f"win; red: a significant loss. {seed_note(S)}"),
        tables.paired_table(paired, groups, alpha=S.alpha, source=f"{S.name}/paired.csv",
                            caption="AUROC difference (points), a − reference, near/far averages"),
        HTML(details("<b>Per OOD set</b> (click to open)", per_set.to_html())),
        *([Markdown("**What each combination claims**: each combination against its post-hoc part alone, and the method "
                    "alone against that part."),
           tables.paired_table(claims, groups, roles=("combination part",), alpha=S.alpha, source=f"{S.name}/paired.csv")]
          if len(claims) else [])]


def auxiliary(S: Study) -> list[Any]:
    aux = S.data["auxiliary"]
    return [Markdown("### Auxiliary outliers\nSources (none shared with a test set): " + "; ".join(
        f"**{k}** ({aux['mix'][k]:.0%}): {v}" for k, v in aux["sources"].items())
        + ". Closeness of each test set to the auxiliary images (median RMS pixel distance to the nearest auxiliary image, "
          "and to the nearest ID training image): a ratio well below 1 means the auxiliary data resemble that set, which "
          "flatters detectors trained on it there."),
        pd.DataFrame(aux["closeness"]).T.style.format("{:.3f}").set_table_attributes(f'data-source="{S.name}/data.json"')]


def curves(S: Study) -> list[Any]:
    """ROC and PR curves of the trained methods, MSP and the best baseline of each group."""
    best = {g: S.paired.loc[S.paired["role"].str.contains("best") & (S.paired["set"] == g), "b"].iloc[0] for g in S.groups}
    headline = list(dict.fromkeys(d for d in [*S.trained, "msp", *best.values()]
                                  if d in set(S.scores["detector"]) and d not in S.on_subset))  # subsets: their own curves
    shown = S.scores[S.scores["detector"].isin(headline)]
    fig, axes = plt.subplots(2, len(S.groups), figsize=(5.2 * len(S.groups), 9.6), layout="constrained")
    for col, g in enumerate(S.groups):
        figures.roc_curves(shown, g, headline, groups=S.groups, title=f"{S.name}: {g}-OOD", ax=axes[0, col])
        figures.pr_curves(shown, g, headline, groups=S.groups, ax=axes[1, col])
    return [HTML(img_tag(fig, dpi=80, alt="ROC and PR curves"))]


def every_detector(S: Study) -> list[Any]:
    sections = []
    for name, own_scores in S.scores.groupby("detector", sort=False):
        rows = S.summary[S.summary["detector"] == name]
        near, far = (rows.loc[(rows["set"] == g) & (rows["metric"] == "auroc"), "value"].iloc[0] * 100 for g in ("near", "far"))
        table = tables.results_frame(rows.assign(detector=rows["detector"].map(S.mark)), ("auroc", "fpr95", "aupr_in", "aupr_out"),
                                     pretty=True).to_html().replace("<table ", f'<table data-source="{S.name}/summary.csv" ', 1)
        hist = img_tag(figures.score_histograms(own_scores, name, panel_size=2.2), dpi=60, alt=f"{name} score distributions")
        sections.append(details(f"<b>{S.mark(name)}</b>: AUROC near {near:.1f}, far {far:.1f}", table + hist))
    return [HTML("\n".join(sections))]


def methods(S: Study, dense: bool = False) -> list[Any]:
    """Each trained method's section (image or dense): its card's text, its ablations (other scores
    and settings), its localisation tables where it localises, its galleries."""
    out: list[Any] = []
    for card in [c for c in S.cards if c["dense"] == dense]:
        name, bench = card["name"], S.dense if dense else S.name
        out.append(Markdown(f"## {card['title']}\n{card['section']}"))
        own = S.ablations[S.ablations["detector"].str.startswith(f"{name}[")]
        if len(own):
            out.append(tables.results_table(own, metric_pairs=("auroc",), caption=S.caption(), source=f"{S.name}/ablations.csv"))
        loc = S.loc_summary[S.loc_summary["detector"].isin([name, "class_mean_diff"])]
        if not dense and (S.reports / f"{S.name}_loc" / f"{name}_summary.csv").exists():
            for metric, label in (("auroc", "Pixel AUROC"), ("ap", "Pixel AP"), ("fpr95", "Pixel FPR@95TPR")):
                out += [Markdown(f"**{label}** on `{S.name}_loc`"),
                        tables.results_table(loc, metric_pairs=(metric,), caption=S.caption(dense=True), source=f"{S.name}_loc/summary.csv")]
        out += [Image(filename=str(p)) for p in sorted((S.reports / bench / f"{name}_gallery").glob("*.png"))]
    return out


def dense_results(S: Study) -> list[Any]:
    out: list[Any] = [Markdown(
        f"## {S.dense} (dense OOD detection)\nSegmenter mIoU on clean test scenes: **{S.seg['miou'] * 100:.1f} %** ({_made(S.seg)}). "
        "Pixel metrics over all valid pixels (void ignored); component metrics as SegmentMeIfYouCan, with the "
        "segmentation threshold chosen as the best pixel F1 on the evaluated scenes (the official protocol).")]
    for metric, label in (("ap", "Pixel AP (higher is better)"), ("fpr95", "Pixel FPR@95TPR (lower is better)"),
                          ("siou", "sIoU (higher is better)"), ("ppv", "PPV (higher is better)"),
                          ("mean_f1", "mean F1 over τ = 0.25…0.75 (higher is better)")):
        out += [Markdown(f"**{label}**"), tables.results_table(S.dense_summary, metric_pairs=(metric,), caption=S.caption(dense=True),
                                                               source=f"{S.dense}/summary.csv")]
    out.append(Markdown(
        f"**Paired tests**: pixel AP and FPR95 differences (points) against MSP and the best per-pixel baseline of "
        f"each set (by AP), scenes resampled alike for both maps; p-values from the bootstrap standard error, "
        f"**{len(S.dense_paired)} comparisons** corrected with Holm (✓: adjusted p ≤ {S.alpha:g}). A lower FPR95 is a win. "
        f"{seed_note(S)}"))
    for metric in ("ap", "fpr95"):
        out.append(tables.paired_table(S.dense_paired[S.dense_paired["metric"] == metric], list(pd.unique(S.dense_summary["set"])),
                                       alpha=S.alpha, source=f"{S.dense}/paired.csv",
                                       caption=f"Pixel {metric.upper()} difference (points), a − reference"))
    return out


def dense_maps(S: Study) -> list[Any]:
    return [Image(filename=str(p)) for p in sorted((S.reports / S.dense / "gallery").glob("*.png"))]


def published(S: Study) -> list[Any]:
    out: list[Any] = [Markdown("## Published numbers next to ours")]
    if S.name not in PROFILES:
        return out + [Markdown(f"`{S.name}` is the embedded benchmark: no paper reports it. The paper profiles "
                               f"({', '.join(PROFILES)}; `python -m ood.pipeline.profile use <name>`) show their published numbers here.")]
    versus = paper_vs_ours(json.loads((S.reports / "metrics.json").read_text()), S.name, S.name)
    return out + [Markdown(f"{len(versus)} published numbers on `{S.name}` that this run also measured (percent; difference = ours − "
                           "published; the source says which protocol each follows)."),
                  HTML((versus.assign(**{c: versus[c] * 100 for c in ("published", "ours", "difference")}).round(2)
                        .to_html(index=False)).replace("<table ", f'<table data-source="{S.name}/published" ', 1))]


def costs(S: Study) -> list[Any]:
    """Own parameters, training and scoring seconds, throughput and cost per detector."""
    own = {c["name"]: c["parameters"] for c in S.cards}
    fit = {c["name"]: c["fit_s"] for c in S.cards}
    posthoc_images = pd.read_csv(S.reports / "scores" / S.name / "posthoc.csv").groupby("detector").size()
    scenes = int(S.dense_paired["n_images"].max())
    rows = []
    for bench in (S.name, S.dense):
        for f in sorted((S.reports / bench).glob("*_costs.csv")):
            for r in pd.read_csv(f).to_dict("records"):
                det = r["detector"]
                n = r.get("images", posthoc_images.get(det) if bench == S.name else scenes)
                rows.append({"benchmark": bench, "detector": S.mark(det), "own parameters": own.get(det, 0),
                             "training s": fit.get(det, r["fit_s"]), "scoring s": r["score_s"], "images": int(n),
                             "images/s": n / r["score_s"], "× one forward": r["cost_vs_forward"]})
    table = pd.DataFrame(rows).set_index(["benchmark", "detector"])
    return [table.style.format({"own parameters": "{:,}", "training s": "{:.1f}", "scoring s": "{:.1f}", "images": "{:,}",
                                "images/s": "{:,.0f}", "× one forward": "{:.2f}"}).set_table_attributes('data-source="costs"')]


def provenance_table(S: Study) -> list[Any]:
    stages = sorted(p.stem for p in (S.reports / "notebooks").glob("*.html") if p.stem != "report")
    prov = provenance(S.root)
    prov["stage pages"] = " · ".join(f'<a href="notebooks/{s}.html">{s}</a>' for s in stages)
    table = pd.Series(prov, name="").to_frame().to_html(escape=False, header=False)
    return [HTML(table.replace("<table ", '<table data-source="provenance" ', 1))]
