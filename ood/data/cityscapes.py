"""``cityscapes``: the dense benchmark of the Cityscapes paper profile (NFlowJS, arXiv 2112.12833, Sec. 5).

Inliers are Cityscapes scenes with the 19 training classes (trainIds, 255 = void); the OOD sets are
the labelled validation frames of SegmentMeIfYouCan RoadAnomaly21 and RoadObstacle21 and of
Fishyscapes Lost & Found, with OOD masks 0 = inlier, 1 = OOD, 255 = void (:mod:`ood.data.dense`).

* ``train``: Cityscapes *train* frames minus a seeded ID validation split, at most ``n_train``.
* ``val``: ``n_val`` Cityscapes *train* frames (seeded). The only ID data a stage may fit or stop
  on (the segmenter's and NFlowJS's per-epoch validation); never test or OOD frames.
* ``test``: Cityscapes *val* frames (clean, for the segmenter's mIoU), at most ``n_test``.
* ``ood``: ``{"smiyc-roadanomaly21", "smiyc-roadobstacle21", "fishyscapes-lostandfound"}``, named
  as in the registry (and in reports/metrics.json, with ``all`` = their pooled pixels). They are
  real sets from different cameras, not a near/far pair, so there are no groups. The sets have
  no Cityscapes semantic labels, so ``ood_semantic`` is empty.

Frame choice: every cap (``n_train``, ``n_test``, ``subset``) keeps a seeded random subset, and
each split and set stays in its official frame order. The subsets are nested: a smaller cap keeps
a subset of the frames of a larger one, and ``subset`` never moves a frame between train and val.
Each choice has its own stream, so ``n_test`` never changes the train/val split.

Geometry: every frame is brought to one ``image_size = (size, 2 * size)``, the aspect ratio of
Cityscapes (and of Lost & Found), because the dense stages batch frames and stack their maps
(``ood.train.make_loader``, ``ood.evaluation.scoremaps``, ``ood.train.predict``), so all frames must have the
same shape. NFlowJS (like SMIYC and Fishyscapes) evaluates every set at its native resolution,
1024x2048 for Cityscapes and Lost & Found. We do the same with ``size: 1024``: those frames are
then used as they are. A frame of another shape (SMIYC frames are not all 1:2, e.g. RoadObstacle21
is 16:9) is *letterboxed*: it is resized to fit with its aspect ratio kept (image bilinear with
anti-aliasing, labels and masks nearest, so 0/1/255 stay 0/1/255). The margin is padded with void
labels, which every metric ignores, and with the ImageNet mean colour, which the segmenter's input
normalisation maps to 0, the value its convolutions pad with at the image border. So no labelled
pixel is lost or stretched. The frames are read from the unpacked archives when a sample is asked
for (the 3,475 Cityscapes frames alone are 22 GB decoded), so a built benchmark is small to cache.

Public API::

    load_cityscapes_benchmark(root="data", *, size=1024, n_train=2825, n_val=150, n_test=500,
                              seed=0, subset=None, download=False) -> DenseBenchmark
    Letterbox(image_size), OOD_SETS
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset, Subset

from .benchmark import IGNORE_INDEX, DenseBenchmark
from .dense import CITYSCAPES_CLASSES, load_cityscapes, load_dense_set
from .fmnist6 import _rng

__all__ = ["OOD_SETS", "TRAIN_FRAMES", "TEST_FRAMES", "Letterbox", "load_cityscapes_benchmark"]

#: The dense OOD sets of the benchmark (registry names), in report order.
OOD_SETS = ("smiyc-roadanomaly21", "smiyc-roadobstacle21", "fishyscapes-lostandfound")
#: Frames of the official Cityscapes fine train / val splits (Cordts et al., CVPR 2016).
TRAIN_FRAMES, TEST_FRAMES = 2975, 500
#: The ImageNet mean RGB that the segmenters normalise with (ood.models.segmenters.DeepLabV3).
PAD_COLOUR = (0.485, 0.456, 0.406)


class Letterbox:
    """Joint transform ``(image [C,h,w], target [h,w]) -> [C,H,W], [H,W]`` for ``image_size = (H, W)``.

    The frame is resized with its aspect ratio kept (image bilinear with anti-aliasing, target
    nearest) to the largest size that fits in ``(H, W)``, and centred. The margin is padded with
    ``fill`` (image) and ``void`` (target). A frame already ``(H, W)`` is returned unchanged.
    """

    def __init__(self, image_size: tuple[int, int], fill: Sequence[float] = PAD_COLOUR, void: int = IGNORE_INDEX):
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.fill = tuple(float(v) for v in fill)
        self.void = int(void)

    def __call__(self, image: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        (h, w), (H, W) = image.shape[-2:], self.image_size
        if (h, w) == (H, W):
            return image, target
        scale = min(H / h, W / w)
        nh, nw = min(H, max(1, round(h * scale))), min(W, max(1, round(w * scale)))
        image = F.interpolate(image[None], size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)[0]
        # nearest-exact: the pixel centres bilinear uses (plain "nearest" shifts by half a pixel)
        target = F.interpolate(target[None, None].float(), size=(nh, nw), mode="nearest-exact")[0, 0].to(target.dtype)
        if (nh, nw) == (H, W):
            return image.clamp_(0.0, 1.0), target
        top, left = (H - nh) // 2, (W - nw) // 2
        if len(self.fill) != image.shape[0]:
            raise ValueError(f"{self!r}: fill has {len(self.fill)} values for an image of {image.shape[0]} channels")
        out = torch.tensor(self.fill, dtype=image.dtype).view(-1, 1, 1).repeat(1, H, W)
        out[:, top:top + nh, left:left + nw] = image.clamp_(0.0, 1.0)
        mask = torch.full((H, W), self.void, dtype=target.dtype)
        mask[top:top + nh, left:left + nw] = target
        return out, mask

    def __repr__(self) -> str:
        return f"Letterbox({self.image_size[0]}x{self.image_size[1]})"


class Frames(Subset):
    """Some frames of a Cityscapes / dense OOD dataset (lazy), with their official ``frame_ids``."""

    @property
    def frame_ids(self) -> list[str]:
        return [self.dataset.frame_ids[i] for i in self.indices]

    def __repr__(self) -> str:
        return f"Frames({getattr(self.dataset, 'name', '?')!r}, {len(self)} of {len(self.dataset)})"


def _is_int(v: object) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _check_params(size: Any, n_train: Any, n_val: Any, n_test: Any, seed: Any, subset: Any) -> None:
    """The same ranges as params.yaml's ``dense_benchmark`` section (ood.pipeline.params.SCHEMA)."""
    if not _is_int(size) or not 56 <= size <= 1024:
        raise ValueError(f"size must be an integer in [56, 1024] (frames become size x 2*size), got {size!r}")
    for key, value in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if not _is_int(value) or not 1 <= value <= 1_000_000:
            raise ValueError(f"{key} must be an integer in [1, 1000000], got {value!r}")
    if not _is_int(seed):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if subset is not None and (not _is_int(subset) or subset < 1):
        raise ValueError(f"subset must be None or an integer >= 1, got {subset!r}")


def _frames(ds: Dataset, order: np.ndarray, cap: int | None) -> Frames:
    """The first ``cap`` frames of ``order`` (a seeded permutation), in official order."""
    keep = order if cap is None else order[:cap]
    return Frames(ds, np.sort(keep).tolist())


def load_cityscapes_benchmark(
    root: str | os.PathLike[str] = "data",
    *,
    size: int = 1024,
    n_train: int = TRAIN_FRAMES - 150,
    n_val: int = 150,
    n_test: int = TEST_FRAMES,
    seed: int = 0,
    subset: int | None = None,
    download: bool = False,
) -> DenseBenchmark:
    """Build the ``cityscapes`` dense benchmark (see module docstring) from ``<root>/<dataset>/``.

    Args:
        root: data root. Cityscapes' two archives must be in ``<root>/cityscapes/`` (login-gated: if
            they are missing, the error says where to get them and where to put them); the OOD sets'
            archives in ``<root>/<name>/`` (``python -m ood.data download``).
        size: frame height in pixels, in [56, 1024]; frames are ``size x 2*size``. 1024 is
            Cityscapes' full resolution, as the papers evaluate.
        n_train: at most this many training frames (seeded), taken from the Cityscapes train
            frames that are not in ``val``; more than there are means all of them.
        n_val: Cityscapes train frames held out (seeded) as the ID validation split. At least one
            training frame must remain.
        n_test: at most this many Cityscapes val frames (seeded) as the clean test split.
        seed: seeds the validation split and every cap.
        subset: keep at most ``subset`` frames of every split and OOD set (quick looks and tests).
        download: fetch missing OOD-set archives from their official mirrors (checksummed).
            Cityscapes is never downloaded.

    Raises:
        ValueError: a parameter is out of range (the message names it and the allowed range), or
            ``n_val`` leaves no training frame.
        ManualDownloadRequired: Cityscapes is not in place (what to download, where to put it).
        FileNotFoundError: an OOD set's archive is missing and ``download`` is False.
    """
    _check_params(size, n_train, n_val, n_test, seed, subset)
    fit = Letterbox((size, 2 * size))
    cs_train = load_cityscapes(root, "train", transform=fit)
    cs_val = load_cityscapes(root, "val", transform=fit)
    ood_full = {name: load_dense_set(name, root, download=download, transform=fit) for name in OOD_SETS}
    if n_val >= len(cs_train):
        raise ValueError(f"n_val must leave at least one of the {len(cs_train)} Cityscapes training frames "
                         f"for training (n_val < {len(cs_train)}), got {n_val}")

    order = _rng(seed, "cityscapes/val").permutation(len(cs_train))
    val_order, train_order = order[:n_val], order[n_val:n_val + n_train]
    test_order = _rng(seed, "cityscapes/test").permutation(len(cs_val))[:n_test]
    ood = {name: _frames(ds, _rng(seed, f"cityscapes/{name}").permutation(len(ds)), subset)
           for name, ds in ood_full.items()}

    return DenseBenchmark(
        name="cityscapes",
        classes=list(CITYSCAPES_CLASSES),
        train=_frames(cs_train, train_order, subset),
        val=_frames(cs_train, val_order, subset),
        test=_frames(cs_val, test_order, subset),
        ood=ood,
        in_channels=3,
        image_size=(size, 2 * size),
        ignore_index=IGNORE_INDEX,
        params={"size": size, "n_train": n_train, "n_val": n_val, "n_test": n_test, "seed": int(seed),
                "subset": None if subset is None else int(subset)},
    )
