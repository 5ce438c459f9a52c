"""A streaming store of per-pixel score maps: written batch by batch, read back chunk by chunk.

Dense OOD sets (Fishyscapes, SMIYC: thousands of 2048x1024 frames) do not fit in memory as float32
maps of several detectors. :class:`ScoreMapWriter` appends each batch's maps to one file as they
are produced; :class:`ScoreMaps` reads them back one chunk at a time (the second, component pass of
the dense evaluation) or whole (small data, tests, figures).

**Format.** The file is a plain ``.npz``: a zip archive (ZIP64, members compressed with
``ZIP_DEFLATED`` unless ``compress=False``) whose members are ``.npy`` files written by
``numpy.lib.format.write_array``, one per written chunk::

    <set>/<key>/<chunk>.npy      e.g. near/label/00000.npy, near/msp/00000.npy, near/msp/00001.npy

* ``<set>``: the dense OOD set (``near``, ``far``, ...).
* ``<key>``: ``label`` (uint8 ``[n, H, W]``: 0 ID pixel, 1 OOD pixel, 255 void) or a detector name
  (float32 ``[n, H, W]``, higher = more OOD; void pixels carry whatever the detector produced).
* ``<chunk>``: the chunk number within ``(set, key)``, counted from 0 and zero-padded to five
  digits (``00000``, ``00001``, ...; wider beyond 99999). Chunks are batches of consecutive images
  in the set's order, so image ``i`` of a set is row ``i - offset`` of the chunk that holds it; the
  ``c``-th chunks of every key of a set hold the same images.

Anybody can therefore recompute every dense metric without this package::

    with np.load("scenes.npz") as z:
        names = sorted(n for n in z.files if n.startswith("near/msp/"))   # "near/msp/00000", ...
        msp = np.concatenate([z[n] for n in names])                       # sorted = chunk order
        label = np.concatenate([z[n] for n in sorted(n for n in z.files if n.startswith("near/label/"))])

(``np.load`` names members without their ``.npy`` suffix; lexical order is chunk order up to
100000 chunks, :class:`ScoreMaps` sorts numerically.)

The bytes depend only on what was written (fixed member timestamps), so identical maps give an
identical file (stable DVC hashes).

**Atomicity.** The writer writes to a hidden temporary file next to ``path`` and renames it onto
``path`` only when closed without error, so an interrupted or failed run never leaves a half
written store (nor its temporary file, unless the process is killed outright).
"""

from __future__ import annotations

import os
import re
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["LABEL_KEY", "ScoreMapWriter", "ScoreMaps", "member_name"]

#: The key of the ground-truth masks of a set (0 ID pixel, 1 OOD pixel, 255 void).
LABEL_KEY = "label"

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_MEMBER = re.compile(r"^(?P<set>[^/]+)/(?P<key>[^/]+)/(?P<chunk>\d+)\.npy$")


def member_name(set_name: str, key: str, chunk: int) -> str:
    """The zip member of chunk ``chunk`` of ``(set_name, key)``: ``"<set>/<key>/<chunk:05d>.npy"``."""
    return f"{set_name}/{key}/{int(chunk):05d}.npy"


def _check_name(what: str, name: Any) -> str:
    if not isinstance(name, str) or not name or "/" in name or name.startswith(".") or name != name.strip():
        raise ValueError(f"{what} must be a non-empty str without '/', leading '.' or surrounding spaces, got {name!r}")
    return name


def _to_numpy(array: Any) -> np.ndarray:
    if hasattr(array, "detach") and hasattr(array, "cpu"):  # torch tensor (this module does not import torch)
        array = array.detach().cpu().numpy()
    return np.ascontiguousarray(array)


class ScoreMapWriter:
    """Append score-map chunks to a new store at ``path`` (see the module docstring for the format).

    Use as a context manager::

        with ScoreMapWriter("scores/scenes.npz") as w:
            for x, y in loader:
                w.write("near", "label", y)          # one chunk per call, in order
                w.write("near", "msp", msp_map(x))

    The file appears at ``path`` (replacing any previous one) only when the block exits without an
    exception (or on :meth:`close`); an exception (or :meth:`abort`) removes the temporary file and
    leaves ``path`` untouched.

    Args:
        path: the store to write (conventionally ``.npz``); its folder is created if needed.
        compress: ``ZIP_DEFLATED`` members (default) or ``ZIP_STORED``.
        compresslevel: zlib level 1..9 (default 1: float maps barely compress better at higher
            levels, and labels compress well at any level).
    """

    def __init__(self, path: str | os.PathLike[str], *, compress: bool = True, compresslevel: int = 1):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        os.close(fd)
        self._tmp = Path(tmp)
        try:
            self._zip: zipfile.ZipFile | None = zipfile.ZipFile(
                self._tmp,
                "w",
                compression=zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED,
                compresslevel=compresslevel if compress else None,
                allowZip64=True,
            )
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        self._chunks: dict[tuple[str, str], int] = {}

    @property
    def closed(self) -> bool:
        return self._zip is None

    def write(self, set_name: str, key: str, array: Any) -> str:
        """Append ``array`` (numpy or torch; conventionally ``[n, H, W]``) as the next chunk of
        ``(set_name, key)``; returns the member name. Object arrays are refused."""
        if self._zip is None:
            raise ValueError("the writer is closed")
        pair = (_check_name("set name", set_name), _check_name("key", key))
        arr = _to_numpy(array)
        if arr.dtype.hasobject:
            raise TypeError(f"{set_name}/{key}: object arrays cannot be stored")
        chunk = self._chunks.get(pair, 0)
        name = member_name(*pair, chunk)
        info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)  # fixed time: same maps, same bytes
        info.external_attr = 0o644 << 16
        info.compress_type = self._zip.compression
        info._compresslevel = self._zip.compresslevel  # as ZipFile.open(str) does (Python 3.10-3.12)
        with self._zip.open(info, "w", force_zip64=True) as f:  # as numpy.savez: members may exceed 2 GiB
            np.lib.format.write_array(f, arr, allow_pickle=False)
        self._chunks[pair] = chunk + 1
        return name

    def n_chunks(self, set_name: str, key: str) -> int:
        """Chunks written so far to ``(set_name, key)``."""
        return self._chunks.get((set_name, key), 0)

    def close(self) -> Path:
        """Finish the archive and move it onto ``path`` (atomic rename); returns ``path``."""
        if self._zip is None:
            raise ValueError("the writer is already closed")
        zf, self._zip = self._zip, None
        try:
            zf.close()
            with open(self._tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(self._tmp, self.path)
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        return self.path

    def abort(self) -> None:
        """Discard everything written: remove the temporary file, leave ``path`` as it was."""
        if self._zip is not None:
            zf, self._zip = self._zip, None
            try:
                zf.close()
            except Exception:  # noqa: BLE001 - the file is discarded anyway
                pass
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> ScoreMapWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{sum(self._chunks.values())} chunks"
        return f"ScoreMapWriter({str(self.path)!r}, {state})"


class ScoreMaps:
    """Read a store written by :class:`ScoreMapWriter` (any zip of ``<set>/<key>/<n>.npy`` members).

    ``sets()`` and ``keys(set)`` list what is stored (in the order first written; ``keys`` includes
    ``"label"``), ``iter_chunks(set, key)`` yields the chunks in order, one in memory at a time,
    ``iter_batches(set, keys)`` the aligned chunks of several keys, ``load(set, key)`` concatenates
    them all and ``head(set, key, n)`` reads only the first ``n`` images. Members that do not follow
    the naming are ignored. Use as a context manager or call :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._zip = zipfile.ZipFile(self.path, "r")
        index: dict[str, dict[str, dict[int, str]]] = {}
        for name in self._zip.namelist():
            m = _MEMBER.match(name)
            if m is None:
                continue
            chunks = index.setdefault(m["set"], {}).setdefault(m["key"], {})
            n = int(m["chunk"])
            if n in chunks:
                raise ValueError(f"{self.path}: chunk {n} of {m['set']}/{m['key']} is stored twice")
            chunks[n] = name
        self._index: dict[str, dict[str, list[str]]] = {}
        for s, keys in index.items():
            self._index[s] = {}
            for k, chunks in keys.items():
                order = sorted(chunks)
                if order != list(range(len(order))):
                    raise ValueError(f"{self.path}: chunks of {s}/{k} are not numbered 0..{len(order) - 1}")
                self._index[s][k] = [chunks[i] for i in order]

    # ------------------------------------------------------------------ listing
    def sets(self) -> list[str]:
        return list(self._index)

    def keys(self, set_name: str) -> list[str]:
        """Keys of ``set_name``: ``"label"`` and the detectors."""
        return list(self._members(set_name))

    def detectors(self, set_name: str) -> list[str]:
        """Keys of ``set_name`` other than ``"label"``."""
        return [k for k in self.keys(set_name) if k != LABEL_KEY]

    def n_chunks(self, set_name: str, key: str) -> int:
        return len(self._members(set_name, key))

    def _members(self, set_name: str, key: str | None = None):
        if set_name not in self._index:
            raise KeyError(f"{self.path}: no set {set_name!r}; stored sets: {self.sets()}")
        per_set = self._index[set_name]
        if key is None:
            return per_set
        if key not in per_set:
            raise KeyError(f"{self.path}: set {set_name!r} has no key {key!r}; stored keys: {list(per_set)}")
        return per_set[key]

    # ------------------------------------------------------------------ reading
    def _read(self, member: str) -> np.ndarray:
        with self._zip.open(member) as f:
            return np.lib.format.read_array(f, allow_pickle=False)

    def iter_chunks(self, set_name: str, key: str) -> Iterator[np.ndarray]:
        """The chunks of ``(set_name, key)`` in the order written, read one at a time."""
        for member in self._members(set_name, key):
            yield self._read(member)

    def iter_batches(self, set_name: str, keys: Sequence[str] | None = None) -> Iterator[dict[str, np.ndarray]]:
        """``{key: chunk}`` for the aligned chunks of ``keys`` (default: every key of the set).

        Raises ``ValueError`` if the keys have different numbers of chunks or a chunk's images
        differ in number between keys.
        """
        keys = self.keys(set_name) if keys is None else list(keys)
        members = [self._members(set_name, k) for k in keys]
        if len({len(m) for m in members}) > 1:
            counts = {k: len(m) for k, m in zip(keys, members)}
            raise ValueError(f"{self.path}: keys of set {set_name!r} have different numbers of chunks: {counts}")
        for row in zip(*members):
            batch = {k: self._read(m) for k, m in zip(keys, row)}
            if len({a.shape[:1] for a in batch.values()}) > 1:
                shapes = {k: a.shape for k, a in batch.items()}
                raise ValueError(f"{self.path}: misaligned chunks {row[0]!r}...: {shapes}")
            yield batch

    def load(self, set_name: str, key: str) -> np.ndarray:
        """All chunks of ``(set_name, key)`` concatenated along the first axis (small data only)."""
        chunks = list(self.iter_chunks(set_name, key))
        return np.concatenate(chunks) if chunks else np.zeros((0,))

    def head(self, set_name: str, key: str, n: int) -> np.ndarray:
        """The first ``n`` images (rows) of ``(set_name, key)``, reading only the chunks needed."""
        parts, have = [], 0
        if n > 0:
            for chunk in self.iter_chunks(set_name, key):
                parts.append(chunk[: n - have])
                have += len(parts[-1])
                if have >= n:
                    break
        return np.concatenate(parts) if parts else np.zeros((0,))

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> ScoreMaps:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        sets = ", ".join(f"{s}: {len(k)} keys" for s, k in self._index.items())
        return f"ScoreMaps({str(self.path)!r}, {sets})"
