"""``fmnist6``: the embedded image benchmark of the default profile (offline, CPU, minutes).

ID: Fashion-MNIST restricted to six classes (T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal),
relabelled 0..5. Near-OOD: the four held-out classes of the Fashion-MNIST *test* split, one set
each (``shirt``, ``sneaker``, ``bag``, ``ankle_boot``): same sensor, same style, new semantics.
Far-OOD: data that ships with pip packages, so nothing else needs downloading:

* ``digits``: scikit-learn's 8x8 handwritten digits, resized to 20x20 and centred in 28x28 like
  MNIST;
* ``natural``: random crops of the photographs bundled with scikit-image (:data:`NATURAL_IMAGES`),
  converted to grayscale and resized to 28x28;
* ``noise``: half uniform noise, half Gaussian-blurred noise blobs.

Every far-OOD image is quantised to 8-bit levels like the Fashion-MNIST images, so that no detector
can separate the sets by the number format alone. All randomness is seeded, with an independent
stream per purpose, so changing e.g. ``far_size`` does not change the validation split.
"""

from __future__ import annotations

import gzip
import os
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from .benchmark import OOD_LABEL, Benchmark

__all__ = [
    "FASHION_MNIST_CLASSES",
    "ID_CLASSES",
    "NEAR_OOD",
    "NATURAL_IMAGES",
    "IDX_FILES",
    "load_fmnist6",
    "read_idx",
    "load_fashion_mnist",
    "make_digits",
    "make_natural",
    "make_noise",
]

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
#: Original Fashion-MNIST labels of the ID classes; their position is the new label.
ID_CLASSES = (0, 1, 2, 3, 4, 5)
#: Near-OOD set name -> original Fashion-MNIST label.
NEAR_OOD = {"shirt": 6, "sneaker": 7, "bag": 8, "ankle_boot": 9}
FAR_OOD = ("digits", "natural", "noise")

#: Photographs and micrographs bundled inside the scikit-image wheel (checked to load offline with
#: scikit-image 0.26; the others in ``skimage.data`` need pooch and a download, or are synthetic:
#: checkerboard, binary blobs, logo, colour wheel, phantom, or text pages).
NATURAL_IMAGES = (
    "astronaut", "brick", "camera", "chelsea", "clock", "coffee", "coins", "grass", "gravel",
    "hubble_deep_field", "immunohistochemistry", "moon", "retina", "rocket", "stereo_motorcycle",
)  # fmt: skip

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
DATASET = "fashion-mnist"  # directory under the data root (see ood.data.registry)
IMAGE_SIZE = 28

_MISSING_HINT = (
    "run `make study` or `python -m ood.data download fashion-mnist` "
    "(add `--root DIR` if your data root is not ./data)"
)


# ---------------------------------------------------------------------------------------------
# IDX files
# ---------------------------------------------------------------------------------------------

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (the MNIST format; ``.gz`` accepted) into a numpy array.

    Checks the magic number and that the payload matches the header, so a truncated or foreign
    file gives a clear error rather than garbage images.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number {data[:4].hex()})")
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(f"{path}: IDX header says shape {shape} ({expected} bytes), file has {len(data)}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find(directory: Path, name: str) -> Path:
    """The uncompressed file, else its ``.gz`` (a manual download), else a clear error."""
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"Fashion-MNIST file {name!r} not found in {directory}: {_MISSING_HINT}")


def load_fashion_mnist(directory: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The four Fashion-MNIST arrays (keys of :data:`IDX_FILES`): uint8 images, uint8 labels."""
    directory = Path(directory)
    arrays = {key: read_idx(_find(directory, name)) for key, name in IDX_FILES.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"{directory}: {split} images have shape {images.shape}, want [N,28,28]")
        if labels.shape != (len(images),):
            raise ValueError(f"{directory}: {len(labels)} {split} labels for {len(images)} images")
    return arrays


# ---------------------------------------------------------------------------------------------
# Seeded helpers
# ---------------------------------------------------------------------------------------------


def _rng(seed: int, stream: str) -> np.random.Generator:
    """An independent generator per (seed, purpose): e.g. ``far_size`` never moves the val split."""
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(stream.encode())]))


def _quantise(x: torch.Tensor) -> torch.Tensor:
    """Clip to [0, 1] and round to 8-bit levels, like the Fashion-MNIST images."""
    return x.clamp_(0.0, 1.0).mul_(255.0).round_().div_(255.0)


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 ``[N, 28, 28]`` -> float32 ``[N, 1, 28, 28]`` in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32).div_(255.0).unsqueeze(1)


def _ood_dataset(images: torch.Tensor) -> TensorDataset:
    return TensorDataset(images, torch.full((len(images),), OOD_LABEL, dtype=torch.int64))


def _cap(n_total: int, subset: int | None, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of a seeded random subset of at most ``subset`` of ``n_total`` items."""
    if subset is None or n_total <= subset:
        return np.arange(n_total)
    return np.sort(rng.choice(n_total, size=subset, replace=False))


# ---------------------------------------------------------------------------------------------
# Far-OOD sets
# ---------------------------------------------------------------------------------------------


def make_digits(n: int, rng: np.random.Generator) -> torch.Tensor:
    """``min(n, 1797)`` scikit-learn digits as ``[N, 1, 28, 28]``: 8x8 -> 20x20, centred, [0, 1]."""
    from sklearn.datasets import load_digits

    images = load_digits().images.astype(np.float32) / 16.0  # values 0..16, shipped with sklearn
    idx = _cap(len(images), n, rng)
    x = torch.from_numpy(images[idx]).unsqueeze(1)
    # MNIST's recipe: the digit fills a 20x20 box centred in a 28x28 frame.
    x = F.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False)
    x = F.pad(x, (4, 4, 4, 4))
    return _quantise(x)


@lru_cache(maxsize=1)
def _natural_sources() -> tuple[np.ndarray, ...]:
    """The bundled scikit-image photographs as float32 grayscale arrays in [0, 1] (cached)."""
    import skimage.data
    from skimage.color import rgb2gray, rgba2rgb
    from skimage.util import img_as_float32

    out = []
    for name in NATURAL_IMAGES:
        try:
            image = getattr(skimage.data, name)()
        except Exception as exc:  # pragma: no cover - depends on the installed scikit-image
            raise RuntimeError(
                f"scikit-image's bundled image {name!r} did not load ({exc}); the natural OOD set "
                "needs scikit-image==0.26 as pinned in pyproject.toml"
            ) from exc
        if isinstance(image, tuple):  # stereo_motorcycle -> (left, right, disparity)
            image = image[0]
        image = img_as_float32(image)
        if image.ndim == 3 and image.shape[-1] == 4:
            image = rgba2rgb(image)
        if image.ndim == 3:
            image = rgb2gray(image)
        out.append(np.ascontiguousarray(image, dtype=np.float32))
    return tuple(out)


_MAX_DRAWS = 20  # bounded redraws: deterministic and never an endless loop
_MIN_CROP_STD = 0.02


def make_natural(n: int, rng: np.random.Generator) -> torch.Tensor:
    """``n`` grayscale 28x28 crops of scikit-image's bundled photographs, ``[N, 1, 28, 28]``.

    Each crop picks a photograph uniformly, a square side log-uniform in [28, min(H, W) / 2]
    (textures at several scales), a uniform position and a random horizontal flip, then is
    resized with anti-aliasing. Nearly constant crops (std < 0.02) are redrawn.
    """
    sources = _natural_sources()
    out = torch.empty((n, 1, IMAGE_SIZE, IMAGE_SIZE), dtype=torch.float32)
    for i in range(n):
        for _ in range(_MAX_DRAWS):
            image = sources[rng.integers(len(sources))]
            h, w = image.shape
            high = max(IMAGE_SIZE, min(h, w) // 2)
            side = int(round(np.exp(rng.uniform(np.log(IMAGE_SIZE), np.log(high)))))
            top, left = rng.integers(h - side + 1), rng.integers(w - side + 1)
            crop = torch.from_numpy(image[top : top + side, left : left + side].copy())
            # Redraw (nearly) blank crops, e.g. the black border of the retina photograph: a
            # constant image tests nothing about natural-image statistics.
            if float(crop.std()) >= _MIN_CROP_STD:
                break
        if rng.random() < 0.5:
            crop = crop.flip(-1)
        out[i] = F.interpolate(
            crop[None, None], size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", antialias=True,
            align_corners=False,
        )[0]  # fmt: skip
    return _quantise(out)


def make_noise(n: int, rng: np.random.Generator) -> torch.Tensor:
    """``n`` synthetic images ``[N, 1, 28, 28]``: half uniform noise, half blurred noise blobs.

    Blobs: white Gaussian noise blurred with sigma ~ U[1, 3] px, standardised, mapped to
    0.5 + 0.25 z and clipped. The two kinds are shuffled together.
    """
    from scipy.ndimage import gaussian_filter

    n_uniform = n // 2
    uniform = rng.random((n_uniform, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    blobs = np.empty((n - n_uniform, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    for i in range(len(blobs)):
        z = gaussian_filter(rng.standard_normal((IMAGE_SIZE, IMAGE_SIZE)), rng.uniform(1.0, 3.0), mode="wrap")
        blobs[i] = 0.5 + 0.25 * (z - z.mean()) / (z.std() + 1e-8)
    images = np.concatenate([uniform, blobs])[rng.permutation(n)]
    return _quantise(torch.from_numpy(images).unsqueeze(1))


# ---------------------------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------------------------


def _check_params(val_fraction: float, far_size: int, seed: int, subset: int | None) -> None:
    def is_int(v: object) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not (
        0.0 < float(val_fraction) <= 0.5
    ):
        raise ValueError(f"val_fraction must be a number in (0, 0.5], got {val_fraction!r}")
    if not is_int(far_size) or far_size < 1:
        raise ValueError(f"far_size must be an integer >= 1, got {far_size!r}")
    if not is_int(seed):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if subset is not None and (not is_int(subset) or subset < 1):
        raise ValueError(f"subset must be None or an integer >= 1, got {subset!r}")


def _split_val(labels: np.ndarray, val_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/val split: ``val_fraction`` of every class goes to val (sorted indices)."""
    val: list[np.ndarray] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        n_val = min(max(1, int(round(val_fraction * len(idx)))), len(idx) - 1) if len(idx) > 1 else 0
        val.append(rng.permutation(idx)[:n_val])
    val_idx = np.sort(np.concatenate(val)) if val else np.empty(0, dtype=np.int64)
    train_mask = np.ones(len(labels), dtype=bool)
    train_mask[val_idx] = False
    return np.flatnonzero(train_mask), val_idx


def load_fmnist6(
    root: str | os.PathLike[str] = "data",
    *,
    val_fraction: float = 0.1,
    far_size: int = 2000,
    seed: int = 0,
    subset: int | None = None,
) -> Benchmark:
    """Build the ``fmnist6`` benchmark from ``<root>/fashion-mnist/`` (see module docstring).

    Args:
        root: data root; the four IDX files (uncompressed, or ``.gz``) are read from
            ``<root>/fashion-mnist/``.
        val_fraction: fraction of each ID training class held out for validation, in (0, 0.5].
        far_size: size of the ``natural`` and ``noise`` sets; ``digits`` has ``min(far_size, 1797)``.
        seed: seeds the val split, the far-OOD sets and ``subset``.
        subset: cap every split and set to this many samples (seeded) for tiny test runs.
    """
    _check_params(val_fraction, far_size, seed, subset)
    arrays = load_fashion_mnist(Path(root) / DATASET)

    # ID: keep the six classes and relabel them 0..5 in the order of ID_CLASSES.
    remap = np.full(256, -1, dtype=np.int64)
    remap[list(ID_CLASSES)] = np.arange(len(ID_CLASSES))
    tr_labels, te_labels = arrays["train_labels"], arrays["test_labels"]
    tr_keep = np.flatnonzero(remap[tr_labels] >= 0)
    te_keep = np.flatnonzero(remap[te_labels] >= 0)
    tr_y = remap[tr_labels[tr_keep]]
    train_idx, val_idx = _split_val(tr_y, float(val_fraction), _rng(seed, "val"))

    def id_split(images: np.ndarray, labels: np.ndarray, keep: np.ndarray, name: str) -> TensorDataset:
        keep = keep[_cap(len(keep), subset, _rng(seed, f"subset/{name}"))]
        return TensorDataset(_to_tensor(images[keep]), torch.from_numpy(remap[labels[keep]]))

    train = id_split(arrays["train_images"], tr_labels, tr_keep[train_idx], "train")
    val = id_split(arrays["train_images"], tr_labels, tr_keep[val_idx], "val")
    test = id_split(arrays["test_images"], te_labels, te_keep, "test")

    # Near-OOD: held-out classes from the *test* split (the training split is never seen as OOD).
    ood: dict[str, TensorDataset] = {}
    for name, label in NEAR_OOD.items():
        idx = np.flatnonzero(te_labels == label)
        idx = idx[_cap(len(idx), subset, _rng(seed, f"subset/{name}"))]
        ood[name] = _ood_dataset(_to_tensor(arrays["test_images"][idx]))

    # Far-OOD: generate only what is kept (subset) so tiny runs stay fast.
    n_far = far_size if subset is None else min(far_size, subset)
    ood["digits"] = _ood_dataset(make_digits(n_far, _rng(seed, "digits")))
    ood["natural"] = _ood_dataset(make_natural(n_far, _rng(seed, "natural")))
    ood["noise"] = _ood_dataset(make_noise(n_far, _rng(seed, "noise")))

    return Benchmark(
        name="fmnist6",
        classes=[FASHION_MNIST_CLASSES[c] for c in ID_CLASSES],
        train=train,
        val=val,
        test=test,
        ood=ood,
        groups={"near": list(NEAR_OOD), "far": list(FAR_OOD)},
        in_channels=1,
        image_size=(IMAGE_SIZE, IMAGE_SIZE),
        params={"val_fraction": float(val_fraction), "far_size": int(far_size), "seed": int(seed),
                "subset": None if subset is None else int(subset)},
    )  # fmt: skip
