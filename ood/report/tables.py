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

__all__ = ["METRIC_LABELS", "CAPTION", "caption", "glance_values", "glance_table", "paired_frame", "paired_table",
           "results_values", "results_frame", "results_table", "results_markdown"]

#: Table styles shared by the report's tables.
_STYLES = [
    {"selector": "th", "props": "text-align: center; padding: 2px 8px;"},
    {"selector": "td", "props": "text-align: right; padding: 2px 8px; white-space: nowrap;"},
    {"selector": "caption", "props": "caption-side: bottom; font-size: 85%; text-align: left;"},
]


def _source(styler, source: str | None):
    """Name the file a table's numbers come from (``data-source``; the report test checks them)."""
    return styler.set_table_attributes(f'data-source="{source}"') if source else styler

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
    source: str | None = None,
):
    """HTML-ready ``pandas.io.formats.style.Styler`` of one benchmark's results, best in bold;
    ``source``: the file the numbers come from (an HTML attribute of the table)."""
    values = results_values(summary_df, metric_pairs, "value")
    text = results_frame(summary_df, metric_pairs, digits=digits, percent=percent, ci=ci)
    best = _best_mask(values, digits, percent)
    text.columns = pd.MultiIndex.from_tuples([(s, METRIC_LABELS.get(m, m)) for s, m in text.columns], names=["set", "metric"])
    best.columns = text.columns
    styles = pd.DataFrame(np.where(best.to_numpy(), "font-weight: bold", ""), index=text.index, columns=text.columns)
    styler = _source(text.style.apply(lambda _: styles, axis=None).set_table_styles(_STYLES), source)
    return styler.set_caption(caption) if caption else styler


def glance_values(summary_df: pd.DataFrame, sets: Sequence[str], metric: str = "auroc", rank_by: str = "near") -> pd.DataFrame:
    """Detector x set values of one metric (point estimates), best ``rank_by`` first."""
    values = results_values(summary_df, (metric,)).droplevel(1, axis=1)[list(sets)].rename_axis(columns="set")  # (set, metric) -> set
    return values.sort_values(rank_by, ascending=not HIGHER_IS_BETTER.get(metric, True), kind="stable")


def glance_table(summary_df: pd.DataFrame, sets: Sequence[str], metric: str = "auroc", rank_by: str = "near",
                 *, caption: str | None = None, source: str | None = None):
    """The report's one-screen summary: :func:`glance_values` in percent, coloured from chance
    (red, 50) to perfect (green, 100) for AUROC (HTML class ``glance``)."""
    values = glance_values(summary_df, sets, metric, rank_by) * 100
    styler = values.style.format("{:.1f}").background_gradient(cmap="RdYlGn", vmin=50, vmax=100, axis=None)
    styler = styler.set_table_styles([{"selector": "td, th", "props": "padding: 1px 6px; text-align: right;"},
                                      {"selector": "caption", "props": "caption-side: bottom; font-size: 85%; text-align: left;"}])
    styler = styler.set_table_attributes(f'class="glance"{f" data-source={chr(34)}{source}{chr(34)}" if source else ""}')
    return styler.set_caption(caption) if caption else styler


def paired_frame(paired: pd.DataFrame, targets: Sequence[str], roles: Sequence[str] = ("vs MSP", "vs best baseline"),
                 *, alpha: float = 0.05, digits: int = 1) -> pd.DataFrame:
    """Detector x (target, comparison) cells ``"+3.1 [+2.0, +4.2] ✓"`` from a paired table
    (:func:`ood.pipeline.summarize.paired_differences` with ``p_holm``): the difference in points, its
    interval, ✓ where the Holm-adjusted p is at most ``alpha``. A comparison column is named by
    its reference detector (``vs msp``, ``vs best: knn``, ``vs energy``). With the seed spread
    (:func:`ood.report.seeds.with_seed_spread`: ``seed_std``, ``p_seed_holm``) a cell also shows the
    between-seed std of the difference (``sd 4.0``), and ✓ needs the test that counts it as well."""
    rows: dict[str, dict[tuple[str, str], str]] = {}
    columns: list[tuple[str, str]] = []
    for r in paired.itertuples(index=False):
        if r.set not in targets:
            continue
        for role in roles:
            if role in r.role.split("; "):
                column = (r.set, f"vs best: {r.b}" if role == "vs best baseline" else f"vs {r.b}")
                cell = f"{100 * r.diff:+.{digits}f} [{100 * r.lo:+.{digits}f}, {100 * r.hi:+.{digits}f}]"
                found = r.p_holm <= alpha
                seed_std = getattr(r, "seed_std", float("nan"))
                if not pd.isna(seed_std):
                    cell += f" sd {100 * seed_std:.{digits}f}"
                    found = found and r.p_seed_holm <= alpha
                rows.setdefault(r.a, {})[column] = cell + (" ✓" if found else "")
                columns += [column] if column not in columns else []
    columns.sort(key=lambda c: list(targets).index(c[0]))  # stable: the comparisons keep their order
    index = pd.MultiIndex.from_tuples(columns, names=["set", "comparison"])
    return pd.DataFrame.from_dict(rows, orient="index").reindex(columns=index).fillna("–").rename_axis("detector")


def paired_table(paired: pd.DataFrame, targets: Sequence[str], roles: Sequence[str] = ("vs MSP", "vs best baseline"),
                 *, alpha: float = 0.05, caption: str | None = None, source: str | None = None):
    """:func:`paired_frame` of one metric as a Styler: significant wins green, significant losses
    red (a lower FPR95 is a win)."""
    metrics = paired["metric"].unique()
    if len(metrics) != 1:
        raise ValueError(f"paired_table shows one metric at a time, got {list(metrics)}")
    text = paired_frame(paired, targets, roles, alpha=alpha)
    win = "+" if HIGHER_IS_BETTER[metrics[0]] else "-"

    def colour(cell: str) -> str:
        if "✓" not in cell:
            return ""
        return "background-color: #d9f0d3" if cell.startswith(win) else "background-color: #f4d3d3"

    styler = text.style.map(colour).set_table_styles(_STYLES)
    if source:
        styler = styler.set_table_attributes(f'data-source="{source}" data-metric="{metrics[0]}"')
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
