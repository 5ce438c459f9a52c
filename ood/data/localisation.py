"""OOD localisation set: ID test images with one rectangle pasted from an OOD image.

Heatmap OOD (Hornauer & Belagiannis, WACV 2023) produces a per-pixel OOD heatmap, so besides
image-level detection we can ask *where* it fires. Each sample copies an axis-aligned rectangle
from an OOD image into the **same location** of an ID test image; the target follows the dense
convention of :class:`ood.data.DenseBenchmark`: 0 = ID pixel, 1 = OOD pixel, 255 = void.

Pasted pixels equal to the ID pixel underneath (``|diff| < 1/255`` in every channel, e.g. black
on the black border of a Fashion-MNIST image) carry no information about the paste, so they are
void, not OOD. A rectangle with fewer than :data:`MIN_INFORMATIVE` informative pixels is redrawn
(bounded, deterministic), so a patch of black border on black border does not make a sample.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from .benchmark import IGNORE_INDEX

if TYPE_CHECKING:
    from .benchmark import Benchmark

__all__ = ["LocalisationSet", "make_localisation", "localisation_set", "MIN_INFORMATIVE"]

#: Minimal fraction of a rectangle's pixels that must differ from the ID image (else redrawn).
MIN_INFORMATIVE = 0.25
_MAX_DRAWS = 20
_EQUAL = 1.0 / 255.0  # pixel values closer than one 8-bit level count as equal


class LocalisationSet(TensorDataset):
    """``(image [C, H, W] float32, mask [H, W] int64)`` with the provenance of every sample.

    Attributes:
        sources: name of the OOD set each sample's rectangle came from.
        boxes: ``[N, 4]`` int64 ``(top, left, bottom, right)``, bottom/right exclusive.
        id_index, ood_index: ``[N]`` int64 indices into the ID dataset and into the OOD set.
    """

    def __init__(
        self,
        images: torch.Tensor,
        masks: torch.Tensor,
        sources: list[str],
        boxes: torch.Tensor,
        id_index: torch.Tensor,
        ood_index: torch.Tensor,
    ) -> None:
        super().__init__(images, masks)
        self.sources = sources
        self.boxes = boxes
        self.id_index = id_index
        self.ood_index = ood_index


def _image(ds: Dataset, i: int) -> torch.Tensor:
    """The image of item ``i``: datasets yield ``(image, label)``; a bare tensor is accepted."""
    item = ds[i]
    x = item[0] if isinstance(item, (tuple, list)) else item
    return torch.as_tensor(x, dtype=torch.float32)


def make_localisation(
    id_images: Dataset,
    ood_sets: Mapping[str, Dataset],
    n: int,
    seed: int,
    side: tuple[int, int] = (8, 14),
) -> LocalisationSet:
    """``n`` ID images, each with one rectangle copied pixel-exactly from an OOD image.

    OOD sets are used round-robin in the mapping's order (sample ``i`` from set ``i % k``), so
    every set is represented once ``n >= k``; ID and OOD images are drawn at random (without
    replacement while the dataset is large enough). Rectangle height and width are uniform in
    ``side`` (inclusive), the position uniform with the rectangle fully inside the image, at the
    same location in both images. Mask: 1 on the rectangle, 0 elsewhere, 255 (void) on pasted
    pixels that equal the ID pixel (``|diff| < 1/255`` in every channel: no information). A
    rectangle with < :data:`MIN_INFORMATIVE` informative pixels is redrawn (up to 20 times).
    Deterministic from ``seed``.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be an integer >= 0, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    names = list(ood_sets)
    if not names:
        raise ValueError("ood_sets is empty: need at least one OOD set")
    n_id = len(id_images)  # type: ignore[arg-type]
    if n_id == 0:
        raise ValueError("id_images is empty")
    for name in names:
        if len(ood_sets[name]) == 0:  # type: ignore[arg-type]
            raise ValueError(f"OOD set {name!r} is empty")
    shape = tuple(_image(id_images, 0).shape)
    if len(shape) != 3:
        raise ValueError(f"ID images must be [C, H, W], got {list(shape)}")
    _, H, W = shape
    lo, hi = (int(s) for s in side)
    if not 1 <= lo <= hi or hi > min(H, W):
        raise ValueError(f"side must satisfy 1 <= min <= max <= {min(H, W)} (image {H}x{W}), got {side!r}")

    rng = np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(b"localisation")]))
    set_of = np.arange(n) % len(names)
    id_idx = rng.choice(n_id, size=n, replace=n > n_id)
    ood_idx = np.zeros(n, dtype=np.int64)
    for k, name in enumerate(names):
        sel = np.flatnonzero(set_of == k)
        size = len(ood_sets[name])  # type: ignore[arg-type]
        ood_idx[sel] = rng.choice(size, size=len(sel), replace=len(sel) > size)

    images = torch.empty((n, *shape), dtype=torch.float32)
    masks = torch.zeros((n, H, W), dtype=torch.int64)
    boxes = torch.empty((n, 4), dtype=torch.int64)
    for i in range(n):
        name = names[set_of[i]]
        x_id = _image(id_images, int(id_idx[i]))
        x_ood = _image(ood_sets[name], int(ood_idx[i]))
        if tuple(x_id.shape) != shape:
            raise ValueError(f"ID item {int(id_idx[i])}: image shape {list(x_id.shape)}, want {list(shape)}")
        if tuple(x_ood.shape) != shape:
            raise ValueError(
                f"OOD set {name!r} item {int(ood_idx[i])}: image shape {list(x_ood.shape)}, want the "
                f"ID shape {list(shape)}"
            )
        same = (x_ood - x_id).abs().amax(dim=0) < _EQUAL  # [H, W]: pixels a paste cannot change
        for _ in range(_MAX_DRAWS):
            h, w = (int(v) for v in rng.integers(lo, hi + 1, size=2))
            t, l = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
            informative = h * w - int(same[t : t + h, l : l + w].sum())
            if informative >= MIN_INFORMATIVE * h * w:
                break
        image = x_id.clone()
        image[:, t : t + h, l : l + w] = x_ood[:, t : t + h, l : l + w]
        mask = masks[i]
        mask[t : t + h, l : l + w] = 1
        mask[t : t + h, l : l + w][same[t : t + h, l : l + w]] = IGNORE_INDEX
        images[i] = image
        boxes[i] = torch.tensor([t, l, t + h, l + w])
    return LocalisationSet(
        images, masks, [names[k] for k in set_of], boxes, torch.from_numpy(id_idx.astype(np.int64)),
        torch.from_numpy(ood_idx),
    )  # fmt: skip


def localisation_set(bench: Benchmark, n: int, seed: int, side: Sequence[int] = (8, 14)) -> LocalisationSet:
    """:func:`make_localisation` on ``bench.test`` with every OOD set of ``bench`` (in its order)."""
    return make_localisation(bench.test, bench.ood, n, seed, (int(side[0]), int(side[1])))
