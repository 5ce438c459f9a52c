"""Tiny stand-ins for the real datasets, written in the official file formats.

Tests (and the end-to-end pipeline test) use them where the real data is unavailable or too big:
the files go through the same code paths (IDX parsing, gzip, checksums, file:// mirrors).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from pathlib import Path

import numpy as np

__all__ = ["write_fake_fashion_mnist", "fake_fashion_mnist_arrays", "idx_bytes", "class_templates"]

_FMNIST_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def idx_bytes(array: np.ndarray) -> bytes:
    """Serialise a uint8 array in the IDX format (magic ``00 00 08 <ndim>``, big-endian dims)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def class_templates(size: int = 28) -> np.ndarray:
    """Ten visually distinct binary patterns ``[10, size, size]`` (one per class), so that even a
    tiny classifier reaches high accuracy on a few hundred fake samples."""
    yy, xx = np.mgrid[0:size, 0:size]
    c = (size - 1) / 2
    r = np.hypot(yy - c, xx - c)
    t = np.zeros((10, size, size), dtype=bool)
    t[0] = (yy >= 4) & (yy < 10) & (xx >= 4) & (xx < 24)  # bar at the top
    t[1] = (xx >= 11) & (xx < 17) & (yy >= 3) & (yy < 25)  # vertical bar
    t[2] = (abs(yy - c) < 7) & (abs(xx - c) < 7)  # filled square
    t[3] = abs(yy - xx) < 3  # diagonal
    t[4] = (r > 7) & (r < 11)  # ring
    t[5] = (abs(yy - c) < 2.5) | (abs(xx - c) < 2.5)  # cross
    t[6] = abs(yy + xx - (size - 1)) < 3  # anti-diagonal
    t[7] = (yy >= 18) & (yy < 24) & (xx >= 4) & (xx < 24)  # bar at the bottom
    t[8] = ((yy // 7 + xx // 7) % 2) == 0  # checkerboard
    t[9] = r < 5  # small disc
    return t


def fake_fashion_mnist_arrays(n_train: int = 600, n_test: int = 200, seed: int = 0) -> dict[str, np.ndarray]:
    """Fake Fashion-MNIST arrays keyed like ``ood.data.fmnist6.IDX_FILES``.

    Balanced labels (every class present as soon as n >= 10), each image its class template
    shifted by up to 2 px, with random brightness and additive noise, as uint8.
    """
    rng = np.random.default_rng(seed)
    templates = class_templates().astype(np.float32)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)
        images = np.empty((n, 28, 28), dtype=np.uint8)
        for i, label in enumerate(labels):
            dy, dx = rng.integers(-2, 3, size=2)
            img = np.roll(templates[label], (int(dy), int(dx)), axis=(0, 1)) * rng.uniform(150, 255)
            img += rng.normal(0, 25, size=img.shape)
            images[i] = np.clip(img, 0, 255).astype(np.uint8)
        return images, labels

    train_x, train_y = make(n_train)
    test_x, test_y = make(n_test)
    return {"train_images": train_x, "train_labels": train_y, "test_images": test_x, "test_labels": test_y}


def write_fake_fashion_mnist(
    directory: str | os.PathLike[str],
    n_train: int = 600,
    n_test: int = 200,
    gz: bool = True,
    seed: int = 0,
) -> dict[str, str]:
    """Write fake Fashion-MNIST IDX files into ``directory`` (created if needed).

    With ``gz=True`` the files get the official ``.gz`` names (a fake mirror); with ``gz=False``
    the uncompressed names (a ready ``data/fashion-mnist/`` directory). Returns
    ``{uncompressed name: sha256 of the uncompressed content}``, i.e. what a registry entry for
    these files would hold.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = fake_fashion_mnist_arrays(n_train, n_test, seed)
    checksums: dict[str, str] = {}
    for key, name in _FMNIST_NAMES.items():
        raw = idx_bytes(arrays[key])
        checksums[name] = hashlib.sha256(raw).hexdigest()
        if gz:
            # mtime=0: byte-identical archives on every run, like a real, fixed mirror.
            (directory / f"{name}.gz").write_bytes(gzip.compress(raw, mtime=0))
        else:
            (directory / name).write_bytes(raw)
    return checksums
