"""Result tables for the report notebook, built from :func:`ood.metrics.summarize` output.

One benchmark per table: rows = detectors, columns = (set, metric), including the near/far
averages. Cells are percentages with the bootstrap interval, ``87.3 (85.1–89.0)``; the best
value of each column is bold (max for AUROC / AUPR, min for FPR95), ties at the displayed
precision all bold.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ood.metrics import HIGHER_IS_BETTER

__all__ = ["METRIC_LABELS", "CAPTION", "caption", "glance_values", "glance_table", "results_values", "results_frame",
           "results_table", "results_markdown"]

#: Column header of each metric; the arrow says which direction is better.
METRIC_LABELS = {"auroc": "AUROC ↑", "fpr95": "FPR95 ↓", "aupr_in": "AUPR-In ↑", "aupr_out": "AUPR-Out ↑",
                 "ap": "AP ↑", "siou": "sIoU ↑", "ppv": "PPV ↑", "mean_f1": "mean F1 ↑"}


def caption(level: float = 0.95, *, dense: bool = False, n_boot: int | None = None) -> str:
    """Table caption for a confidence ``level`` (e.g. 0.9 -> "90 %"); image or dense conventions."""
    resamples = f", {n_boot} resamples" if n_boot else ""
    head = f"Percent; {level * 100:g} % bootstrap interval in parentheses{resamples}; best per column in bold. OOD = positive class, higher score = more OOD; "
    if dense:
        return head + ("pixel metrics over every valid pixel (void ignored), FPR95 = fraction of ID pixels above the threshold "
                       "that detects 95 % of OOD pixels; scenes resampled; all = the pooled pixels of every set; "
                       "sIoU/PPV/mean F1 as SegmentMeIfYouCan.")
    return head + ("FPR95 = fraction of ID images above the threshold that detects 95 % of OOD images (OpenOOD v1.5); "
                   "ID and OOD resampled separately; near/far = unweighted means over sets.")


#: Caption of an image table at the 95 % level (use :func:`caption` for another level or dense tables).
CAPTION = caption(0.95)


def _metrics_arg(metric_pairs) -> list[str]:
    return [metric_pairs] if isinstance(metric_pairs, str) else list(metric_pairs)


def results_values(summary_df: pd.DataFrame, metric_pairs: Sequence[str] = ("auroc", "fpr95"), field: str = "value"):
    """Numeric wide table: rows = detectors, columns = MultiIndex (set, metric), from ``field``.

    Detectors and sets keep their order of appearance in ``summary_df`` (group averages last,
    as :func:`ood.metrics.summarize` writes them).
    """
    metrics = _metrics_arg(metric_pairs)
    df = summary_df[summary_df["metric"].isin(metrics)]
    detectors = list(pd.unique(df["detector"]))
    sets = list(pd.unique(df["set"]))
    wide = df.pivot_table(index="detector", columns=["set", "metric"], values=field, aggfunc="first", sort=False)
    cols = pd.MultiIndex.from_tuples([(s, m) for s in sets for m in metrics if (s, m) in wide.columns])
    return wide.reindex(index=detectors, columns=cols)


def _best_mask(values: pd.DataFrame, digits: int, percent: bool) -> pd.DataFrame:
    """True where a cell shows the best value of its column (comparison at display precision)."""
    shown = (values * (100.0 if percent else 1.0)).round(digits)
    mask = pd.DataFrame(False, index=values.index, columns=values.columns)
    for col in values.columns:
        col_vals = shown[col]
        if col_vals.notna().sum() == 0:
            continue
        best = col_vals.max() if HIGHER_IS_BETTER.get(col[1], True) else col_vals.min()
        mask[col] = np.isclose(col_vals.to_numpy(dtype=float), best, rtol=0, atol=1e-9)
    return mask


def results_frame(
    summary_df: pd.DataFrame,
    metric_pairs: Sequence[str] = ("auroc", "fpr95"),
    *,
    digits: int = 1,
    percent: bool = True,
    ci: bool = True,
    pretty: bool = False,
) -> pd.DataFrame:
    """Plain DataFrame of formatted strings (``"87.3 (85.1–89.0)"``), for text and markdown.

    ``pretty=True`` renames the metric level to :data:`METRIC_LABELS` (arrows show direction).
    """
    values = results_values(summary_df, metric_pairs, "value")
    lo = results_values(summary_df, metric_pairs, "lo")
    hi = results_values(summary_df, metric_pairs, "hi")
    scale = 100.0 if percent else 1.0

    def fmt(v, a, b):
        if pd.isna(v):
            return "–"
        s = f"{v * scale:.{digits}f}"
        if ci and not (pd.isna(a) or pd.isna(b)):
            s += f" ({a * scale:.{digits}f}–{b * scale:.{digits}f})"
        return s

    out = pd.DataFrame(
        [[fmt(values.iat[i, j], lo.iat[i, j], hi.iat[i, j]) for j in range(values.shape[1])] for i in range(len(values))],
        index=values.index,
        columns=values.columns,
    )
    if pretty:
        out.columns = pd.MultiIndex.from_tuples([(s, METRIC_LABELS.get(m, m)) for s, m in out.columns])
    out.columns.names = ["set", "metric"]
    out.index.name = "detector"
    return out


def results_table(
    summary_df: pd.DataFrame,
    metric_pairs: Sequence[str] = ("auroc", "fpr95"),
    *,
    digits: int = 1,
    percent: bool = True,
    ci: bool = True,
    caption: str | None = CAPTION,
):
    """HTML-ready ``pandas.io.formats.style.Styler`` of one benchmark's results, best in bold."""
    values = results_values(summary_df, metric_pairs, "value")
    text = results_frame(summary_df, metric_pairs, digits=digits, percent=percent, ci=ci)
    best = _best_mask(values, digits, percent)
    text.columns = pd.MultiIndex.from_tuples([(s, METRIC_LABELS.get(m, m)) for s, m in text.columns], names=["set", "metric"])
    best.columns = text.columns
    styles = pd.DataFrame(np.where(best.to_numpy(), "font-weight: bold", ""), index=text.index, columns=text.columns)
    styler = text.style.apply(lambda _: styles, axis=None)
    styler = styler.set_table_styles(
        [
            {"selector": "th", "props": "text-align: center; padding: 2px 8px;"},
            {"selector": "td", "props": "text-align: right; padding: 2px 8px; white-space: nowrap;"},
            {"selector": "caption", "props": "caption-side: bottom; font-size: 85%; text-align: left;"},
        ]
    )
    if caption:
        styler = styler.set_caption(caption)
    return styler


def glance_values(summary_df: pd.DataFrame, sets: Sequence[str], metric: str = "auroc", rank_by: str = "near") -> pd.DataFrame:
    """Detector x set values of one metric (point estimates), best ``rank_by`` first."""
    values = results_values(summary_df, (metric,)).droplevel(1, axis=1)[list(sets)].rename_axis(columns="set")  # (set, metric) -> set
    return values.sort_values(rank_by, ascending=not HIGHER_IS_BETTER.get(metric, True), kind="stable")


def glance_table(summary_df: pd.DataFrame, sets: Sequence[str], metric: str = "auroc", rank_by: str = "near",
                 *, caption: str | None = None):
    """The report's one-screen summary: :func:`glance_values` in percent, coloured from chance
    (red, 50) to perfect (green, 100) for AUROC."""
    values = glance_values(summary_df, sets, metric, rank_by) * 100
    styler = values.style.format("{:.1f}").background_gradient(cmap="RdYlGn", vmin=50, vmax=100, axis=None)
    styler = styler.set_table_styles([{"selector": "td, th", "props": "padding: 1px 6px; text-align: right;"},
                                      {"selector": "caption", "props": "caption-side: bottom; font-size: 85%; text-align: left;"}])
    return styler.set_caption(caption) if caption else styler


def results_markdown(
    summary_df: pd.DataFrame,
    metric_pairs: Sequence[str] = ("auroc", "fpr95"),
    *,
    digits: int = 1,
    percent: bool = True,
    ci: bool = True,
) -> str:
    """GitHub-flavoured markdown table (no extra dependency), best per column in ``**bold**``."""
    values = results_values(summary_df, metric_pairs, "value")
    text = results_frame(summary_df, metric_pairs, digits=digits, percent=percent, ci=ci)
    best = _best_mask(values, digits, percent)
    header = ["detector"] + [f"{s} {METRIC_LABELS.get(m, m)}" for s, m in text.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["--:"] * text.shape[1]) + "|"]
    for i, det in enumerate(text.index):
        cells = [f"**{c}**" if best.iat[i, j] else c for j, c in enumerate(text.iloc[i])]
        lines.append("| " + " | ".join([str(det)] + cells) + " |")
    return "\n".join(lines)
