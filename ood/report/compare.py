"""The experiment comparison page (``python -m ood.pipeline.compare``): one HTML file, no scripts and
no external resources, from the tidy tables the command computes."""

from __future__ import annotations

import html
from typing import Any, Sequence

import pandas as pd

from .. import metrics as M
from .tables import METRIC_LABELS

__all__ = ["HEADLINE_METRICS", "HEADLINE_SETS", "MODEL", "headline_metric", "render_html"]

MODEL = "(model)"  # detector name of a benchmark's model entry (accuracy, mIoU)
HEADLINE_METRICS = ("ap", "auroc")  # first present wins: dense benchmarks report both, AP is their headline
HEADLINE_SETS = ("near", "far", "all")
CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;font-size:14px}
table{border-collapse:collapse;margin:.5em 0 1em}th,td{padding:2px 8px;border-bottom:1px solid #ddd;white-space:nowrap}
td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f3f3f3;position:sticky;top:0}
table.params td{white-space:normal;max-width:40em}.note{color:#555;font-size:90%}
.sig{font-weight:bold}.better{color:#1a7f37}.worse{color:#cf222e}
details{margin:.3em 0}summary{cursor:pointer;font-weight:600}"""


def headline_metric(results: pd.DataFrame) -> str:
    present = set(results["metric"])
    return next((m for m in HEADLINE_METRICS if m in present), sorted(present)[0])


def _row_order(t: pd.DataFrame) -> pd.DataFrame:
    """Headline sets first (then the others as they come), detectors as in the metrics file."""
    sets = list(dict.fromkeys(["", *HEADLINE_SETS, *t["set"]]))
    dets = list(dict.fromkeys(t["detector"]))
    rank = t.assign(_s=t["set"].map(sets.index), _d=t["detector"].map(dets.index))
    return rank.sort_values(["_s", "_d"]).drop(columns=["_s", "_d"])


def _pct(v: float, digits: int = 1, sign: str = "") -> str:
    return "–" if pd.isna(v) else f"{100 * v:{sign}.{digits}f}"


def _interval(lo: float, hi: float, digits: int = 1) -> str:
    return "" if pd.isna(lo) or pd.isna(hi) else f" [{_pct(lo, digits)}, {_pct(hi, digits)}]"


def _delta_cell(metric: str, d: float, lo: float, hi: float) -> str:
    if pd.isna(d):
        return '<td class="n">–</td>'
    if pd.isna(lo):
        return f'<td class="n">{_pct(d, 2, "+")}†</td>'
    if lo <= 0 <= hi:
        return f'<td class="n">{_pct(d, 2, "+")}{_interval(lo, hi, 2)}</td>'
    better = (d > 0) == M.HIGHER_IS_BETTER.get(metric, True)
    return f'<td class="n sig {"better" if better else "worse"}">{_pct(d, 2, "+")}{_interval(lo, hi, 2)}</td>'


def _table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join(f"<tr>{''.join(r)}</tr>" for r in rows)
    return f"<table class='{cls}'><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _td(value: Any) -> str:
    text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)  # lists: params such as detectors.names
    return f"<td>{html.escape(text)}</td>"


def _metric_table(table: pd.DataFrame, names: Sequence[str]) -> str:
    """Rows = set x detector of one benchmark and metric (the baseline's first); baseline value
    [CI], then per run value [CI] and Δ."""
    wide = {run: t.set_index(["set", "detector"]) for run, t in table.groupby("run", sort=False)}
    base, metric = names[0], table["metric"].iat[0]
    rows = []
    for s, det in _row_order(table.drop_duplicates(["set", "detector"]))[["set", "detector"]].itertuples(index=False):
        cells = [_td(s), _td(det)]
        for i, run in enumerate(names):
            r = wide[run].loc[(s, det)] if (s, det) in wide[run].index else None
            if r is None:
                cells += ['<td class="n">–</td>'] * (1 if i == 0 else 2)
                continue
            cells.append(f'<td class="n">{_pct(r["value"])}{_interval(r["lo"], r["hi"])}</td>')
            if i:
                cells.append(_delta_cell(metric, r["delta"], r["delta_lo"], r["delta_hi"]))
        rows.append(cells)
    head = ["set", "detector", f"{html.escape(base)} (baseline)"] + [h for n in names[1:] for h in (html.escape(n), "Δ")]
    return _table(head, rows)


def _seed_table(seeds: pd.DataFrame) -> str:
    configs = list(dict.fromkeys(seeds["config"]))
    wide = {c: t.set_index(["set", "detector"]) for c, t in seeds.groupby("config", sort=False)}
    rows = []
    for s, det in _row_order(seeds.drop_duplicates(["set", "detector"]))[["set", "detector"]].itertuples(index=False):
        cells = [_td(s), _td(det)]
        for c in configs:
            r = wide[c].loc[(s, det)] if (s, det) in wide[c].index else None
            spread = [f'<td class="n">{_pct(r["mean"])} ± {_pct(r["std"], 2)}</td>',
                      f'<td class="n">{_pct(r["ci_half"], 2)}</td>'] if r is not None else ['<td class="n">–</td>'] * 2
            cells += spread
        rows.append(cells)
    head = ["set", "detector"] + [h for c in configs for h in (
        f"{html.escape(c)}<br>mean ± std, n={int(wide[c]['n'].max())}", "mean CI ½-width (±)")]
    return _table(head, rows)


def _sections(table: pd.DataFrame, render) -> str:
    """Per benchmark: the headline metric's table open, the other metrics folded."""
    parts = []
    for bench, bt in table.groupby("benchmark", sort=False):
        head = headline_metric(bt[bt["detector"] != MODEL])
        parts.append(f"<h3>{html.escape(bench)}</h3>")
        for metric, mt in sorted(bt.groupby("metric", sort=False), key=lambda kv: kv[0] != head):
            label = html.escape(METRIC_LABELS.get(metric, metric))
            body = render(mt)
            folded = f"<details><summary>{label}</summary>{body}</details>"
            parts.append(f"<h4>{label}</h4>{body}" if metric == head else folded)
    return "".join(parts)


def render_html(baseline: Any, runs: Sequence[Any], table: pd.DataFrame, params: pd.DataFrame, seeds: pd.DataFrame,
                n_boot: int, level: float, seed: int) -> str:
    """The comparison page (no scripts, no external resources) of :mod:`ood.pipeline.compare`'s
    tables (render after its ``compare``, which adds the runs' notes on unreachable scores): runs
    have a ``name``, a ``rev`` and ``notes``; ``n_boot``, ``level`` and ``seed`` are the
    settings of the intervals, stated on the page."""
    names = [baseline.name, *(r.name for r in runs)]
    notes = [n for r in [baseline, *runs] for n in r.notes]
    param_rows = [[_td(k), *(_td(v) for v in row)] for k, row in zip(params.index, params.itertuples(index=False))]
    out = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Experiments vs {html.escape(baseline.name)}</title>",
        f"<style>{CSS}</style></head><body><h1>Experiments vs {html.escape(baseline.name)}</h1>",
        f"<p>Baseline <b>{html.escape(baseline.name)}</b> ({baseline.rev or 'workspace'}); runs: "
        + ", ".join(f"<b>{html.escape(r.name)}</b> ({r.rev or 'workspace'})" for r in runs) + ".</p>",
        *(f"<p class='note'>⚠ {html.escape(n)}</p>" for n in notes),
        "<h2>Parameters that differ</h2>",
        _table(["param", *map(html.escape, names)], param_rows, "params") if len(params) else "<p>None.</p>",
        "<h2>Results</h2><p class='note'>Percent; value [bootstrap CI of the run]. Δ = run − baseline in percentage "
        f"points [{level * 100:g} % paired bootstrap interval: both runs' per-image scores resampled with the same draws, "
        f"{n_boot} resamples, data seed {seed}; images paired by (set, index), so only for runs with the baseline's "
        "data seed: another one draws other splits and sets]. "
        "<span class='sig better'>Bold green</span> / <span class='sig worse'>red</span>: the interval excludes 0 "
        "(better / worse). † difference of values alone: no per-image scores of the same images in both runs "
        "(dense benchmarks keep per-pixel maps; a run's scores may be missing from the cache).</p>",
        _sections(table, lambda mt: _metric_table(mt, names)),
    ]
    if len(seeds):
        out += ["<h2>Seeds</h2><p class='note'>Runs whose parameters differ only in <code>seed</code>: mean ± standard "
                "deviation across seeds (ddof 1) next to the mean within-run CI half-width. A spread across seeds as "
                "large as the CI means training noise matters as much as test-set noise.</p>",
                _sections(seeds, _seed_table)]
    return "".join(out) + "</body></html>\n"
