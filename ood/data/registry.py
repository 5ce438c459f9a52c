"""Registry of raw datasets (what to fetch, from where, with which checksums) and of benchmarks.

Adding a dataset: append a :class:`DatasetSpec` to :data:`DATASETS`. Adding a benchmark: append a
:class:`BenchmarkSpec` to :data:`BENCHMARKS` naming its loader as ``"module:function"`` (imported
lazily, so ``python -m ood.data download`` does not pay for importing torch) and the datasets it
reads.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .fetch import RemoteFile, fetch

__all__ = [
    "DatasetSpec",
    "BenchmarkSpec",
    "DATASETS",
    "BENCHMARKS",
    "download",
    "dataset_dir",
    "required_datasets",
]


@dataclass(frozen=True)
class DatasetSpec:
    """A raw dataset: the files stored under ``<root>/<name>/`` and how to get them."""

    name: str
    files: list[RemoteFile]
    description: str = ""
    hint: str | None = None  # shown when every mirror fails (also set on each file)


@dataclass(frozen=True)
class BenchmarkSpec:
    """A benchmark: how to build it (``loader``, as ``"module:function"``) and what it reads."""

    name: str
    loader_path: str
    datasets: tuple[str, ...] = ()
    description: str = ""

    @property
    def loader(self) -> Callable:
        """The loader function, imported on first use."""
        module, _, func = self.loader_path.partition(":")
        return getattr(importlib.import_module(module), func)


# ---------------------------------------------------------------------------------------------
# Fashion-MNIST
# ---------------------------------------------------------------------------------------------

# Checksums of the UNCOMPRESSED IDX files: the official .gz files and Debian's re-compressed ones
# differ byte-wise but decompress to the same content (measured on dataset-fashion-mnist
# 0.0~git20200523.55506a9-1), so this is what we verify whichever mirror served the file.
_FMNIST_FILES: dict[str, tuple[str, int]] = {
    "train-images-idx3-ubyte": (
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        47_040_016,
    ),
    "train-labels-idx1-ubyte": (
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        60_008,
    ),
    "t10k-images-idx3-ubyte": (
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        7_840_016,
    ),
    "t10k-labels-idx1-ubyte": (
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        10_008,
    ),
}
_FMNIST_MIRRORS = (
    "/usr/share/datasets/fashion-mnist",  # Debian/Ubuntu package: works offline
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com",  # official
    "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion",
)
_FMNIST_HINT = (
    "on Debian/Ubuntu: `sudo apt-get update && sudo apt-get install dataset-fashion-mnist` "
    "(offline mirror in /usr/share/datasets/fashion-mnist), then run the command again"
)

FASHION_MNIST = DatasetSpec(
    name="fashion-mnist",
    description="Fashion-MNIST (Xiao et al. 2017): 60k train / 10k test 28x28 grayscale, 10 classes",
    hint=_FMNIST_HINT,
    files=[
        RemoteFile(
            name=name,
            sha256=sha,
            size=size,
            gzip=True,
            mirrors=[f"{base}/{name}.gz" for base in _FMNIST_MIRRORS],
            hint=_FMNIST_HINT,
        )
        for name, (sha, size) in _FMNIST_FILES.items()
    ],
)

DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in [FASHION_MNIST]}

BENCHMARKS: dict[str, BenchmarkSpec] = {
    spec.name: spec
    for spec in [
        BenchmarkSpec(
            name="fmnist6",
            loader_path="ood.data.fmnist6:load_fmnist6",
            datasets=("fashion-mnist",),
            description="Fashion-MNIST, 6 ID classes; near-OOD = 4 held-out classes; "
            "far-OOD = digits, natural crops, noise",
        ),
    ]
}


def _unknown(kind: str, name: str, known: dict) -> ValueError:
    return ValueError(f"unknown {kind} {name!r}; known: {', '.join(sorted(known))}")


def dataset_dir(name: str, root: str | os.PathLike[str] = "data") -> Path:
    """Where dataset ``name`` lives: ``<root>/<name>``."""
    if name not in DATASETS:
        raise _unknown("dataset", name, DATASETS)
    return Path(root) / name


def download(
    name: str,
    root: str | os.PathLike[str] = "data",
    *,
    progress: bool = True,
    retries: int = 2,
    timeout: float = 30,
) -> Path:
    """Fetch (and verify) every file of dataset ``name`` into ``<root>/<name>/``; return that dir.

    Files already present with the right checksum are not fetched again.
    Raises :class:`~ood.data.fetch.FetchError` when a file cannot be fetched from any mirror.
    """
    directory = dataset_dir(name, root)
    for spec in DATASETS[name].files:
        fetch(spec, directory, retries=retries, timeout=timeout, progress=progress)
    return directory


def required_datasets(benchmarks: list[str] | None = None) -> list[str]:
    """Datasets needed by ``benchmarks`` (default: every known benchmark), in a stable order."""
    names = list(BENCHMARKS) if benchmarks is None else benchmarks
    needed: dict[str, None] = {}
    for name in names:
        if name not in BENCHMARKS:
            raise _unknown("benchmark", name, BENCHMARKS)
        needed.update(dict.fromkeys(BENCHMARKS[name].datasets))
    return list(needed)

