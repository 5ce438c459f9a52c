"""Semantic segmentation quality of the segmenter (the dense benchmarks' "model" metric):
confusion matrix, per-class IoU and mean IoU.
"""

from __future__ import annotations

import numpy as np

from .pixel import VOID_LABEL

__all__ = ["pixel_confusion", "iou_per_class", "mean_iou"]


def pixel_confusion(pred, target, num_classes: int, ignore_index: int = VOID_LABEL) -> np.ndarray:
    """Confusion matrix ``[true, predicted]`` over the non-void pixels of label maps of any shape."""
    pred = np.asarray(pred).reshape(-1)
    target = np.asarray(target).reshape(-1)
    keep = target != ignore_index
    idx = target[keep].astype(np.int64) * num_classes + pred[keep].astype(np.int64)
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def iou_per_class(confusion: np.ndarray) -> np.ndarray:
    """IoU of every class, ``TP / (TP + FP + FN)``; NaN for a class absent from targets and predictions."""
    confusion = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def mean_iou(confusion: np.ndarray) -> float:
    """Mean IoU over the classes present (the usual mIoU of Cityscapes-style benchmarks)."""
    return float(np.nanmean(iou_per_class(confusion)))
