"""The paper profiles' image benchmarks: CIFAR-10 and CIFAR-100 as ID sets with the OpenOOD v1.5
near/far OOD sets (Zhang et al. 2023, arXiv 2306.09301).

ID: the official training set, split (stratified, seeded) into train and validation, and the
official test set. OOD: every set of :data:`ood.data.images.OPENOOD_V15` for the ID set, brought to
the ID geometry as OpenOOD's test preprocessing does (resize the shorter side to 32, centre crop;
grey images repeated to three channels), every label ``-1``. The images are read lazily from the
official archives (:func:`ood.data.images.load_image_set`), which are fetched with their checksums
on first use when ``download`` is allowed.

What differs from OpenOOD: it evaluates on its own image lists over its own copies of the OOD sets
(curated subsets; see :data:`~ood.data.images.OPENOOD_V15`); these are the official releases whole,
so numbers are comparable to the leaderboard's but not to the digit.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import Dataset

from .benchmark import Benchmark
from .fmnist6 import _cap, _check_params, _rng, _split_val

__all__ = ["load_cifar10", "load_cifar100", "to_geometry"]

SIZE = 32  # CIFAR images; OpenOOD resizes every OOD image to it


def to_geometry(image: torch.Tensor, size: int = SIZE, channels: int = 3) -> torch.Tensor:
    """``[C, H, W]`` in [0, 1] to ``[channels, size, size]``: grey repeated to three channels, the
    shorter side resized to ``size`` (bilinear, antialiased) and the centre cropped, as OpenOOD's
    test transform (``Resize(32)``, ``CenterCrop(32)``)."""
    if image.shape[0] == 1 and channels == 3:
        image = image.expand(3, -1, -1)
    h, w = image.shape[-2:]
    if min(h, w) != size:  # the longer side truncated and the crop offset rounded, as torchvision
        new = (size, int(size * w / h)) if h <= w else (int(size * h / w), size)
        image = F.interpolate(image[None], size=new, mode="bilinear", antialias=True, align_corners=False)[0]
        image = image.clamp(0, 1)
        h, w = new
    top, left = int(round((h - size) / 2)), int(round((w - size) / 2))
    return image[:, top:top + size, left:left + size].contiguous()


class _View(Dataset):
    """Items ``index`` of ``source`` as ``(image, label)``; ``ood``: every label ``-1`` and the image
    brought to the ID geometry."""

    def __init__(self, source: Dataset, index: np.ndarray, ood: bool = False):
        self.source, self.index, self.ood = source, np.asarray(index, dtype=np.int64), ood

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = self.source[int(self.index[i])]
        if self.ood:
            return to_geometry(image), torch.tensor(-1, dtype=torch.int64)
        return image, label

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source!r}, {len(self)} items{', OOD' if self.ood else ''})"


def _openood(id_name: str, root: str | os.PathLike[str], val_fraction: float, far_size: int, seed: int,
             subset: int | None, download: bool) -> Benchmark:
    from .images import OPENOOD_V15, load_image_set

    _check_params(val_fraction, far_size, seed, subset)
    load = lambda name, split=None: load_image_set(name, root, split=split, download=download,  # noqa: E731
                                                   progress=False)
    train_all, test_all = load(id_name, "train"), load(id_name, "test")
    train_idx, val_idx = _split_val(train_all.labels.numpy(), float(val_fraction), _rng(seed, "val"))

    def capped(index: np.ndarray, name: str, cap: int | None) -> np.ndarray:
        return index[_cap(len(index), cap, _rng(seed, f"subset/{name}"))]

    train = _View(train_all, capped(train_idx, "train", subset))
    val = _View(train_all, capped(val_idx, "val", subset))
    test = _View(test_all, capped(np.arange(len(test_all)), "test", subset))
    groups = {g: list(names) for g, names in OPENOOD_V15[id_name].items()}
    ood: dict[str, Dataset] = {}
    cap = min(far_size, subset) if subset is not None else far_size
    for name in groups["near"] + groups["far"]:
        # OOD sets are read from their test (or only) split, never from data a model trains on
        ds = load(name, "test" if name in ("cifar10", "cifar100", "mnist") else None)
        ood[name] = _View(ds, capped(np.arange(len(ds)), name, cap), ood=True)
    return Benchmark(
        name=id_name, classes=list(train_all.classes), train=train, val=val, test=test, ood=ood, groups=groups,
        in_channels=3, image_size=(SIZE, SIZE),
        params={"val_fraction": float(val_fraction), "far_size": int(far_size), "seed": int(seed),
                "subset": None if subset is None else int(subset)},
    )


def load_cifar10(root: str | os.PathLike[str] = "data", *, val_fraction: float = 0.1, far_size: int = 1_000_000,
                 seed: int = 0, subset: int | None = None, download: bool = False) -> Benchmark:
    """CIFAR-10 (ID, 10 classes) with OpenOOD v1.5's near (CIFAR-100, Tiny ImageNet) and far (MNIST,
    SVHN, Textures, Places365) OOD sets.

    Args:
        root: data root; each dataset lives in ``<root>/<name>/`` (``python -m ood.data download``).
        val_fraction: fraction of each training class held out for validation, in (0, 0.5].
        far_size: at most this many images per OOD set (seeded); the default keeps every image.
        seed: seeds the validation split and every cap.
        subset: cap every split and set to this many images (tiny runs).
        download: fetch missing archives (with their checksums); ``False``: a missing one is an
            error saying how to fetch it.
    """
    return _openood("cifar10", root, val_fraction, far_size, seed, subset, download)


def load_cifar100(root: str | os.PathLike[str] = "data", *, val_fraction: float = 0.1, far_size: int = 1_000_000,
                  seed: int = 0, subset: int | None = None, download: bool = False) -> Benchmark:
    """CIFAR-100 (ID, 100 fine classes) with OpenOOD v1.5's near (CIFAR-10, Tiny ImageNet) and far
    (MNIST, SVHN, Textures, Places365) OOD sets; arguments as :func:`load_cifar10`."""
    return _openood("cifar100", root, val_fraction, far_size, seed, subset, download)
