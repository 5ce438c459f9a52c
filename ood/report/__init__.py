"""Figures (seaborn) and tables used by the report notebook.

Tables take :func:`ood.metrics.summarize` output; figures take the tidy per-sample scores
(``detector, set, index, score, is_ood``) or the objects named in their signatures, and return
``matplotlib.figure.Figure`` objects.
"""

from ood.report.figures import (
    CONVENTION,
    ci_plot,
    confusion_matrix,
    detector_palette,
    pr_curves,
    roc_curves,
    sample_grid,
    score_histograms,
    training_curves,
)
from ood.report.tables import CAPTION, METRIC_LABELS, results_frame, results_markdown, results_table, results_values

__all__ = [
    "CAPTION",
    "CONVENTION",
    "METRIC_LABELS",
    "ci_plot",
    "confusion_matrix",
    "detector_palette",
    "pr_curves",
    "results_frame",
    "results_markdown",
    "results_table",
    "results_values",
    "roc_curves",
    "sample_grid",
    "score_histograms",
    "training_curves",
]
