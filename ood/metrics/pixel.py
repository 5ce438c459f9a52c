"""Dense (per-pixel) OOD metrics: streaming pixel ``ap``, ``fpr95`` and ``auroc``
(:class:`PixelMetrics`), and the dense label handling shared with :mod:`ood.metrics.components`.
"""

from __future__ import annotations

import math

import numpy as np

from .bootstrap import _MAX_CELLS, _interval, _multiplicities
from .image import _metrics_from_counts

__all__ = ["PIXEL_METRICS", "VOID_LABEL", "PixelMetrics"]

# ============================================================================================
# dense (per-pixel) metrics
# ============================================================================================
#
# Labels follow SegmentMeIfYouCan (SMIYC): per pixel 0 = inlier, 1 = anomaly (OOD, the positive
# class), 255 = void, ignored by every dense metric. Score maps: higher = more OOD.
#
# Pixel metrics are pooled over all valid pixels of a dataset (not averaged over images), as in
# Fishyscapes and SMIYC: ``ap`` = average precision with the anomaly positive (the image
# ``aupr_out``), ``fpr95`` and ``auroc`` with exactly the image conventions
# (:mod:`ood.metrics.image`).
#
# How SMIYC's benchmark code bins (road-anomaly-benchmark, metrics/pixel_classification.py and
# pixel_classification_curves.py), and what we do the same or differently:
#   * Same: void pixels are dropped; AP is the step-wise sum sum_k (R_k - R_{k-1}) P_k (they changed
#     it to match sklearn), FPR95 is the FPR at the first operating point with TPR >= 0.95 (their
#     ``searchsorted(tpr, 0.95)``), AUROC is the trapezoidal area of the ROC of the binned counts,
#     which equals Mann-Whitney with ties counting one half on the binned scores (our ``auroc``).
#   * Different: their default ('PixBinaryClass') quantises every frame on its *own* bin edges — 768
#     bins at quantiles of that frame's anomaly and inlier scores, plus 0 and 1 — and pools frames
#     by sorting all frames' edges; their other config uses 4096 uniform bins on [0, 1], which
#     assumes probabilities. A frame's pixels are thereby moved to their bin's edge, which can
#     misorder them against a dense cluster of another frame's scores inside that bin, with no
#     simple bound on the effect. We quantise every pixel of the dataset on **one** lattice of
#     power-of-two width that adapts to the data (no score range needed in advance, unbounded
#     scores fine), so the binned metrics are exactly the metrics of the quantised scores, the
#     result does not depend on the order in which images arrive, and a rigorous error bound can be
#     read off the histogram (:meth:`PixelMetrics.error_bound`). ``bins=None`` keeps every score
#     (exact, equal to sklearn).

#: Pixel metric names, in report order (all in [0, 1]).
PIXEL_METRICS: tuple[str, ...] = ("ap", "fpr95", "auroc")
#: Void label (SMIYC, Cityscapes' ignore index); equals ``ood.data.benchmark.IGNORE_INDEX``.
VOID_LABEL = 255


def _to_numpy(x) -> np.ndarray:
    """numpy view of a numpy array or torch tensor (duck-typed: this module does not import torch)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu()
        if x.is_floating_point():
            x = x.double()  # float16/bfloat16 have no (or no exact) numpy counterpart
        return x.numpy()
    return np.asarray(x)


def _dense_images(score_map, label):
    """Yield ``(scores float64 [H, W], label [H, W])`` per image of a ``[H, W]`` or ``[N, H, W]`` pair."""
    s = _to_numpy(score_map)
    lab = _to_numpy(label)
    if s.shape != lab.shape:
        raise ValueError(f"score map shape {s.shape} differs from label shape {lab.shape}")
    if s.ndim == 2:
        s, lab = s[None], lab[None]
    elif s.ndim != 3:
        raise ValueError(f"expected [H, W] or [N, H, W] maps, got shape {s.shape}")
    for i in range(s.shape[0]):
        yield np.asarray(s[i], dtype=np.float64), lab[i]


def _label_masks(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(inlier, anomaly)`` boolean masks; raises on labels other than 0, 1 and 255."""
    inl = lab == 0
    ano = lab == 1
    n_void = np.count_nonzero(lab == VOID_LABEL) if lab.dtype != np.bool_ else 0
    if np.count_nonzero(inl) + np.count_nonzero(ano) + n_void != lab.size:
        bad = np.setdiff1d(np.unique(lab), [0, 1, VOID_LABEL])[:5]
        raise ValueError(f"dense labels must be 0 (inlier), 1 (anomaly) or {VOID_LABEL} (void); found {bad}")
    return inl, ano


def _pixel_metrics_from_counts(c_id: np.ndarray, c_ood: np.ndarray, tpr: float) -> dict[str, np.ndarray]:
    """Pixel metrics of each row of ``(B, V)`` ascending count matrices; NaN where a class is empty."""
    with np.errstate(invalid="ignore", divide="ignore"):
        m = _metrics_from_counts(c_id, c_ood, tpr)
    empty = (c_id.sum(axis=1) == 0) | (c_ood.sum(axis=1) == 0)
    out = {"ap": m["aupr_out"], "fpr95": m["fpr95"], "auroc": m["auroc"]}
    return {k: np.where(empty, np.nan, v.astype(np.float64)) for k, v in out.items()}


# --------------------------------------------------------------------------------------------
# pixel metrics
# --------------------------------------------------------------------------------------------
_MANTISSA = 53  # float64 significand bits: no lattice finer than the scores' own spacing


def _min_exponent(maxabs: float) -> int:
    """Smallest lattice exponent for scores up to ``maxabs``: |score / 2**e| < 2**53 (fits int64)."""
    return math.frexp(maxabs)[1] - _MANTISSA


def _lattice_span(lo: float, hi: float, e: int) -> int:
    return math.floor(math.ldexp(hi, -e)) - math.floor(math.ldexp(lo, -e)) + 1


class PixelMetrics:
    """Streaming pixel ``ap``, ``fpr95`` and ``auroc`` over all valid pixels of a dataset.

    ``update(score_map, label)`` takes one image ``[H, W]`` or a batch ``[N, H, W]`` (numpy or
    torch; each of the ``N`` maps is one image for the bootstrap); labels 0 inlier, 1 anomaly,
    255 void (void pixels are ignored, their scores may be anything, even NaN). ``compute()``
    returns ``{"ap", "fpr95", "auroc"}`` of the pooled valid pixels, anomaly positive, with the
    image conventions (``ap`` is ``aupr_out``; ``fpr95`` as :func:`fpr_at_tpr`).

    Args:
        bins: resolution of the binned path (default ``2**16``), or ``None`` for the exact path,
            which keeps every distinct score of every image (equal to sklearn). The exact path is
            for tests and small sets (up to ~1e6 pixels): it stores ~24 bytes per valid pixel and
            its bootstrap evaluates every resample on all distinct scores (measured, 100 images of
            512x1024: compute 39 s and a 200-resample bootstrap 9 min, against 2 ms and 0.3 s
            binned).
        image_bins: resolution of the per-image histograms kept for the bootstrap (binned path;
            default ``2**12``): at most about ``image_bins + 1`` counts per class and image.
        tpr: TPR of the ``fpr95`` operating point.

    **Binned path.** Every finite score ``s`` is put in bin ``floor(s / w)`` of one lattice of
    width ``w = 2**e`` anchored at 0, i.e. rounded down to ``floor(s / w) * w``; ``-inf`` and
    ``+inf`` get a bin of their own below / above everything. The exponent is the smallest for
    which the occupied bins span at most ``bins`` bins (and ``w`` is not finer than the float64
    spacing of the largest score). No range is needed in advance: when new scores fall outside, the
    lattice widens by merging ``2**t`` neighbouring bins (exact, since the lattices are nested), so
    the final histogram is the same whatever the order or batching of the images (and
    :meth:`merge` of two accumulators equals feeding both streams to one). Memory:
    ``2 * bins`` counts + ``2 * (image_bins + 1)`` per image.

    The binned metrics are **exactly** the metrics of the quantised scores; quantisation is
    monotone, so it never inverts an order, it only ties scores that share a bin. Hence, with per
    bin ``b`` the inlier/anomaly counts ``C_b``/``A_b``, totals ``N_id``/``N_ood``, and ``T_b``,
    ``F_b`` the anomaly/inlier counts of the bins above ``b`` (``D_b = T_b + F_b``):

    * ``auroc``: only within-bin pairs change (counted 1/2 instead of 0 or 1), so
      ``|error| <= sum_b A_b C_b / (2 N_id N_ood)``.
    * ``fpr95``: the exact operating threshold lies in the bin ``k`` where the binned one is, and
      all of bin ``k`` is flagged: ``0 <= binned - exact <= C_k / N_id`` (binned is pessimistic).
    * ``ap``: an anomaly in bin ``b`` sees a precision in ``[(T_b+1)/(D_b+1+C_b), (T_b+A_b)/
      (D_b+A_b)]``, which also holds the binned one, so ``|error| <= sum_b A_b/N_ood *`` (the
      larger distance of the binned precision to either end).

    :meth:`error_bound` evaluates the three bounds on the accumulated histogram. They are small when
    no single bin holds a noticeable share of both classes: with the default ``2**16`` bins and a
    score distribution spread over its range, a few 1e-5; a handful of extreme outliers that
    stretch the range (e.g. one energy of 1e6 among values in [-20, 0]) coarsen the lattice and
    show up in the bound — then use more ``bins``, clip the scores, or the exact path.

    **Bootstrap over images** (:meth:`bootstrap_samples`, :meth:`bootstrap`): images are resampled
    with replacement (``n_images`` draws, stream keyed on ``(seed, key)`` as the image bootstrap,
    so replicate ``b`` draws the same images for every detector and for the
    :class:`ComponentMetrics` of the same images and key) and the pooled metrics recomputed from
    the per-image histograms. These are kept on the lattice coarsened ``2**s`` times,
    ``s = ceil(log2(bins / image_bins))``; each replicate is shifted by the point estimate's
    discretisation difference (metrics on the fine minus on the coarse histogram of all images,
    bounded like :meth:`error_bound` at the coarse resolution), so replicates are centred on the
    reported value. On the exact path replicates are exact.
    """

    def __init__(self, bins: int | None = 2**16, *, image_bins: int = 2**12, tpr: float = 0.95):
        if bins is not None and (int(bins) != bins or bins < 2):
            raise ValueError("bins must be an integer >= 2, or None (exact)")
        if int(image_bins) != image_bins or image_bins < 2:
            raise ValueError("image_bins must be an integer >= 2")
        if not 0 <= tpr <= 1:
            raise ValueError("tpr must be in [0, 1]")
        self.bins = None if bins is None else int(bins)
        self.image_bins = int(image_bins)
        self.tpr = float(tpr)
        # per image: (exponent or None, keys ascending, inlier counts, anomaly counts, inf counts)
        self._images: list[tuple] = []
        # binned path: lattice exponent, first bin, counts (2 classes, span), [[-inf], [+inf]] counts
        self._e: int | None = None
        self._k0 = 0
        self._hist = np.zeros((2, 0), dtype=np.int64)
        self._inf = np.zeros((2, 2), dtype=np.int64)  # [class, (-inf, +inf)]
        self._shift = 0 if bins is None else max(0, math.ceil(math.log2(self.bins / self.image_bins)))

    # ---------------------------------------------------------------- accumulation
    @property
    def exact(self) -> bool:
        return self.bins is None

    @property
    def n_images(self) -> int:
        return len(self._images)

    def n_pixels(self) -> dict[str, int]:
        """Valid pixels seen: ``{"inlier": n, "anomaly": n}``."""
        n = np.zeros(2, dtype=np.int64)
        for rec in self._images:
            n[0] += rec[2].sum() + (0 if rec[4] is None else rec[4][0].sum())
            n[1] += rec[3].sum() + (0 if rec[4] is None else rec[4][1].sum())
        return {"inlier": int(n[0]), "anomaly": int(n[1])}

    def update(self, score_map, label) -> PixelMetrics:
        """Add one image ``[H, W]`` or a batch ``[N, H, W]`` (numpy or torch); returns ``self``."""
        for scores, lab in _dense_images(score_map, label):
            inl, ano = _label_masks(lab)
            s_id, s_ood = scores[inl], scores[ano]
            if np.isnan(s_id).any() or np.isnan(s_ood).any():
                raise ValueError("score map has NaN on valid (non-void) pixels")
            if self.exact:
                self._add_exact(s_id, s_ood)
            else:
                self._add_binned(s_id, s_ood)
        return self

    def _add_exact(self, s_id: np.ndarray, s_ood: np.ndarray) -> None:
        values, inverse = np.unique(np.concatenate([s_id, s_ood]), return_inverse=True)
        inverse = inverse.ravel()
        c_id = np.bincount(inverse[: s_id.size], minlength=values.size)
        c_ood = np.bincount(inverse[s_id.size :], minlength=values.size)
        self._images.append((None, values, c_id, c_ood, None))

    def _fit_lattice(self, lo: float, hi: float, e_floor: int) -> None:
        """Widen (or create) the lattice so that it covers [lo, hi] with exponent >= e_floor."""
        if self._e is not None:
            w_lo = math.ldexp(self._k0, self._e)  # lower edges of the occupied end bins (exact)
            w_hi = math.ldexp(self._k0 + self._hist.shape[1] - 1, self._e)
            lo, hi = min(lo, w_lo), max(hi, w_hi)
            e_floor = max(e_floor, self._e)
        e = e_floor
        if hi > lo:  # a span <= bins needs w >= (hi - lo) / bins (halved: no overflow near 1e308)
            e = max(e, math.ceil(math.log2(hi * 0.5 - lo * 0.5) + 1 - math.log2(self.bins)) - 1)
        while _lattice_span(lo, hi, e) > self.bins:
            e += 1
        k0 = math.floor(math.ldexp(lo, -e))
        span = _lattice_span(lo, hi, e)
        if self._e is None:
            self._hist = np.zeros((2, span), dtype=np.int64)
        elif (e, k0, span) != (self._e, self._k0, self._hist.shape[1]):
            old = np.arange(self._k0, self._k0 + self._hist.shape[1], dtype=np.int64)
            pos = np.right_shift(old, e - self._e) - k0  # floor(k / 2**t): nested lattices
            hist = np.zeros((2, span), dtype=np.int64)
            for c in range(2):
                np.add.at(hist[c], pos, self._hist[c])
            self._hist = hist
        self._e, self._k0 = e, k0

    def _keys(self, finite: np.ndarray, e: int) -> np.ndarray:
        return np.floor(np.ldexp(finite, -e)).astype(np.int64)

    def _add_binned(self, s_id: np.ndarray, s_ood: np.ndarray) -> None:
        inf = np.zeros((2, 2), dtype=np.int64)
        finite = []
        for c, v in enumerate((s_id, s_ood)):
            ok = np.isfinite(v)
            if not ok.all():
                inf[c] = np.count_nonzero(v == -np.inf), np.count_nonzero(v == np.inf)
                v = v[ok]
            finite.append(v)
        n_fin = finite[0].size + finite[1].size
        keys: list[np.ndarray] = [np.zeros(0, np.int64)] * 2
        if n_fin:
            lo = min(float(v.min()) for v in finite if v.size)
            hi = max(float(v.max()) for v in finite if v.size)
            self._fit_lattice(lo, hi, _min_exponent(max(abs(lo), abs(hi))))
            span = self._hist.shape[1]
            for c in range(2):
                keys[c] = self._keys(finite[c], self._e)
                self._hist[c] += np.bincount(keys[c] - self._k0, minlength=span)
        self._inf += inf
        # per-image histogram on the coarse lattice (exponent self._e + self._shift)
        coarse = [np.right_shift(k, self._shift) for k in keys]
        if n_fin:
            base = min(int(k.min()) for k in coarse if k.size)
            top = max(int(k.max()) for k in coarse if k.size)
            cnt = [np.bincount(k - base, minlength=top - base + 1) for k in coarse]
            nz = np.flatnonzero(cnt[0] + cnt[1])
            rec = (self._e, nz.astype(np.int64) + base, cnt[0][nz], cnt[1][nz], inf)
        else:
            rec = (self._e, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), inf)
        self._images.append(rec)

    def merge(self, other: PixelMetrics) -> PixelMetrics:
        """Add ``other``'s images to ``self`` (same settings); returns ``self``.

        Equals feeding both accumulators' images to one (``self``'s first), e.g. to pool the
        ``near`` and ``far`` sets into ``all`` without scoring twice.
        """
        if (self.bins, self.image_bins, self.tpr) != (other.bins, other.image_bins, other.tpr):
            raise ValueError("cannot merge PixelMetrics with different bins / image_bins / tpr")
        if other is self:
            raise ValueError("cannot merge an accumulator into itself")
        if not self.exact and other._e is not None:
            lo = math.ldexp(other._k0, other._e)
            hi = math.ldexp(other._k0 + other._hist.shape[1] - 1, other._e)
            self._fit_lattice(lo, hi, other._e)
            pos = np.right_shift(
                np.arange(other._k0, other._k0 + other._hist.shape[1], dtype=np.int64), self._e - other._e
            ) - self._k0
            for c in range(2):
                np.add.at(self._hist[c], pos, other._hist[c])
        self._inf += other._inf
        self._images.extend(other._images)
        return self

    @classmethod
    def merged(cls, *parts: PixelMetrics) -> PixelMetrics:
        """A new accumulator holding the images of all ``parts`` in order (e.g. ``all`` from sets)."""
        if not parts:
            raise ValueError("merged() needs at least one accumulator")
        out = cls(parts[0].bins, image_bins=parts[0].image_bins, tpr=parts[0].tpr)
        for p in parts:
            out.merge(p)
        return out

    # ---------------------------------------------------------------- point metrics
    def _point_counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ascending ``(c_id, c_ood, thresholds)``; ``thresholds[i]`` = lowest score of bin ``i``."""
        if self.exact:
            if not self._images:
                return np.zeros(0), np.zeros(0), np.zeros(0)
            grid = np.unique(np.concatenate([r[1] for r in self._images]))
            c = np.zeros((2, grid.size))
            for _, values, c_id, c_ood, _ in self._images:
                pos = np.searchsorted(grid, values)
                c[0, pos] += c_id
                c[1, pos] += c_ood
            return c[0], c[1], grid
        edges = np.ldexp(np.arange(self._k0, self._k0 + self._hist.shape[1], dtype=np.float64), self._e or 0)
        c_id = np.r_[self._inf[0, 0], self._hist[0], self._inf[0, 1]].astype(np.float64)
        c_ood = np.r_[self._inf[1, 0], self._hist[1], self._inf[1, 1]].astype(np.float64)
        return c_id, c_ood, np.r_[-np.inf, edges, np.inf]

    def _checked_counts(self):
        c_id, c_ood, thr = self._point_counts()
        if c_ood.sum() == 0 or c_id.sum() == 0:
            raise ValueError(
                f"pixel metrics need inlier and anomaly pixels; got {c_id.sum():.0f} inlier and "
                f"{c_ood.sum():.0f} anomaly pixels over {self.n_images} images"
            )
        return c_id, c_ood, thr

    def compute(self) -> dict[str, float]:
        """``{"ap", "fpr95", "auroc"}`` of all valid pixels seen (plain floats in [0, 1])."""
        c_id, c_ood, _ = self._checked_counts()
        m = _pixel_metrics_from_counts(c_id[None], c_ood[None], self.tpr)
        return {k: float(m[k][0]) for k in PIXEL_METRICS}

    def error_bound(self) -> dict[str, float]:
        """Upper bound of ``|binned - exact|`` per metric (see the class docstring); 0 when exact."""
        c_id, c_ood, _ = self._checked_counts()
        if self.exact:
            return {k: 0.0 for k in PIXEL_METRICS}
        return _binning_bounds(c_id, c_ood, self.tpr)

    def best_f1_threshold(self) -> float:
        """Threshold ``t`` whose segmentation ``score >= t`` has the highest pixel F1 (valid pixels).

        SMIYC's choice for the component metrics (``MetricSegment.get_thresh_p_from_curve``: the
        best-F1 threshold of the same method's pixel curve on the same dataset). Ties go to the
        highest threshold. On the binned path ``t`` is a lattice edge, so ``score >= t`` flags
        exactly the bins at or above the best operating point.
        """
        c_id, c_ood, thr = self._checked_counts()
        occupied = (c_id + c_ood) > 0
        c_id, c_ood, thr = c_id[occupied][::-1], c_ood[occupied][::-1], thr[occupied][::-1]
        tp = np.cumsum(c_ood)
        fp = np.cumsum(c_id)
        f1 = 2 * tp / (tp + fp + c_ood.sum())  # 2TP / (2TP + FP + FN)
        return float(thr[int(np.argmax(f1))])

    # ---------------------------------------------------------------- bootstrap
    def _image_matrices(self):
        """Per-image counts as sparse ``(n_images, V)`` matrices on one ascending grid."""
        from scipy import sparse

        rows, cols, v_id, v_ood = [], [], [], []
        if self.exact:
            grid = np.unique(np.concatenate([r[1] for r in self._images])) if self._images else np.zeros(0)
            for i, (_, values, c_id, c_ood, _) in enumerate(self._images):
                rows.append(np.full(values.size, i))
                cols.append(np.searchsorted(grid, values))
                v_id.append(c_id)
                v_ood.append(c_ood)
            n_cols = grid.size
        else:
            final = self._e or 0
            shifted = [np.right_shift(r[1], final - r[0]) if r[0] is not None else r[1] for r in self._images]
            grid = np.unique(np.concatenate(shifted)) if shifted else np.zeros(0, np.int64)
            n_cols = grid.size + 2  # column 0: -inf, last: +inf
            for i, (rec, keys) in enumerate(zip(self._images, shifted)):
                inf = rec[4]
                rows.append(np.full(keys.size + 2, i))
                cols.append(np.r_[0, np.searchsorted(grid, keys) + 1, n_cols - 1])
                v_id.append(np.r_[inf[0, 0], rec[2], inf[0, 1]])
                v_ood.append(np.r_[inf[1, 0], rec[3], inf[1, 1]])
        shape = (self.n_images, n_cols)
        r, c = np.concatenate(rows), np.concatenate(cols)
        h_id = sparse.csr_matrix((np.concatenate(v_id).astype(np.float64), (r, c)), shape=shape)
        h_ood = sparse.csr_matrix((np.concatenate(v_ood).astype(np.float64), (r, c)), shape=shape)
        return h_id, h_ood

    def bootstrap_samples(self, n_boot: int = 200, seed: int = 0, key: str = "dense") -> dict[str, np.ndarray]:
        """Replicates ``{metric: array (n_boot,)}`` of the pooled metrics over images resampled with
        replacement (NaN where a resample has no anomaly or no inlier pixel)."""
        self._checked_counts()
        mult = _multiplicities(self.n_images, n_boot, seed, key)
        h_id, h_ood = self._image_matrices()
        step = max(1, _MAX_CELLS // max(h_id.shape[1], 1))
        parts = []
        for s in range(0, n_boot, step):
            m = mult[s : s + step]
            c_id = np.asarray((h_id.T @ m.T).T)
            c_ood = np.asarray((h_ood.T @ m.T).T)
            parts.append(_pixel_metrics_from_counts(c_id, c_ood, self.tpr))
        reps = {k: np.concatenate([p[k] for p in parts]) for k in PIXEL_METRICS}
        if not self.exact and self._shift > 0:  # centre on the fine-lattice point estimate
            coarse = _pixel_metrics_from_counts(
                np.asarray(h_id.sum(axis=0)), np.asarray(h_ood.sum(axis=0)), self.tpr
            )
            point = self.compute()
            for k in PIXEL_METRICS:
                reps[k] = np.clip(reps[k] + (point[k] - coarse[k][0]), 0.0, 1.0)
        return reps

    def bootstrap(
        self, n_boot: int = 200, level: float = 0.95, seed: int = 0, key: str = "dense"
    ) -> dict[str, tuple[float, float]]:
        """Percentile intervals ``{metric: (lo, hi)}`` from :meth:`bootstrap_samples`."""
        reps = self.bootstrap_samples(n_boot, seed, key)
        return {k: _interval(reps[k], level) for k in PIXEL_METRICS}

    def __repr__(self) -> str:
        mode = "exact" if self.exact else f"bins={self.bins}"
        return f"PixelMetrics({mode}, images={self.n_images})"


def _binning_bounds(c_id: np.ndarray, c_ood: np.ndarray, tpr: float) -> dict[str, float]:
    """Error bounds of metrics computed on binned counts (ascending; first/last bin = -inf/+inf, exact)."""
    n_id, n_ood = c_id.sum(), c_ood.sum()
    lattice = np.zeros(c_id.size, dtype=bool)
    lattice[1:-1] = True
    auroc = float(np.sum((c_id * c_ood)[lattice]) / (2.0 * n_id * n_ood))
    # descending order for the threshold walk
    a, c, lat = c_ood[::-1], c_id[::-1], lattice[::-1]
    t_before = np.cumsum(a) - a
    f_before = np.cumsum(c) - c
    d = t_before + f_before
    reached = np.cumsum(a) / n_ood >= tpr
    k = int(np.argmax(reached))
    fpr = float(c[k] / n_id) if (lat[k] and tpr > 0) else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        y = (t_before + a) / (d + a + c)
        x_lo = (t_before + 1) / (d + 1 + c)
        x_hi = (t_before + a) / (d + a)
        dev = np.maximum(y - x_lo, x_hi - y)
    use = lat & (a > 0)
    ap = float(np.sum(a[use] / n_ood * dev[use]))
    return {"ap": ap, "fpr95": fpr, "auroc": auroc}
