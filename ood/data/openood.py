"""The paper profiles' image benchmarks: CIFAR-10, CIFAR-100 and ImageNet-1k as ID sets with the
OpenOOD v1.5 near/far OOD sets (Zhang et al. 2023, arXiv 2306.09301).

ID: the official training set, split (stratified, seeded) into train and validation, and the
official test set (ImageNet: the 50,000 validation images, which OpenOOD v1.5 and DiffGuard test
on). OOD: every set of :data:`ood.data.images.OPENOOD_V15` for the ID set, every label ``-1``.
Every image is brought to the ID geometry as OpenOOD's test preprocessing does: grey repeated to
three channels, the shorter side resized, the centre cropped (CIFAR: ``Resize(32)``,
``CenterCrop(32)``; ImageNet: ``Resize(256)``, ``CenterCrop(224)``, torchvision's evaluation
transform). The images are read lazily from the official archives
(:func:`ood.data.images.load_image_set`), which are fetched with their checksums on first use when
``download`` is allowed (ImageNet itself is login-gated: the error says what to put where).

What differs from OpenOOD: it evaluates on its own image lists over its own copies of the OOD sets
(curated subsets; see :data:`~ood.data.images.OPENOOD_V15`); these are the official releases whole,
so numbers are comparable to the leaderboard's but not to the digit. OpenOOD v1.5 also tests
ImageNet on 45,000 of the 50,000 validation images (it keeps 5,000 for its validation split); we
carve validation from the training set, as for CIFAR, and test on all 50,000.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import Dataset

from .benchmark import Benchmark
from .fmnist6 import _cap, _check_params, _rng, _split_val

__all__ = ["load_cifar10", "load_cifar100", "load_imagenet", "to_geometry"]

SIZE = 32  # CIFAR images; OpenOOD resizes every OOD image to it
#: ID set -> (side the shorter side is resized to, crop side): OpenOOD v1.5's test transforms
#: (openood/preprocessors/test_preprocessor.py; ImageNet: torchvision's Resize(256), CenterCrop(224)).
GEOMETRY = {"cifar10": (SIZE, SIZE), "cifar100": (SIZE, SIZE), "imagenet": (256, 224)}


def to_geometry(image: torch.Tensor, size: int = SIZE, channels: int = 3, resize: int | None = None) -> torch.Tensor:
    """``[C, H, W]`` in [0, 1] to ``[channels, size, size]``: grey repeated to three channels, the
    shorter side resized to ``resize`` (default ``size``; bilinear, antialiased) and the centre
    ``size`` cropped, as OpenOOD's test transforms (``Resize(resize)``, ``CenterCrop(size)``)."""
    if image.shape[0] == 1 and channels == 3:
        image = image.expand(3, -1, -1)
    resize = size if resize is None else resize
    h, w = image.shape[-2:]
    if min(h, w) != resize:  # the longer side truncated and the crop offset rounded, as torchvision
        new = (resize, int(resize * w / h)) if h <= w else (int(resize * h / w), resize)
        image = F.interpolate(image[None], size=new, mode="bilinear", antialias=True, align_corners=False)[0]
        image = image.clamp(0, 1)
        h, w = new
    top, left = int(round((h - size) / 2)), int(round((w - size) / 2))
    return image[:, top:top + size, left:left + size].contiguous()


class _View(Dataset):
    """Items ``index`` of ``source`` as ``(image, label)``, the image brought to the ID geometry
    (``resize``, ``size``: see :func:`to_geometry`; a no-op on images that have it already);
    ``ood``: every label ``-1``."""

    def __init__(self, source: Dataset, index: np.ndarray, ood: bool = False, size: int = SIZE,
                 resize: int | None = None):
        self.source, self.index, self.ood = source, np.asarray(index, dtype=np.int64), ood
        self.size, self.resize = size, resize

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = self.source[int(self.index[i])]
        image = to_geometry(image, self.size, resize=self.resize)
        return image, torch.tensor(-1, dtype=torch.int64) if self.ood else label

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source!r}, {len(self)} items{', OOD' if self.ood else ''})"


def _openood(id_name: str, root: str | os.PathLike[str], val_fraction: float, far_size: int, seed: int,
             subset: int | None, download: bool) -> Benchmark:
    from .images import OPENOOD_V15, load_image_set

    _check_params(val_fraction, far_size, seed, subset)
    load = lambda name, split=None: load_image_set(name, root, split=split, download=download,  # noqa: E731
                                                   progress=False)
    if id_name == "imagenet":  # two login-gated archives: the training set and the validation set (our test)
        train_all, test_all = load("imagenet-train", "train"), load("imagenet-val", "val")
        if len(train_all.classes) != len(test_all.classes):
            raise ValueError(f"ImageNet: the training archive has {len(train_all.classes)} classes, the "
                             f"devkit {len(test_all.classes)}: are both from ILSVRC 2012?")
    else:
        train_all, test_all = load(id_name, "train"), load(id_name, "test")
    train_idx, val_idx = _split_val(train_all.labels.numpy(), float(val_fraction), _rng(seed, "val"))
    resize, size = GEOMETRY[id_name]

    def view(ds: Dataset, index: np.ndarray, name: str, cap: int | None, ood: bool = False) -> _View:
        return _View(ds, index[_cap(len(index), cap, _rng(seed, f"subset/{name}"))], ood, size, resize)

    train = view(train_all, train_idx, "train", subset)
    val = view(train_all, val_idx, "val", subset)
    test = view(test_all, np.arange(len(test_all)), "test", subset)
    groups = {g: list(names) for g, names in OPENOOD_V15[id_name].items()}
    ood: dict[str, Dataset] = {}
    cap = min(far_size, subset) if subset is not None else far_size
    for name in groups["near"] + groups["far"]:
        # OOD sets are read from their test (or only) split, never from data a model trains on
        ds = load(name, "test" if name in ("cifar10", "cifar100", "mnist") else None)
        ood[name] = view(ds, np.arange(len(ds)), name, cap, ood=True)
    return Benchmark(
        name=id_name, classes=list(test_all.classes), train=train, val=val, test=test, ood=ood, groups=groups,
        in_channels=3, image_size=(size, size),
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


def load_imagenet(root: str | os.PathLike[str] = "data", *, val_fraction: float = 0.1, far_size: int = 1_000_000,
                  seed: int = 0, subset: int | None = None, download: bool = False) -> Benchmark:
    """ImageNet-1k (ID, 1000 classes; login-gated: ``imagenet-train`` and ``imagenet-val`` must be
    in place) with OpenOOD v1.5's near (SSB-hard, NINCO) and far (iNaturalist, Textures,
    OpenImage-O) OOD sets, 224x224; train and validation from the training set, test = the 50,000
    validation images; arguments as :func:`load_cifar10`."""
    return _openood("imagenet", root, val_fraction, far_size, seed, subset, download)
