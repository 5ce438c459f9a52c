"""Figures for the report notebook (matplotlib + seaborn).

Every function returns a :class:`matplotlib.figure.Figure` and never calls ``plt.show``. Figures
are created through pyplot, so the notebook idiom ``fig = figures.roc_curves(...); plt.show()``
displays them (scripts and tests should ``plt.close(fig)`` when done). Functions that draw one
panel accept ``ax=`` to draw into an existing axes instead (and return that axes' figure).

Convention shown on the plots: OOD = positive class, higher score = more OOD.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import matplotlib.pyplot as plt
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ood import metrics as M

__all__ = [
    "CONVENTION",
    "detector_palette",
    "roc_curves",
    "score_histograms",
    "sample_grid",
    "training_curves",
    "confusion_matrix",
    "ci_plot",
    "label_maps",
    "dense_gallery",
    "heatmap_grid",
    "gallery",
]

CONVENTION = "OOD = positive class, higher score = more OOD"
ID_COLOR = "0.45"


def detector_palette(detectors: Sequence[str]) -> dict[str, tuple]:
    """A fixed colour per detector (colour-blind safe), in the given order."""
    detectors = list(dict.fromkeys(detectors))
    colors = sns.color_palette("colorblind", max(len(detectors), 1))
    if len(detectors) > len(colors):  # pragma: no cover - seaborn cycles, keep it explicit
        colors = sns.color_palette("husl", len(detectors))
    return dict(zip(detectors, colors))


def _new_fig(nrows=1, ncols=1, *, figsize, **kw):
    fig = plt.figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def _grid_shape(n: int, col_wrap: int) -> tuple[int, int]:
    ncols = max(1, min(n, col_wrap))
    return int(np.ceil(n / ncols)), ncols


def _scores(df: pd.DataFrame, detector: str, set_name: str) -> np.ndarray:
    sub = df[(df["detector"] == detector) & (df["set"] == set_name)]
    if "index" in sub.columns:
        sub = sub.sort_values("index", kind="stable")
    return sub["score"].to_numpy(np.float64)


def _ood_sets(df: pd.DataFrame) -> list[str]:
    return [s for s in pd.unique(df["set"]) if s != "id"]


# --------------------------------------------------------------------------------------------
# ROC
# --------------------------------------------------------------------------------------------
def _curve_limits(fpr: np.ndarray, tpr: np.ndarray):
    """Distinct FPR values with the TPR on arrival (left) and on departure (right)."""
    xs, first = np.unique(fpr, return_index=True)
    last = np.r_[first[1:] - 1, fpr.size - 1]
    return xs, tpr[first], tpr[last]


def _eval_curve(xs, left, right, grid):
    """Left/right TPR of a piecewise-linear ROC curve at each grid FPR."""
    i = np.clip(np.searchsorted(xs, grid, side="right") - 1, 0, xs.size - 1)
    exact = xs[i] == grid
    j = np.minimum(i + 1, xs.size - 1)
    span = np.where(xs[j] > xs[i], xs[j] - xs[i], 1.0)
    lerp = right[i] + (left[j] - right[i]) * (grid - xs[i]) / span
    return np.where(exact, left[i], lerp), np.where(exact, right[i], lerp)


def _mean_roc(curves: list[tuple[np.ndarray, np.ndarray]]):
    """Vertical average of ROC curves, exact: its area is the mean of the curves' areas."""
    limits = [_curve_limits(f, t) for f, t in curves]
    grid = np.unique(np.concatenate([lim[0] for lim in limits]))
    lefts, rights = zip(*(_eval_curve(*lim, grid) for lim in limits))
    left, right = np.mean(lefts, axis=0), np.mean(rights, axis=0)
    return np.repeat(grid, 2), np.column_stack([left, right]).ravel()


def roc_curves(
    scores_df: pd.DataFrame,
    set_name: str | Sequence[str],
    detectors: Sequence[str] | None = None,
    *,
    groups: Mapping[str, Sequence[str]] | None = None,
    title: str | None = None,
    ax=None,
    figsize=(5.0, 4.6),
) -> Figure:
    """ROC curve of each detector for one OOD set (or group), OOD positive, AUROC in the legend.

    ``set_name`` is an OOD set, a list of sets, or a key of ``groups`` (e.g. ``"near"``). For
    several sets each detector's curve is the vertical average of its ROC curves over the sets,
    whose area is the unweighted mean AUROC shown in the legend (the ``near``/``far`` value of
    the tables). Lines drawn: one per detector, the chance diagonal and the TPR = 95 % guide
    (FPR95 is read where a curve crosses it). ``title`` replaces the first title line; the
    convention line is always shown.
    """
    groups = dict(groups or {})
    if isinstance(set_name, str):
        members = list(groups[set_name]) if set_name in groups else [set_name]
    else:
        members, set_name = list(set_name), "mean"
    if not members:
        raise ValueError("no OOD set to plot")
    all_detectors = list(pd.unique(scores_df["detector"]))
    detectors = all_detectors if detectors is None else list(detectors)
    palette = detector_palette(all_detectors + [d for d in detectors if d not in all_detectors])
    if ax is None:
        fig, axes = _new_fig(figsize=figsize)
        ax = axes[0, 0]
    fig = ax.figure

    for det in detectors:
        id_scores = _scores(scores_df, det, "id")
        curves, aurocs = [], []
        for s in members:
            ood = _scores(scores_df, det, s)
            if ood.size == 0 or id_scores.size == 0:
                raise ValueError(f"no scores for detector {det!r} on set {s!r} or on 'id'")
            fpr, tpr, _ = M.roc_curve(id_scores, ood)
            curves.append((fpr, tpr))
            aurocs.append(M.auroc(id_scores, ood))
        x, y = curves[0] if len(curves) == 1 else _mean_roc(curves)
        ax.plot(x, y, color=palette[det], lw=1.6, label=f"{det} ({100 * np.mean(aurocs):.1f})")

    ax.plot([0, 1], [0, 1], ls=":", color="0.6", lw=1, label="_chance")
    ax.axhline(0.95, ls="--", color="0.75", lw=0.8, label="_tpr95")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), aspect="equal")
    ax.set_xlabel("FPR (ID samples flagged OOD)")
    ax.set_ylabel("TPR (OOD samples detected)")
    lines = [title or f"ROC — {members[0] if len(members) == 1 else set_name}"]
    if len(members) > 1:
        lines.append(f"vertical mean over {', '.join(members)}")
    ax.set_title("\n".join(lines + [CONVENTION]), fontsize=9)
    ax.legend(title="detector (AUROC %)", fontsize=8, title_fontsize=8, loc="lower right")
    return fig


def pr_curves(scores_df: pd.DataFrame, set_name: str, detectors: Sequence[str] | None = None, *,
              groups: Mapping[str, Sequence[str]] | None = None, ax=None, figsize=(5.0, 4.6)) -> Figure:
    """Precision–recall curve of each detector, OOD positive, AUPR-Out (%) in the legend. For a
    group, precision is averaged over its sets at each recall (each set against the ID test set,
    as the tables' AUPR-Out is the sets' mean); the dotted line is the mean chance precision."""
    groups = dict(groups or {})
    members = list(groups[set_name]) if set_name in groups else [set_name]
    all_detectors = list(pd.unique(scores_df["detector"]))
    detectors = all_detectors if detectors is None else list(detectors)
    palette = detector_palette(all_detectors)
    if ax is None:
        fig, axes = _new_fig(figsize=figsize)
        ax = axes[0, 0]
    recall = np.linspace(0, 1, 201)
    chance = []
    for det in detectors:
        id_scores, precisions, aupr = _scores(scores_df, det, "id"), [], []
        for s in members:
            ood = _scores(scores_df, det, s)
            precisions.append(M.curve_points(id_scores, ood, recall.size)["precision"])
            aupr.append(M.aupr_out(id_scores, ood))
            chance.append(ood.size / (ood.size + id_scores.size))
        ax.plot(recall, np.mean(precisions, axis=0), color=palette[det], lw=1.6,
                label=f"{det} ({100 * np.mean(aupr):.1f})")
    ax.axhline(float(np.mean(chance)), ls=":", color="0.6", lw=1)
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="recall (OOD samples detected)", ylabel="precision (flagged that are OOD)")
    title = f"PR — {set_name}" + (f"\nmean over {', '.join(members)}" if len(members) > 1 else "")
    ax.set_title(f"{title}\n{CONVENTION}", fontsize=9)
    ax.legend(title="detector (AUPR-Out %)", fontsize=8, title_fontsize=8, loc="lower left")
    return ax.figure


# --------------------------------------------------------------------------------------------
# score distributions
# --------------------------------------------------------------------------------------------
def score_histograms(
    scores_df: pd.DataFrame,
    detector: str | None = None,
    *,
    set_name: str | None = None,
    sets: Sequence[str] | None = None,
    bins: int = 40,
    col_wrap: int = 4,
    panel_size: float = 2.8,
) -> Figure:
    """Score distributions of ID vs OOD (step histograms on common bins, each a density).

    Give ``detector`` for one facet per OOD set (``sets``, default all), or ``set_name`` for one
    facet per detector (ID vs that set). The facet title carries the AUROC. Non-finite scores are
    left out of the plot (and counted in the title).
    """
    if (detector is None) == (set_name is None):
        raise ValueError("give exactly one of detector= (facets = sets) or set_name= (facets = detectors)")
    if detector is not None:
        facets = list(sets) if sets is not None else _ood_sets(scores_df[scores_df["detector"] == detector])
        pairs = [(detector, s) for s in facets]
        suptitle = f"{detector}: score distributions ({CONVENTION})"
    else:
        facets = list(pd.unique(scores_df["detector"]))
        pairs = [(d, set_name) for d in facets]
        suptitle = f"{set_name}: score distributions ({CONVENTION})"
    if not pairs:
        raise ValueError("nothing to plot")
    palette = detector_palette(pd.unique(scores_df["detector"]))
    nrows, ncols = _grid_shape(len(pairs), col_wrap)
    width, height = panel_size * ncols + 0.4, panel_size * 0.85 * nrows + 0.5
    # fixed margins in inches instead of a layout engine: the report draws one figure per
    # detector, and constrained layout would double each one's drawing time
    fig = plt.figure(figsize=(width, height))
    axes = fig.subplots(nrows, ncols, squeeze=False, gridspec_kw=dict(
        left=0.3 / width, right=1 - 0.15 / width, bottom=0.55 / height, top=1 - 0.6 / height, wspace=0.12, hspace=0.55))
    flat = axes.ravel()
    for ax in flat[len(pairs) :]:
        fig.delaxes(ax)

    ood_color = sns.color_palette("colorblind")[3]
    for ax, (det, s) in zip(flat, pairs):
        id_scores, ood = _scores(scores_df, det, "id"), _scores(scores_df, det, s)
        a = M.auroc(id_scores, ood)
        dropped = int((~np.isfinite(id_scores)).sum() + (~np.isfinite(ood)).sum())
        finite_id, finite_ood = id_scores[np.isfinite(id_scores)], ood[np.isfinite(ood)]
        edges = np.histogram_bin_edges(np.r_[finite_id, finite_ood], bins)  # common bins
        color = palette[det] if detector is None else ood_color
        # numpy histograms drawn as steps: what seaborn's histplot(element="step") draws, at a
        # fraction of its cost (the report draws one facet per detector and set)
        for values, c, label in ((finite_id, ID_COLOR, "ID"), (finite_ood, color, "OOD")):
            if values.size:
                ax.stairs(np.histogram(values, edges, density=True)[0], edges, color=c, label=label, linewidth=1.2)
        title = f"{s if detector is not None else det} — AUROC {100 * a:.1f}"
        if dropped:
            title += f" ({dropped} non-finite not shown)"
        ax.set_title(title, fontsize=8)
        ax.set_yticks([])  # densities: the shapes matter, not the values
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.tick_params(labelsize=7)
    flat[0].legend(fontsize=7, frameon=False)
    fig.supxlabel("score (higher = more OOD); step histograms, each a density", fontsize=8)
    fig.suptitle(suptitle, fontsize=10)
    return fig


# --------------------------------------------------------------------------------------------
# images
# --------------------------------------------------------------------------------------------
def _to_image(x) -> tuple[np.ndarray, str | None]:
    """(C,H,W) or (H,W) array/tensor in [0, 1] -> (H,W[,3]) numpy image and colormap."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
    a = np.asarray(x, dtype=np.float32)
    if a.ndim == 3 and a.shape[0] in (1, 3):
        a = a[0] if a.shape[0] == 1 else np.moveaxis(a, 0, -1)
    elif a.ndim == 3 and a.shape[-1] in (1, 3):
        a = a[..., 0] if a.shape[-1] == 1 else a
    if a.ndim not in (2, 3):
        raise ValueError(f"cannot show an image of shape {np.shape(x)}")
    return np.clip(a, 0.0, 1.0), ("gray" if a.ndim == 2 else None)


def sample_grid(
    datasets: Mapping[str, object],
    n: int = 8,
    *,
    seed: int | None = None,
    class_names: Sequence[str] | None = None,
    cell: float = 1.1,
) -> Figure:
    """A grid of example images: one row per dataset (name on the left), ``n`` images per row.

    Datasets yield ``(image, label)`` (or just an image), images as (C,H,W) tensors/arrays in
    [0, 1], grayscale (C = 1) or RGB (C = 3). ``seed=None`` shows the first ``n`` items, an int a
    seeded random choice. With ``class_names``, non-negative labels are written above the images.
    """
    names = list(datasets)
    if not names:
        raise ValueError("no datasets")
    fig, axes = _new_fig(len(names), n, figsize=(cell * n, cell * len(names) + 0.3))
    for r, name in enumerate(names):
        ds = datasets[name]
        size = len(ds)
        if seed is None:
            idx = np.arange(min(n, size))
        else:
            idx = np.sort(np.random.default_rng(seed).choice(size, size=min(n, size), replace=False))
        for c in range(n):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c == 0:
                ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
            if c >= len(idx):
                continue
            item = ds[int(idx[c])]
            img, label = (item[0], item[1]) if isinstance(item, (tuple, list)) else (item, None)
            arr, cmap = _to_image(img)
            ax.imshow(arr, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
            if class_names is not None and label is not None:
                lab = int(label)
                if 0 <= lab < len(class_names):
                    ax.set_title(str(class_names[lab]), fontsize=7)
    return fig


# --------------------------------------------------------------------------------------------
# training and classification
# --------------------------------------------------------------------------------------------
def training_curves(history, *, title: str | None = None, figsize=(8.0, 3.2)) -> Figure:
    """Loss and accuracy per epoch (train and validation).

    ``history``: a DataFrame or a dict of equal-length lists with any of ``train_loss,
    val_loss, train_acc, val_acc`` and optionally ``epoch`` (default 1, 2, ...). One panel for
    the losses, one for the accuracies (if present).
    """
    df = pd.DataFrame(history)
    if df.empty:
        raise ValueError("empty history")
    epoch = df["epoch"].to_numpy() if "epoch" in df.columns else np.arange(1, len(df) + 1)
    panels = [(k, [c for c in (f"train_{k}", f"val_{k}") if c in df.columns]) for k in ("loss", "acc")]
    panels = [(k, cols) for k, cols in panels if cols]
    if not panels:
        raise ValueError("history has none of train_loss, val_loss, train_acc, val_acc")
    fig, axes = _new_fig(1, len(panels), figsize=figsize)
    styles = {"train": dict(color="C0", marker="o", ms=3), "val": dict(color="C1", marker="s", ms=3)}
    for ax, (k, cols) in zip(axes[0], panels):
        for c in cols:
            split = c.split("_", 1)[0]
            ax.plot(epoch, df[c].to_numpy(dtype=float), label="validation" if split == "val" else "train", **styles[split])
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("loss" if k == "loss" else "accuracy")
        ax.set_title("loss" if k == "loss" else "accuracy", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def confusion_matrix(
    y_true,
    y_pred,
    class_names: Sequence[str],
    *,
    normalize: bool = True,
    figsize=None,
) -> Figure:
    """Confusion-matrix heatmap (rows = true class, columns = predicted); accuracy in the title.

    ``normalize=True`` shows each row as fractions (per-class recall), else counts.
    """
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError("y_true and y_pred differ in length")
    k = len(class_names)
    if y_true.size and (min(y_true.min(), y_pred.min()) < 0 or max(y_true.max(), y_pred.max()) >= k):
        raise ValueError("labels must lie in [0, len(class_names))")
    cm = np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)
    shown = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalize else cm
    size = figsize or (1.0 + 0.55 * k, 0.6 + 0.5 * k)
    fig, axes = _new_fig(figsize=size)
    ax = axes[0, 0]
    sns.heatmap(
        shown,
        annot=k <= 20,
        fmt=".2f" if normalize else "d",
        annot_kws={"fontsize": 7},
        cmap="Blues",
        vmin=0,
        vmax=1 if normalize else None,
        square=True,
        xticklabels=class_names,
        yticklabels=class_names,
        cbar_kws={"shrink": 0.8},
        ax=ax,
    )
    acc = float(np.trace(cm) / max(cm.sum(), 1))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix{' (row-normalised)' if normalize else ''} — accuracy {100 * acc:.1f} %", fontsize=10)
    ax.tick_params(axis="x", labelsize=8)
    for label in ax.get_xticklabels():
        label.set(rotation=45, ha="right", rotation_mode="anchor")
    ax.tick_params(axis="y", labelrotation=0, labelsize=8)
    return fig


# --------------------------------------------------------------------------------------------
# metric overview with confidence intervals
# --------------------------------------------------------------------------------------------
def ci_plot(
    summary_df: pd.DataFrame,
    metric: str = "auroc",
    *,
    sets: Sequence[str] | None = None,
    ax=None,
    figsize=None,
) -> Figure:
    """Point estimate and bootstrap interval of one metric, per set (x) and detector (colour)."""
    df = summary_df[summary_df["metric"] == metric]
    if df.empty:
        raise ValueError(f"no rows for metric {metric!r}")
    sets = list(sets) if sets is not None else list(pd.unique(df["set"]))
    detectors = list(pd.unique(df["detector"]))
    palette = detector_palette(detectors)
    if ax is None:
        fig, axes = _new_fig(figsize=figsize or (2.2 + 0.9 * len(sets), 3.6))
        ax = axes[0, 0]
    fig = ax.figure
    width = 0.8 / max(len(detectors), 1)
    for i, det in enumerate(detectors):
        sub = df[df["detector"] == det].set_index("set").reindex(sets)
        x = np.arange(len(sets)) - 0.4 + width * (i + 0.5)
        v = sub["value"].to_numpy(float) * 100
        err = np.vstack([v - sub["lo"].to_numpy(float) * 100, sub["hi"].to_numpy(float) * 100 - v])
        ax.errorbar(x, v, yerr=np.clip(err, 0, None), fmt="o", ms=4, capsize=2, color=palette[det], label=det)
    ax.set_xticks(np.arange(len(sets)), sets, rotation=30, ha="right")
    label = {"auroc": "AUROC", "fpr95": "FPR95", "aupr_in": "AUPR-In", "aupr_out": "AUPR-Out"}.get(metric, metric)
    better = "higher" if M.HIGHER_IS_BETTER.get(metric, True) else "lower"
    ax.set_ylabel(f"{label} % ({better} is better)")
    ax.set_title(f"{label} with bootstrap interval\n{CONVENTION}", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(title="detector", fontsize=7, title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


# --------------------------------------------------------------------------------------------------
# dense benchmarks


def _mask_rgb(label: np.ndarray) -> np.ndarray:
    """OOD mask as colours: ID black, OOD orange, void grey (SMIYC convention 0 / 1 / 255)."""
    rgb = np.zeros((*label.shape, 3), dtype=np.float32)
    rgb[label == 1] = (1.0, 0.55, 0.0)
    rgb[label == M.VOID_LABEL] = (0.6, 0.6, 0.6)
    return rgb


def label_maps(images, labels, preds, class_names: Sequence[str], *, n: int = 6, cell: float = 1.8) -> Figure:
    """Scenes with their ground-truth semantic labels and the segmenter's prediction (void grey)."""
    n = min(n, len(images))
    cmap = plt.get_cmap("tab10", len(class_names))
    fig, axes = _new_fig(3, n, figsize=(cell * n, cell * 3 + 0.6))
    for j in range(n):
        img, img_cmap = _to_image(images[j])
        axes[0, j].imshow(img, cmap=img_cmap, vmin=0, vmax=1)
        for row, lab in ((1, np.asarray(labels[j])), (2, np.asarray(preds[j]))):
            shown = np.ma.masked_where(lab == M.VOID_LABEL, lab)
            axes[row, j].set_facecolor("0.6")
            axes[row, j].imshow(shown, cmap=cmap, vmin=-0.5, vmax=len(class_names) - 0.5, interpolation="nearest")
    for row, title in enumerate(("image", "ground truth", "prediction")):
        axes[row, 0].set_ylabel(title)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(i)) for i in range(len(class_names))]
    fig.legend(handles, class_names, loc="lower center", ncol=min(len(class_names), 7), fontsize=8, frameon=False)
    fig.get_layout_engine().set(rect=(0, 0.06, 1, 0.94))
    return fig


def dense_gallery(images, labels, maps: Mapping[str, np.ndarray], *, n: int = 6, cell: float = 1.7,
                  title: str | None = None) -> Figure:
    """Rows = scenes; columns = image, OOD ground truth (orange OOD, grey void), then each
    detector's anomaly map (per-detector colour scale over the shown scenes; brighter = more OOD)."""
    n = min(n, len(images))
    cols = 2 + len(maps)
    fig, axes = _new_fig(n, cols, figsize=(cell * cols, cell * n + 0.5))
    for i in range(n):
        img, img_cmap = _to_image(images[i])
        axes[i, 0].imshow(img, cmap=img_cmap, vmin=0, vmax=1)
        axes[i, 1].imshow(_mask_rgb(np.asarray(labels[i])), interpolation="nearest")
        for j, (name, m) in enumerate(maps.items(), start=2):
            shown = np.asarray(m[:n], dtype=np.float32)
            lo, hi = np.nanpercentile(shown, [1, 99])
            axes[i, j].imshow(shown[i], cmap="magma", vmin=lo, vmax=hi if hi > lo else lo + 1e-6)
    for j, name in enumerate(["image", "OOD ground truth", *maps]):
        axes[0, j].set_title(name, fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title or f"Anomaly maps ({CONVENTION})", fontsize=10)
    return fig


def heatmap_grid(sets: Mapping[str, tuple[Any, np.ndarray]], *, n: int = 8, cell: float = 1.2,
                 title: str | None = None) -> Figure:
    """Per set, a row of images and below it a row of their heatmaps ``|h|`` on **one** colour
    scale shared by every set, so that "brighter" means the same everywhere."""
    n = min(n, *(len(m) for _, m in sets.values()))
    hi = max(float(np.nanpercentile(np.asarray(m[:n], dtype=np.float32), 99.5)) for _, m in sets.values()) or 1e-6
    fig, axes = _new_fig(2 * len(sets), n, figsize=(cell * n, cell * 2 * len(sets) + 0.5))
    for r, (name, (images, maps)) in enumerate(sets.items()):
        for j in range(n):
            img, img_cmap = _to_image(images[j])
            axes[2 * r, j].imshow(img, cmap=img_cmap, vmin=0, vmax=1)
            axes[2 * r + 1, j].imshow(np.asarray(maps[j]), cmap="magma", vmin=0, vmax=hi)
        axes[2 * r, 0].set_ylabel(name, fontsize=9)
        axes[2 * r + 1, 0].set_ylabel("|h|", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title or f"Heatmaps |h| (one colour scale, 0 to {hi:.2f})", fontsize=10)
    return fig


def gallery(item: Any) -> Figure:
    """Draw a method's :class:`ood.detectors.Gallery` (figure data its stage hooks return) with
    the function its ``kind`` names."""
    draw = {"samples": sample_grid, "heatmaps": heatmap_grid, "dense": dense_gallery, "labels": label_maps}
    fig = draw[item.kind](*item.args, **item.kwargs)
    if item.title:
        fig.suptitle(item.title, fontsize=10)
    return fig
