"""Data layer: checksummed multi-mirror fetching, the dataset registry and the benchmarks.

Public API::

    load_benchmark(name, root="data", **params) -> Benchmark | DenseBenchmark
    download(name, root="data") -> Path
    fetch(spec: RemoteFile, dest_dir, *, retries=2, timeout=30, progress=True) -> Path
    RemoteFile, FetchError, Benchmark, DenseBenchmark
    load_image_set(name, root="data", *, split=None, download=False, transform=None) -> ImageDataset
    load_scood(...), load_imglist(list_file, image_root), OPENOOD_V15   # ood.data.images

``Benchmark``, ``DenseBenchmark`` and the image loaders (and torch with them) are imported lazily, so
``python -m ood.data download`` starts fast.
"""

from __future__ import annotations

import inspect
import os
from typing import TYPE_CHECKING, Any

from .fetch import FetchError, RemoteFile, fetch, sha256sum
from .registry import BENCHMARKS, DATASETS, download

if TYPE_CHECKING:
    from .benchmark import Benchmark, DenseBenchmark
    from .images import OPENOOD_V15, load_image_set, load_imglist, load_scood

__all__ = [
    "load_benchmark",
    "download",
    "fetch",
    "sha256sum",
    "RemoteFile",
    "FetchError",
    "Benchmark",
    "DenseBenchmark",
    "BENCHMARKS",
    "DATASETS",
    "load_image_set",
    "load_scood",
    "load_imglist",
    "OPENOOD_V15",
]

_IMAGES = ("load_image_set", "load_scood", "load_imglist", "OPENOOD_V15")  # from ood.data.images, lazily


def load_benchmark(name: str, root: str | os.PathLike[str] = "data", *, cache: str | os.PathLike[str] | None = None,
                   **params: Any) -> Benchmark | DenseBenchmark:
    """Build benchmark ``name`` from the raw data under ``root`` (see ``BENCHMARKS``).

    ``params`` are the benchmark's own parameters (params.yaml); an unknown name or parameter
    raises ``ValueError`` listing the valid ones, so a typo in params.yaml fails loudly.
    ``cache``: a folder where the built benchmark is kept for the next call with the same name,
    parameters, raw data and code (:mod:`ood.data.cache`; the pipeline uses ``.cache/benchmarks``).
    """
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(sorted(BENCHMARKS))}")
    loader = BENCHMARKS[name].loader
    accepted = [p for p in inspect.signature(loader).parameters if p != "root"]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))} for benchmark {name!r}; "
            f"accepted: {', '.join(accepted)}"
        )
    if cache is None:
        return loader(root, **params)
    from .cache import cached

    return cached(name, root, params, lambda: loader(root, **params), cache)


def __getattr__(attr: str) -> Any:
    if attr == "Benchmark":
        from .benchmark import Benchmark

        return Benchmark
    if attr == "DenseBenchmark":
        from .benchmark import DenseBenchmark

        return DenseBenchmark
    if attr in _IMAGES:
        from . import images

        return getattr(images, attr)
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
