"""OOD metrics (numpy only). **OOD is the positive class**; every score is **higher = more OOD**.

Modules (everything public is re-exported here, so ``ood.metrics.X`` works for all of them):

:mod:`~ood.metrics.image`
    Image metrics ``auroc``, ``fpr95``, ``aupr_in``, ``aupr_out`` and the ROC curve.
:mod:`~ood.metrics.bootstrap`
    Bootstrap CIs of the image metrics, :func:`summarize` (tidy table) and :func:`to_metrics_json`.
:mod:`~ood.metrics.pixel`
    Dense pixel metrics ``ap``, ``fpr95``, ``auroc``: :class:`PixelMetrics`.
:mod:`~ood.metrics.components`
    SegmentMeIfYouCan component metrics ``siou``, ``ppv``, ``mean_f1``: :class:`ComponentMetrics`.
:mod:`~ood.metrics.dense`
    Both dense accumulators over a dataset: :func:`dense_metrics`, :func:`summarize_dense`.
:mod:`~ood.metrics.segmentation`
    Segmenter quality: :func:`pixel_confusion`, :func:`iou_per_class`, :func:`mean_iou`.
"""

from .bootstrap import (
    SUMMARY_COLUMNS,
    bootstrap_ci,
    bootstrap_samples,
    percentile_interval,
    summarize,
    to_metrics_json,
)
from .components import COMPONENT_METRICS, SMIYC_TAUS, SMIYC_TRACKS, ComponentMetrics
from .dense import DENSE_METRICS, dense_accumulators, dense_metrics, summarize_dense
from .image import (
    HIGHER_IS_BETTER,
    METRICS,
    aupr_in,
    aupr_out,
    auroc,
    fpr_at_tpr,
    image_metrics,
    roc_curve,
)
from .pixel import PIXEL_METRICS, VOID_LABEL, PixelMetrics
from .segmentation import iou_per_class, mean_iou, pixel_confusion

__all__ = [
    "METRICS",
    "HIGHER_IS_BETTER",
    "auroc",
    "fpr_at_tpr",
    "aupr_in",
    "aupr_out",
    "roc_curve",
    "image_metrics",
    "bootstrap_samples",
    "bootstrap_ci",
    "percentile_interval",
    "summarize",
    "to_metrics_json",
    "SUMMARY_COLUMNS",
    # dense
    "DENSE_METRICS",
    "PIXEL_METRICS",
    "COMPONENT_METRICS",
    "VOID_LABEL",
    "SMIYC_TAUS",
    "SMIYC_TRACKS",
    "PixelMetrics",
    "ComponentMetrics",
    "dense_accumulators",
    "dense_metrics",
    "summarize_dense",
    # segmenter quality
    "pixel_confusion",
    "iou_per_class",
    "mean_iou",
]
