"""A local, content-keyed cache of built benchmarks.

Every pipeline stage that needs a benchmark builds it from the raw data, and building is not free
on 2 cores (``scenes``: ~9 s to render 15,000 scenes; ``fmnist6``: ~5 s with its far-OOD sets),
while a dozen stages need one. The first build is saved under ``.cache/benchmarks/`` of the project
(git-ignored, never a DVC output) and later stages load it (< 1 s).

The key covers everything a build depends on: the benchmark's name and parameters, the source of
``ood/data`` (a code change rebuilds), the raw files under the data root (path, size, modification
time) and the versions of the packages whose bundled data the embedded sets use. A missing or
unreadable entry is rebuilt; writes are atomic; older entries of the same benchmark are removed so
the cache holds one per benchmark. Delete the folder at will.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import torch

__all__ = ["cached"]

_PACKAGES = ("numpy", "torch", "scikit-learn", "scikit-image")  # bundled data: digits, photographs


@lru_cache(maxsize=1)
def _code_digest() -> str:
    h = hashlib.sha256()
    for f in sorted(Path(__file__).parent.glob("*.py")):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


def _data_stamp(root: Path) -> list:
    if not root.is_dir():
        return []
    stamp = []
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        st = f.stat()
        stamp.append([str(f.relative_to(root)), st.st_size, st.st_mtime_ns])
    return stamp


def _versions() -> dict[str, str]:
    out = {}
    for pkg in _PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = ""
    return out


def key(name: str, root: str | os.PathLike[str], params: dict[str, Any]) -> str:
    blob = json.dumps({"name": name, "params": params, "code": _code_digest(), "data": _data_stamp(Path(root)),
                       "versions": _versions()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def cached(name: str, root: str | os.PathLike[str], params: dict[str, Any], build: Callable[[], Any],
           folder: str | os.PathLike[str]) -> Any:
    """``build()``, or the benchmark a previous identical build saved in ``folder``."""
    from ..io import atomic_torch_save

    folder = Path(folder)
    path = folder / f"{name}-{key(name, root, params)}.pt"
    if path.exists():
        try:
            # Our own file, written below by this project's code (a pickled benchmark, not weights).
            return torch.load(path, weights_only=False)
        except Exception:  # noqa: BLE001 - a truncated or stale-format entry: rebuild it
            path.unlink(missing_ok=True)
    bench = build()
    folder.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(bench, path)
    for old in folder.glob(f"{name}-*.pt"):
        if old != path:
            old.unlink(missing_ok=True)
    return bench
