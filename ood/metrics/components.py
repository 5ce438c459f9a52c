"""SegmentMeIfYouCan component-level metrics ``siou``, ``ppv`` and ``mean_f1``: :class:`ComponentMetrics`."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .bootstrap import _interval, _multiplicities
from .pixel import _dense_images, _label_masks

__all__ = ["COMPONENT_METRICS", "SMIYC_TAUS", "SMIYC_TRACKS", "ComponentMetrics"]

# Component metrics follow the SMIYC paper (Chan et al., NeurIPS 2021 Datasets & Benchmarks,
# Sec. 4) and road-anomaly-benchmark metrics/instance_segmentation.py; the differences are listed
# in :class:`ComponentMetrics`.

#: Component metric names, in report order (all in [0, 1]).
COMPONENT_METRICS: tuple[str, ...] = ("siou", "ppv", "mean_f1")
#: sIoU/PPV thresholds tau of the component F1: 0.25, 0.30, ..., 0.75 (SMIYC: ``np.linspace(0.25,
#: 0.75, 11)``). Written as k/20, the correctly rounded value, so that a component whose ratio is
#: exactly tau compares equal to it (linspace gives e.g. 0.30000000000000004).
SMIYC_TAUS: tuple[float, ...] = tuple(k / 20 for k in range(5, 16))
#: Component-size thresholds of the two SMIYC tracks (road-anomaly-benchmark ``MetricSegment``
#: configs 'SegEval-AnomalyTrack' / 'SegEval-ObstacleTrack': ``thresh_segsize`` = ``min_size``,
#: ``thresh_instsize`` = ``min_gt_size``). They are in pixels at the datasets' full resolution.
SMIYC_TRACKS: dict[str, dict[str, int]] = {
    "anomaly": {"min_size": 500, "min_gt_size": 100},
    "obstacle": {"min_size": 50, "min_gt_size": 10},
}


# --------------------------------------------------------------------------------------------
# component metrics (SegmentMeIfYouCan)
# --------------------------------------------------------------------------------------------
class ComponentMetrics:
    """SegmentMeIfYouCan component-level metrics ``siou``, ``ppv`` and ``mean_f1``.

    Per image (``update``): the segmentation is ``score >= threshold`` on valid pixels (predicted
    pixels on void are dropped *before* the connected components, so components never bridge void);
    connected components (``connectivity=8``: SMIYC's ``np.ones((3, 3))`` structure) of the
    ground-truth anomaly mask ``label == 1`` and of the segmentation; predicted components with
    fewer than ``min_size`` pixels are removed (counted on the whole image, SMIYC
    ``thresh_segsize``); ground-truth components with fewer than ``min_gt_size`` pixels become void
    (SMIYC ``thresh_instsize``): they are neither targets nor count in any predicted component.
    Everything below is then counted on the remaining valid pixels.

    * ``sIoU(k)`` of a ground-truth component ``k``: with ``P(k)`` the union of the predicted
      components that intersect ``k`` and ``A(k)`` the pixels of ``P(k)`` that belong to *other*
      ground-truth components, ``|k ∩ P(k)| / |(k ∪ P(k)) \\ A(k)|`` (a prediction covering two
      adjacent objects is not penalised for the other object).
    * ``PPV(p)`` of a predicted component ``p``: the fraction of its pixels on ground-truth anomaly.
    * For each ``tau`` of ``taus``: TP = ground-truth components with ``sIoU > tau``, FN = the other
      ground-truth components, FP = predicted components with ``PPV <= tau`` (``tau_rule="paper"``,
      Chan et al. 2021, Sec. 4.2); ``F1(tau) = 2 TP / (2 TP + FN + FP)`` with the counts summed
      over all images; ``mean_f1`` is the mean over ``taus``.
    * ``siou`` / ``ppv``: means over all ground-truth / predicted components of the dataset (pooled
      over images, not per-image means), as the benchmark's ``sIoU_gt`` / ``prec_pred``.

    An image without anomalies contributes only its predicted components (all FP at every tau).
    ``siou`` is NaN without any ground-truth component, ``ppv`` without any predicted component,
    ``mean_f1`` without either.

    Args:
        threshold: score threshold of the segmentation (required). SMIYC uses the threshold of best
            pixel F1 of the same method on the same dataset: :meth:`PixelMetrics.best_f1_threshold`
            (what :func:`dense_accumulators` does by default). That tunes on the test data; pass a
            threshold chosen elsewhere for a stricter protocol.
        min_size, min_gt_size: component-size thresholds in pixels; defaults are the SMIYC anomaly
            track (500 / 100); the obstacle track uses 50 / 10 (:data:`SMIYC_TRACKS`). They refer
            to the benchmarks' full resolution: scale them for smaller images.
        taus: sIoU/PPV thresholds of the F1 (default :data:`SMIYC_TAUS`, 0.25 ... 0.75 by 0.05).
        connectivity: 8 (SMIYC) or 4.
        tau_rule: ``"paper"`` (TP if sIoU > tau, FP if PPV <= tau) or ``"code"``, the
            benchmark implementation (``segment_metrics``: TP if sIoU >= tau, FP if PPV < tau).
            They differ only for a ratio exactly equal to a tau.

    Differences from road-anomaly-benchmark's code: the segmentation is ``score >= threshold``
    (this module's convention; the code uses ``>``), taus are the exact multiples of 0.05 (the code's
    linspace values are off by an ulp, so its comparisons at an exact ratio are arbitrary), and the
    best-F1 threshold comes from our pixel histogram rather than its per-frame quantile bins.

    Bootstrap: like :class:`PixelMetrics` (same stream for the same ``key`` and number of images,
    so pixel and component replicates are paired), recomputing the pooled metrics from per-image
    sums; the threshold stays fixed (re-segmenting per resample is not possible from the kept
    statistics, and SMIYC fixes it too).
    """

    def __init__(
        self,
        threshold: float,
        *,
        min_size: int = 500,
        min_gt_size: int = 100,
        taus: Sequence[float] = SMIYC_TAUS,
        connectivity: int = 8,
        tau_rule: str = "paper",
    ):
        threshold = float(threshold)
        if math.isnan(threshold):
            raise ValueError("threshold is NaN")
        if connectivity not in (4, 8):
            raise ValueError("connectivity must be 4 or 8")
        if tau_rule not in ("paper", "code"):
            raise ValueError("tau_rule must be 'paper' or 'code'")
        if min_size < 0 or min_gt_size < 0:
            raise ValueError("size thresholds must be >= 0")
        self.threshold = threshold
        self.min_size = int(min_size)
        self.min_gt_size = int(min_gt_size)
        self.taus = tuple(float(t) for t in taus)
        if not self.taus:
            raise ValueError("taus is empty")
        self.connectivity = connectivity
        self.tau_rule = tau_rule
        self._siou: list[np.ndarray] = []  # per image: sIoU of each ground-truth component
        self._ppv: list[np.ndarray] = []  # per image: PPV of each predicted component

    @property
    def n_images(self) -> int:
        return len(self._siou)

    def _settings(self):
        return (self.threshold, self.min_size, self.min_gt_size, self.taus, self.connectivity, self.tau_rule)

    def update(self, score_map, label) -> ComponentMetrics:
        """Add one image ``[H, W]`` or a batch ``[N, H, W]`` (numpy or torch); returns ``self``."""
        for scores, lab in _dense_images(score_map, label):
            siou, ppv = self._image_components(scores, lab)
            self._siou.append(siou)
            self._ppv.append(ppv)
        return self

    def _image_components(self, scores: np.ndarray, lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from scipy import ndimage

        inl, ano = _label_masks(lab)
        valid = inl | ano
        structure = ndimage.generate_binary_structure(2, 2 if self.connectivity == 8 else 1)
        gt, n_gt = ndimage.label(ano, structure)
        pred, n_pred = ndimage.label((scores >= self.threshold) & valid, structure)
        if n_pred and self.min_size > 0:  # drop small predicted components (whole-image size)
            keep = np.bincount(pred.ravel(), minlength=n_pred + 1) >= self.min_size
            keep[0] = False
            relabel = np.zeros(n_pred + 1, dtype=pred.dtype)
            relabel[keep] = np.arange(1, np.count_nonzero(keep) + 1)
            pred, n_pred = relabel[pred], int(np.count_nonzero(keep))
        roi = valid
        if n_gt and self.min_gt_size > 0:  # small ground-truth components become void
            small = np.bincount(gt.ravel(), minlength=n_gt + 1) < self.min_gt_size
            small[0] = False
            if small.any():
                roi = valid & ~small[gt]
        g = gt[roi].astype(np.int64)
        p = pred[roi].astype(np.int64)
        size_g = np.bincount(g, minlength=n_gt + 1)
        size_p = np.bincount(p, minlength=n_pred + 1)
        # contingency of (ground-truth component, predicted component) pairs that overlap
        both = (g > 0) & (p > 0)
        pairs, overlap = np.unique(g[both] * (n_pred + 1) + p[both], return_counts=True)
        gi, pj = pairs // (n_pred + 1), pairs % (n_pred + 1)
        on_gt = np.bincount(pj, weights=overlap, minlength=n_pred + 1)  # pixels of p on any gt
        inter = np.bincount(gi, weights=overlap, minlength=n_gt + 1)
        pred_area = np.bincount(gi, weights=size_p[pj], minlength=n_gt + 1)  # |P(k)|
        adjust = np.bincount(gi, weights=on_gt[pj] - overlap, minlength=n_gt + 1)  # |A(k)|
        union = pred_area + size_g - inter - adjust
        gt_ids = np.flatnonzero(size_g[1:]) + 1
        pred_ids = np.flatnonzero(size_p[1:]) + 1
        return inter[gt_ids] / union[gt_ids], on_gt[pred_ids] / size_p[pred_ids]

    def merge(self, other: ComponentMetrics) -> ComponentMetrics:
        """Add ``other``'s images to ``self`` (same settings); returns ``self``."""
        if self._settings() != other._settings():
            raise ValueError("cannot merge ComponentMetrics with different settings")
        if other is self:
            raise ValueError("cannot merge an accumulator into itself")
        self._siou.extend(other._siou)
        self._ppv.extend(other._ppv)
        return self

    @classmethod
    def merged(cls, *parts: ComponentMetrics) -> ComponentMetrics:
        """A new accumulator holding the images of all ``parts`` in order."""
        if not parts:
            raise ValueError("merged() needs at least one accumulator")
        p0 = parts[0]
        out = cls(
            p0.threshold,
            min_size=p0.min_size,
            min_gt_size=p0.min_gt_size,
            taus=p0.taus,
            connectivity=p0.connectivity,
            tau_rule=p0.tau_rule,
        )
        for p in parts:
            out.merge(p)
        return out

    def _image_stats(self) -> np.ndarray:
        """``(n_images, 4 + 2 * n_taus)``: sIoU sum, #gt, PPV sum, #pred, TP per tau, FP per tau."""
        taus = np.asarray(self.taus)
        rows = np.zeros((self.n_images, 4 + 2 * taus.size))
        for i, (siou, ppv) in enumerate(zip(self._siou, self._ppv)):
            rows[i, :4] = siou.sum(), siou.size, ppv.sum(), ppv.size
            if self.tau_rule == "paper":
                tp = (siou[:, None] > taus).sum(axis=0)
                fp = (ppv[:, None] <= taus).sum(axis=0)
            else:
                tp = (siou[:, None] >= taus).sum(axis=0)
                fp = (ppv[:, None] < taus).sum(axis=0)
            rows[i, 4 : 4 + taus.size] = tp
            rows[i, 4 + taus.size :] = fp
        return rows

    def _from_sums(self, sums: np.ndarray) -> dict[str, np.ndarray]:
        """Metrics of each row of summed per-image statistics ``(B, 4 + 2 n_taus)``."""
        n = len(self.taus)
        with np.errstate(invalid="ignore", divide="ignore"):
            siou = sums[:, 0] / sums[:, 1]
            ppv = sums[:, 2] / sums[:, 3]
            tp = sums[:, 4 : 4 + n]
            fn = sums[:, 1:2] - tp
            fp = sums[:, 4 + n :]
            f1 = 2 * tp / (2 * tp + fn + fp)
        return {"siou": siou, "ppv": ppv, "mean_f1": f1.mean(axis=1), "f1": f1, "tp": tp, "fn": fn, "fp": fp}

    def compute(self) -> dict[str, float]:
        """``{"siou", "ppv", "mean_f1"}`` over all images seen (NaN where undefined, see above)."""
        if not self.n_images:
            raise ValueError("no images")
        m = self._from_sums(self._image_stats().sum(axis=0, keepdims=True))
        return {k: float(m[k][0]) for k in COMPONENT_METRICS}

    def per_tau(self) -> dict[str, np.ndarray]:
        """Pooled counts and F1 per tau: ``{"tau", "tp", "fn", "fp", "f1"}`` (arrays over taus)."""
        if not self.n_images:
            raise ValueError("no images")
        m = self._from_sums(self._image_stats().sum(axis=0, keepdims=True))
        out = {"tau": np.asarray(self.taus)}
        out.update({k: m[k][0] for k in ("tp", "fn", "fp", "f1")})
        return out

    def components(self) -> dict[str, list[np.ndarray]]:
        """Per image, the sIoU of each ground-truth and the PPV of each predicted component."""
        return {"siou": [a.copy() for a in self._siou], "ppv": [a.copy() for a in self._ppv]}

    def bootstrap_samples(self, n_boot: int = 200, seed: int = 0, key: str = "dense") -> dict[str, np.ndarray]:
        """Replicates ``{metric: array (n_boot,)}`` over images resampled with replacement."""
        mult = _multiplicities(self.n_images, n_boot, seed, key)
        m = self._from_sums(mult @ self._image_stats())
        return {k: m[k] for k in COMPONENT_METRICS}

    def bootstrap(
        self, n_boot: int = 200, level: float = 0.95, seed: int = 0, key: str = "dense"
    ) -> dict[str, tuple[float, float]]:
        """Percentile intervals ``{metric: (lo, hi)}`` (replicates with an undefined metric dropped)."""
        reps = self.bootstrap_samples(n_boot, seed, key)
        return {k: _interval(reps[k], level) for k in COMPONENT_METRICS}

    def __repr__(self) -> str:
        return (
            f"ComponentMetrics(threshold={self.threshold:g}, min_size={self.min_size}, "
            f"min_gt_size={self.min_gt_size}, images={self.n_images})"
        )
