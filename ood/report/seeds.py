"""The seed-aggregated report (``reports/seeds/``): its HTML page, paper tables, and the spread the one-seed report reads.

Inputs are the tidy tables of :mod:`ood.pipeline.seeds` (``values``, ``summary``, ``comparisons``)
and its ``study.json``. The one-seed report reads the committed spread with :func:`load_spread`
and :func:`with_seed_spread`: next to each paired difference, the between-seed std of *that*
difference (detectors share the classifier, so their metrics move together), and a test that
counts it (:func:`ood.metrics.one_run_test`).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .. import metrics as M
from ..schema import apart_from_seed, flatten
from .compare import CSS, HEADLINE_SETS, MODEL, _pct, _table, _td
from .html import details, img_tag
from .tables import METRIC_LABELS

__all__ = ["SEEDS", "Spread", "latex_tables", "load_spread", "markdown_tables", "render_html", "table_metrics",
           "with_seed_spread"]

SEEDS = Path("reports/seeds")  # relative to the project root


def table_metrics(summary: pd.DataFrame, bench: str) -> list[str]:
    """What a benchmark's tables show: AUROC and FPR95 for images, AP and FPR95 for pixels."""
    present = set(summary.loc[summary["benchmark"] == bench, "metric"])
    return [m for m in (("ap", "fpr95") if "ap" in present else ("auroc", "fpr95")) if m in present]


def _sets(summary: pd.DataFrame, bench: str) -> list[str]:
    sets = [s for s in pd.unique(summary.loc[summary["benchmark"] == bench, "set"]) if s]
    return [*(s for s in HEADLINE_SETS if s in sets), *(s for s in sets if s not in HEADLINE_SETS)]


def _is_ablation(detector: pd.Series) -> pd.Series:
    return detector.str.contains("[", regex=False)  # e.g. moodcat[oracle]: reports/ablations.json


def _wide(summary: pd.DataFrame, bench: str, metric: str, cell, ablations: bool = False) -> pd.DataFrame:
    """Detector x set of one benchmark and metric (the ablations' rows, or every other), each cell
    ``cell(row)``; detectors by headline mean."""
    t = summary[(summary["benchmark"] == bench) & (summary["metric"] == metric) & (summary["detector"] != MODEL)]
    t = t[_is_ablation(t["detector"]) == ablations]
    sets = _sets(summary, bench)
    order = t[t["set"] == sets[0]].sort_values("mean", ascending=not M.HIGHER_IS_BETTER[metric])["detector"]
    order = [*order, *(d for d in pd.unique(t["detector"]) if d not in set(order))]
    cells = {(r.detector, r.set): cell(r) for r in t.itertuples(index=False)}
    return pd.DataFrame([[cells.get((d, s), "–") for s in sets] for d in order], index=order, columns=sets)


def _caption(study: Mapping[str, Any], bench: str, metric: str) -> str:
    return (f"{bench}: {METRIC_LABELS.get(metric, metric)} (%), mean ± std over {len(study['seeds'])} training seeds "
            f"({', '.join(map(str, study['seeds']))}), the same test images for every seed")


def markdown_tables(summary: pd.DataFrame, study: Mapping[str, Any]) -> str:
    """Paper tables in Markdown: per benchmark and metric, detector x set, ``mean ± std`` in %."""
    out = [f"<!-- {study['command']} at {study['revision'][:7]}, {study['date']} -->\n"]
    for bench in pd.unique(summary["benchmark"]):
        for metric in table_metrics(summary, bench):
            t = _wide(summary, bench, metric, lambda r: f"{100 * r.mean:.1f} ± {100 * r.std:.1f}")
            out.append(f"**{_caption(study, bench, metric)}**\n\n| detector | {' | '.join(t.columns)} |\n"
                       f"|---|{'---:|' * len(t.columns)}\n"
                       + "".join(f"| {d} | {' | '.join(row)} |\n" for d, row in zip(t.index, t.to_numpy())))
    return "\n".join(out)


def _tex(text: str) -> str:
    return text.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("&", r"\&").replace("%", r"\%").replace("#", r"\#")


def latex_tables(summary: pd.DataFrame, study: Mapping[str, Any]) -> str:
    """The same tables for LaTeX (booktabs), ``$82.6 \\pm 1.2$``."""
    out = [f"% {study['command']} at {study['revision'][:7]}, {study['date']}; needs \\usepackage{{booktabs}}\n"]
    for bench in pd.unique(summary["benchmark"]):
        for metric in table_metrics(summary, bench):
            t = _wide(summary, bench, metric, lambda r: f"${100 * r.mean:.1f} \\pm {100 * r.std:.1f}$")
            rows = "".join(f"{_tex(d)} & {' & '.join(row)} \\\\\n" for d, row in zip(t.index, t.to_numpy()))
            out.append(f"\\begin{{table}}[t]\n\\centering\n\\caption{{{_tex(_caption(study, bench, metric))}}}\n"
                       f"\\begin{{tabular}}{{l{'r' * len(t.columns)}}}\n\\toprule\n"
                       f"Detector & {' & '.join(_tex(c) for c in t.columns)} \\\\\n\\midrule\n{rows}"
                       f"\\bottomrule\n\\end{{tabular}}\n\\end{{table}}\n")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# the page
# --------------------------------------------------------------------------------------------
def _seed_values(values: pd.DataFrame, bench: str, metric: str) -> str:
    seeds = sorted(values["seed"].unique())
    t = values[(values["benchmark"] == bench) & (values["metric"] == metric) & (values["detector"] != MODEL)]
    rows = [[_td(s), _td(d), *(f'<td class="n">{_pct(v)}</td>' for v in g.set_index("seed")["value"].reindex(seeds))]
            for (s, d), g in t.groupby(["set", "detector"], sort=False)]
    return _table(["set", "detector", *(f"seed {s}" for s in seeds)], rows)


def _strip(values: pd.DataFrame, summary: pd.DataFrame, bench: str, metric: str, sets: Sequence[str]) -> plt.Figure:
    """Each detector's value per seed (dots) and mean (bar), one panel per set."""
    t = values[(values["benchmark"] == bench) & (values["metric"] == metric) & (values["detector"] != MODEL)]
    order = list(_wide(summary, bench, metric, lambda r: "").index)  # ablations aside
    fig, axes = plt.subplots(1, len(sets), figsize=(4.2 * len(sets), 0.22 * len(order) + 1.2), sharey=True, squeeze=False)
    for ax, s in zip(axes[0], sets):
        part = t[t["set"] == s]
        for i, det in enumerate(order):
            v = 100 * part.loc[part["detector"] == det, "value"].to_numpy()
            if v.size:
                ax.plot(v, np.full(v.size, i), "o", ms=3, alpha=0.7, color="C0")
                ax.plot([v.mean()] * 2, [i - 0.35, i + 0.35], "-", color="C3", lw=1.5)
        ax.set_title(f"{s}: {METRIC_LABELS.get(metric, metric)} (%)", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(range(len(order)), order, fontsize=7)
    axes[0][0].invert_yaxis()
    fig.tight_layout()
    return fig


def _verdict_rows(tests: pd.DataFrame, alpha: float) -> list[list[str]]:
    rows = []
    for r in tests.itertuples(index=False):
        sig = r.p_holm <= alpha
        better = (r.mean > 0) == M.HIGHER_IS_BETTER[r.metric]
        cls = f"n sig {'better' if better else 'worse'}" if sig else "n"
        needed = "–" if pd.isna(r.seeds_needed) else str(int(r.seeds_needed))
        rows.append([_td(r.a), _td(f"{r.b} ({r.role})"), _td(r.set),
                     f'<td class="{cls}">{_pct(r.mean, 2, "+")} [{_pct(r.lo, 2, "+")}, {_pct(r.hi, 2, "+")}]'
                     f'{" ✓" if sig else ""}</td>',
                     f'<td class="n">{_pct(r.std, 2)}</td>', f'<td class="n">{_pct(r.within_se, 2)}</td>',
                     f'<td class="n">{r.p_holm:.3g}</td>', f'<td class="n">{r.wins} of {r.n}</td>',
                     f'<td class="n">{needed}</td>'])
    return rows


def render_html(values: pd.DataFrame, summary: pd.DataFrame, tests: pd.DataFrame, study: Mapping[str, Any],
                level: float) -> str:
    """One self-contained page: per benchmark, mean ± std with per-seed values, a per-seed figure,
    and the seed-aware comparisons."""
    seeds, alpha = study["seeds"], 1 - level
    runs = ", ".join(html.escape(n) + (f" ({rev[:7]})" if rev else "") for n, rev in study["runs"].items())
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>oodstudy: {len(seeds)} training seeds</title>"
           f"<style>{CSS}</style></head><body>",
           f"<h1>oodstudy over {len(seeds)} training seeds</h1>",
           f"<p class='note'>Made by <code>{html.escape(study['command'])}</code> at {study['revision'][:7]} on "
           f"{study['date']}. Seeds {', '.join(map(str, seeds))}: runs {runs}. Only the training seed varies (weights, "
           f"batch order, masks, noise); the data seed is fixed, so every seed is tested on the same images.</p>",
           "<p class='note'><b>Comparisons.</b> Per seed, the paired difference <i>d</i> of each detector against MSP and "
           "against the best baseline (best by the mean over seeds, which favours the baseline) on the images both "
           "scored, with its within-seed standard error (DeLong for AUROC, the scene bootstrap for pixel metrics). "
           f"Verdict: mean <i>d</i> ± t·√(var(<i>d</i>)/N + mean(se²)) — training noise shrinks with more seeds, "
           "test-set noise does not, since every seed sees the same test images — with Welch–Satterthwaite degrees "
           f"of freedom, {level * 100:g} % intervals, Holm over each benchmark (✓: adjusted p ≤ {alpha:g}). "
           "<i>seeds needed</i>: the fewest seeds whose interval would exclude 0 at the measured mean and spreads "
           "(–: none up to 100, the test set limits it).</p>"]
    for bench in pd.unique(summary["benchmark"]):
        sets = _sets(summary, bench)
        metrics = table_metrics(summary, bench)
        model = summary[(summary["benchmark"] == bench) & (summary["detector"] == MODEL)]
        out.append(f"<h2>{html.escape(bench)}</h2>")
        if len(model):
            out.append("<p>" + "; ".join(f"{html.escape(r.metric)} {_pct(r.mean)} ± {_pct(r.std)} "
                                         f"(min {_pct(r.min)}, max {_pct(r.max)})" for r in model.itertuples()) + "</p>")
        for i, metric in enumerate(metrics):
            t = _wide(summary, bench, metric, lambda r: f"{_pct(r.mean)} ± {_pct(r.std)}")
            rows = [[_td(d), *(f'<td class="n">{c}</td>' for c in row)] for d, row in zip(t.index, t.to_numpy())]
            abl = _wide(summary, bench, metric, lambda r: f"{_pct(r.mean)} ± {_pct(r.std)}", ablations=True)
            abl_rows = [[_td(d), *(f'<td class="n">{c}</td>' for c in row)] for d, row in zip(abl.index, abl.to_numpy())]
            body = (f"<p class='note'>{html.escape(_caption(study, bench, metric))}.</p>" + _table(["detector", *t.columns], rows)
                    + (details("<b>Ablations</b> (other scores and settings of a method)", _table(["detector", *abl.columns], abl_rows))
                       if len(abl) else "")
                    + details("<b>Per seed</b>", _seed_values(values, bench, metric)))
            out.append(details(f"<b>{METRIC_LABELS.get(metric, metric)}</b>", body, open_=i == 0))
        head = [s for s in sets if s in HEADLINE_SETS] or sets[:1]
        fig = _strip(values, summary, bench, metrics[0], head)
        out.append(img_tag(fig, dpi=80, alt=f"{bench}: {metrics[0]} per seed"))
        plt.close(fig)
        b = tests[tests["benchmark"] == bench]
        cols = ["a", "against (role)", "set", f"mean d [{level * 100:g} % CI]", "std of d over seeds",
                "within-seed se", "p (Holm)", "wins", "seeds needed"]
        for metric in pd.unique(b["metric"]):
            m = b[b["metric"] == metric]
            main = m[m["set"].isin(head)]
            out.append(f"<h3>{html.escape(bench)}: {METRIC_LABELS.get(metric, metric)} differences, seed-aware</h3>"
                       + _table(cols, _verdict_rows(main, alpha))
                       + details("<b>Per OOD set</b>", _table(cols, _verdict_rows(m[~m["set"].isin(head)], alpha))))
    out.append("</body></html>")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# the spread the one-seed report reads
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Spread:
    """The committed seed study: its comparisons, seeds and the params (seed aside) that differ
    from the ones asked about (``stale``: empty when the spread belongs to them)."""

    comparisons: pd.DataFrame
    seeds: list[int]
    stale: list[str]
    command: str


def load_spread(root: Path, params: Mapping[str, Any]) -> Spread | None:
    """``reports/seeds/`` of the project at ``root``, checked against ``params`` (nested, as
    params.yaml); None where no seed study was made (``study.json`` lists fewer than two seeds)."""
    folder = root / SEEDS
    study = json.loads((folder / "study.json").read_text()) if (folder / "study.json").exists() else {"seeds": []}
    if len(study["seeds"]) < 2:
        return None
    now = apart_from_seed(flatten(params))
    stale = sorted(k for k in {*now, *study["params"]} if now.get(k, "(absent)") != study["params"].get(k, "(absent)"))
    return Spread(pd.read_csv(folder / "comparisons.csv"), list(study["seeds"]), stale, study["command"])


def with_seed_spread(paired: pd.DataFrame, spread: Spread | None, bench: str, level: float) -> pd.DataFrame:
    """``paired`` (one run's table, with ``p_holm``) plus ``seed_std`` (the between-seed std of the
    same comparison, NaN where the seed study lacks it) and ``p_seed_holm``: the one-run test that
    adds that spread to the run's own variance (:func:`ood.metrics.one_run_test`), Holm over the
    rows that have it. A stale spread is used as it is; the report says so."""
    out = paired.assign(seed_std=np.nan, p_seed_holm=np.nan)
    if spread is None:
        return out
    c = spread.comparisons
    c = c[c["benchmark"] == bench].set_index(["a", "b", "set", "metric"])["std"]
    out["seed_std"] = [c.get((r.a, r.b, r.set, r.metric), np.nan) for r in paired.itertuples(index=False)]
    have = out["seed_std"].notna()
    p = [M.one_run_test(r.diff, r.se ** 2, r.seed_std, len(spread.seeds), level).p for r in out[have].itertuples(index=False)]
    out.loc[have, "p_seed_holm"] = M.holm(np.asarray(p, np.float64)) if p else []
    return out
