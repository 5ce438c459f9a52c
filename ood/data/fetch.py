"""Checksummed, resumable, multi-mirror file fetcher (standard library only, plus tqdm if present).

Design choices, each for a reason:

* The checksum is of the content **as stored** (after gunzip when ``gzip=True``). Mirrors re-compress
  archives (Debian's ``dataset-fashion-mnist`` does), so a ``.gz`` checksum would reject good data.
* Downloads go to ``<dest>.part`` and are **resumed** on the next attempt. A sidecar
  ``<dest>.part.src`` records which URL the partial bytes came from: bytes from two mirrors must
  never be spliced together (their ``.gz`` files can differ while the content is the same).
* The final name appears only through :func:`os.replace`, so an interruption (Ctrl-C, kill, full
  disk) never leaves a half-written file under the name that loaders and DVC look at.
* When every mirror fails, :class:`FetchError` lists each URL tried and why, and says what to do.
* Checksums: ``sha256`` and/or ``md5`` (some datasets publish only an MD5, e.g. on Zenodo or in
  the reference loaders); every one given must match. A file with **no published checksum** is
  handled by *trust on first use*: the SHA-256 of the first copy accepted is recorded in a lock
  file ``<name>.sha256`` next to it (``sha256sum -c`` format; commit or archive it to pin the
  data), an :class:`UnpinnedChecksumWarning` says so, and every later fetch or verification must
  match the lock. Delete the lock only if upstream legitimately replaced the file.
"""

from __future__ import annotations

import gzip as _gzip
import hashlib
import http.client
import io
import os
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable

__all__ = [
    "RemoteFile",
    "FetchError",
    "UnpinnedChecksumWarning",
    "fetch",
    "sha256sum",
    "file_digests",
    "tofu_lock_path",
    "candidate_urls",
    "MIRRORS_ENV",
]

#: Environment variable with extra mirrors (whitespace-separated base URLs or directories),
#: tried before the spec's own mirrors.
MIRRORS_ENV = "OOD_MIRRORS"

CHUNK_SIZE = 1 << 20  # 1 MiB: large enough to be fast, small enough for a smooth progress bar
_USER_AGENT = "oodstudy-fetch/0.1 (python-urllib)"
_GZIP_MAGIC = b"\x1f\x8b"
_HEX_LENGTH = {"sha256": 64, "md5": 32}  # the checksum algorithms a RemoteFile may pin


def _is_hex(value: str) -> bool:
    return all(c in "0123456789abcdef" for c in value.lower())


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch.

    Attributes:
        name: destination file name (inside ``dest_dir``).
        sha256: checksum of the content as stored, i.e. *after* gunzip when ``gzip`` is true;
            ``None`` when none is published (then ``md5`` is checked, or trust on first use).
        mirrors: full URLs (``https://``, ``http://``, ``file://``) or local paths, tried in order.
        gzip: the mirrors serve a gzip stream that is decompressed before storing.
        size: expected size in bytes of the stored content (optional; a cheap pre-check).
        hint: dataset-specific advice appended to the error message (e.g. an ``apt-get`` line).
        md5: published MD5 of the content as stored (optional; checked in addition to ``sha256``).

    With neither ``sha256`` nor ``md5`` the file is verified by trust on first use (module docs).
    """

    name: str
    sha256: str | None = None
    mirrors: list[str] = field(default_factory=list)
    gzip: bool = False
    size: int | None = None
    hint: str | None = None
    md5: str | None = None

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or "\\" in self.name:
            raise ValueError(f"RemoteFile.name must be a plain file name, got {self.name!r}")
        for algo, length in _HEX_LENGTH.items():
            value = getattr(self, algo)
            if value is not None and (len(value) != length or not _is_hex(value)):
                raise ValueError(f"RemoteFile.{algo} must be {length} hex digits, got {value!r}")

    @property
    def pinned(self) -> dict[str, str]:
        """The published checksums, ``{algorithm: lowercase hex}`` (empty: trust on first use)."""
        return {a: getattr(self, a).lower() for a in _HEX_LENGTH if getattr(self, a) is not None}


class UnpinnedChecksumWarning(UserWarning):
    """A file without a published checksum was accepted and its SHA-256 recorded (trust on first use)."""


class FetchError(RuntimeError):
    """Every mirror failed. ``attempts`` holds ``(url, reason)`` pairs in the order tried."""

    def __init__(self, message: str, attempts: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.attempts = list(attempts or [])


class _MirrorFailed(Exception):
    """One attempt on one mirror failed. ``permanent``: retrying the same mirror is pointless."""

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def sha256sum(path: str | os.PathLike[str], chunk_size: int = CHUNK_SIZE) -> str:
    """Hex SHA-256 of a file, read in chunks (constant memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def file_digests(
    path: str | os.PathLike[str], algorithms: tuple[str, ...] = ("sha256",), chunk_size: int = CHUNK_SIZE
) -> dict[str, str]:
    """Hex digests of a file for several algorithms in one pass, ``{algorithm: hex}``."""
    digests = {a: hashlib.new(a) for a in dict.fromkeys(algorithms)}
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk_size), b""):
            for d in digests.values():
                d.update(block)
    return {a: d.hexdigest() for a, d in digests.items()}


def tofu_lock_path(dest: str | os.PathLike[str]) -> Path:
    """The trust-on-first-use lock of ``dest`` (a file without a published checksum)."""
    dest = Path(dest)
    return dest.with_name(dest.name + ".sha256")


def _expected(spec: RemoteFile, dest: Path) -> tuple[dict[str, str], str]:
    """The checksums ``dest`` must have and where they come from (published, or the TOFU lock)."""
    if spec.pinned:
        return spec.pinned, "published"
    lock = tofu_lock_path(dest)
    if lock.is_file():
        fields = lock.read_text().split()
        if fields and len(fields[0]) == 64 and _is_hex(fields[0]):
            return {"sha256": fields[0].lower()}, f"recorded on first use in {lock}"
    return {}, "none"


def _checksum_problem(spec: RemoteFile, path: Path, dest: Path) -> tuple[str | None, str]:
    """Check ``path`` (to be installed as ``dest``); returns ``(problem or None, its sha256)``."""
    expected, source = _expected(spec, dest)
    got = file_digests(path, tuple(dict.fromkeys(["sha256", *expected])))
    for algo, want in expected.items():
        if got[algo] != want:
            prefix = "checksum mismatch" if algo == "sha256" else f"{algo} checksum mismatch"
            extra = "" if source == "published" else f" ({source})"
            return f"{prefix}: got {_short(got[algo])}, expected {_short(want)}{extra}", got["sha256"]
    return None, got["sha256"]


def _trust_on_first_use(spec: RemoteFile, dest: Path, sha256: str) -> None:
    """Record the SHA-256 of an unpinned file the first time it is accepted, and say so."""
    lock = tofu_lock_path(dest)
    if spec.pinned or lock.is_file():
        return
    tmp = lock.with_name(f".{lock.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(f"{sha256}  {dest.name}\n")
    os.replace(tmp, lock)
    warnings.warn(
        f"{dest.name}: no published checksum; trusting this copy on first use and recording its "
        f"sha256 {sha256} in {lock}. Later runs verify against it.",
        UnpinnedChecksumWarning,
        stacklevel=3,
    )


def _short(digest: str) -> str:
    return digest[:12] + "…"


def _is_local(url: str) -> bool:
    """True for ``file://`` URLs and plain paths (no scheme, or a Windows drive letter)."""
    scheme = urllib.parse.urlsplit(url).scheme
    return scheme in ("", "file") or len(scheme) == 1


def _local_path(url: str) -> Path:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        return Path(urllib.request.url2pathname(parts.path))
    return Path(url).expanduser()


def _basename(url: str) -> str:
    """Last path component of a URL or path (``…/train-images-idx3-ubyte.gz`` → that name)."""
    path = urllib.parse.urlsplit(url).path if not _is_local(url) else str(_local_path(url))
    return path.rstrip("/").rsplit("/", 1)[-1]


def _join(base: str, name: str) -> str:
    """``base`` (URL or directory) + ``/`` + ``name``, without doubling the slash."""
    return base.rstrip("/") + "/" + name


def candidate_urls(spec: RemoteFile, env: str | None = None) -> list[str]:
    """The URLs :func:`fetch` tries, in order: ``$OOD_MIRRORS`` bases first, then ``spec.mirrors``.

    For every base in ``$OOD_MIRRORS`` the file names of the spec's mirrors are tried (e.g. the
    ``.gz`` name), then the plain ``spec.name`` (so a directory of already-uncompressed files works
    too). Duplicates are dropped, order kept.
    """
    env = os.environ.get(MIRRORS_ENV, "") if env is None else env
    names: list[str] = [_basename(m) for m in spec.mirrors] + [spec.name]
    urls: list[str] = []
    for base in env.split():
        urls.extend(_join(base, n) for n in names)
    urls.extend(spec.mirrors)
    return list(dict.fromkeys(urls))


# --------------------------------------------------------------------------------------------
# Opening a source at an offset (monkeypatched in tests to count the bytes read)
# --------------------------------------------------------------------------------------------


def _open_source(url: str, offset: int, timeout: float) -> tuple[BinaryIO, int, int | None]:
    """Open ``url`` for reading from byte ``offset``.

    Returns ``(stream, start, total)``: ``start`` is where the stream really starts (``offset`` when
    the source honoured the resume request, 0 when it restarts from the beginning) and ``total``
    the full size of the source if known.
    """
    if _is_local(url):
        path = _local_path(url)
        if not path.is_file():
            raise _MirrorFailed("file not found", permanent=True)
        total = path.stat().st_size
        start = offset if 0 < offset <= total else 0
        fh = open(path, "rb")
        fh.seek(start)
        return fh, start, total

    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if offset > 0:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (scheme checked)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset > 0:
            # Range not satisfiable: the partial already holds the whole file (interrupted after
            # the last byte). Read nothing more; the checksum decides, and a bad partial is
            # deleted and fetched again from scratch.
            return io.BytesIO(b""), offset, None
        # 4xx other than timeouts/rate limits will not get better by retrying.
        permanent = 400 <= exc.code < 500 and exc.code not in (408, 429)
        raise _MirrorFailed(f"HTTP {exc.code} {exc.reason}", permanent=permanent) from None

    length = response.headers.get("Content-Length")
    length_i = int(length) if length and length.isdigit() else None
    if offset > 0 and response.status == 206:
        content_range = response.headers.get("Content-Range", "")  # "bytes 100-999/1000"
        try:
            span, _, size = content_range.partition(" ")[2].partition("/")
            first = int(span.split("-")[0])
        except ValueError:
            first = -1
        if first != offset:
            response.close()
            raise _MirrorFailed(f"bad Content-Range {content_range!r}", permanent=False)
        total = int(size) if size.isdigit() else (offset + length_i if length_i is not None else None)
        return response, offset, total
    # 200: the server ignored the Range header (or none was sent): restart from byte 0.
    return response, 0, length_i


# --------------------------------------------------------------------------------------------
# The copy loop (monkeypatched in tests to simulate an interruption)
# --------------------------------------------------------------------------------------------


def _copy_stream(src: BinaryIO, dst: BinaryIO, update: Callable[[int], object]) -> int:
    """Copy ``src`` to ``dst`` in chunks, flushing each so an interruption keeps what was read."""
    copied = 0
    while True:
        block = src.read(CHUNK_SIZE)
        if not block:
            return copied
        dst.write(block)
        dst.flush()
        copied += len(block)
        update(len(block))


def _progress_bar(desc: str, total: int | None, initial: int, enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is a project dependency, but the fetcher must not need it
        return None
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        leave=False,
        disable=not (enabled and sys.stderr.isatty()),
    )


# --------------------------------------------------------------------------------------------
# One attempt on one mirror
# --------------------------------------------------------------------------------------------


def _download_part(url: str, part: Path, timeout: float, progress: bool, desc: str) -> bool:
    """Bring ``part`` to the full raw content of ``url``; returns True when it resumed."""
    src_file = part.with_name(part.name + ".src")
    # Resume only bytes that came from this very URL (see module docstring).
    offset = 0
    if part.exists() and src_file.exists() and src_file.read_text().strip() == url:
        offset = part.stat().st_size

    try:
        stream, start, total = _open_source(url, offset, timeout)
    except _MirrorFailed:
        raise
    except urllib.error.URLError as exc:
        raise _MirrorFailed(f"URLError: {exc.reason}", permanent=False) from None
    except (OSError, http.client.HTTPException) as exc:  # timeouts, resets, bad status lines
        raise _MirrorFailed(f"{type(exc).__name__}: {exc}", permanent=False) from None

    bar = _progress_bar(desc, total, start, progress)
    if progress and (bar is None or bar.disable):
        # No live bar (logs, notebooks, DVC stages): one line per download still says what happens.
        resumed_at = f" (resuming at byte {start})" if start else ""
        print(f"fetching {desc} from {url}{resumed_at}", file=sys.stderr, flush=True)
    try:
        with stream:
            if start == 0:
                # Restarting: drop the provenance first, so that an interruption between the
                # two steps can never pair old bytes with the new URL.
                src_file.unlink(missing_ok=True)
                part.write_bytes(b"")
                src_file.write_text(url + "\n")
            with open(part, "r+b") as out:
                out.seek(start)
                out.truncate()
                update = bar.update if bar is not None else (lambda n: None)
                copied = _copy_stream(stream, out, update)
    except (OSError, EOFError, http.client.HTTPException) as exc:  # e.g. IncompleteRead, timeout
        raise _MirrorFailed(f"{type(exc).__name__}: {exc}", permanent=False) from None
    finally:
        if bar is not None:
            bar.close()

    received = start + copied
    if total is not None and received < total:
        raise _MirrorFailed(f"incomplete download: {received} of {total} bytes", permanent=False)
    return start > 0


def _install(spec: RemoteFile, part: Path, dest: Path) -> None:
    """Gunzip (if needed) and verify ``part``; on success move it to ``dest`` atomically.

    On a bad checksum or corrupt gzip data the partial download is deleted (it cannot be resumed
    into anything good) and :class:`_MirrorFailed` is raised.
    """
    src_file = part.with_name(part.name + ".src")
    gzipped = False
    if spec.gzip:
        with open(part, "rb") as fh:
            # A mirror directory may hold the already-uncompressed file: nothing to gunzip then.
            gzipped = fh.read(2) == _GZIP_MAGIC

    staged = part
    if gzipped:
        # Decompress next to the destination (same file system, so os.replace stays atomic).
        # os.open with 0o666 (not mkstemp's 0o600) so the final file gets the usual umask mode.
        staged = dest.with_name(f".{spec.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        if gzipped:
            try:
                with os.fdopen(fd, "wb") as out, _gzip.open(part, "rb") as src:
                    shutil.copyfileobj(src, out, CHUNK_SIZE)
            except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
                raise _MirrorFailed(f"corrupt gzip data ({exc})", permanent=True) from None
        problem, sha256 = _checksum_problem(spec, staged, dest)
        if problem is not None:
            raise _MirrorFailed(problem, permanent=True)
        os.replace(staged, dest)  # atomic on POSIX and Windows (same directory)
        _trust_on_first_use(spec, dest, sha256)
    except _MirrorFailed:
        part.unlink(missing_ok=True)
        src_file.unlink(missing_ok=True)
        raise
    finally:
        if staged != part:
            staged.unlink(missing_ok=True)  # no stray temp file, whatever happened
    part.unlink(missing_ok=True)
    src_file.unlink(missing_ok=True)


def _verified(spec: RemoteFile, path: Path) -> str | None:
    """``None`` when ``path`` exists with the right size and checksums, else why not."""
    if not path.is_file():
        return "missing"
    if spec.size is not None and path.stat().st_size != spec.size:
        return f"size {path.stat().st_size}, expected {spec.size}"  # cheap rejection before hashing
    problem, sha256 = _checksum_problem(spec, path, path)
    if problem is None:
        _trust_on_first_use(spec, path, sha256)
    return problem


def _describe_checksums(spec: RemoteFile) -> str:
    if not spec.pinned:
        return "no published checksum: trusted on first use"
    return ", ".join(f"{algo} {value}" for algo, value in spec.pinned.items())


def _advice(spec: RemoteFile, dest: Path) -> str:
    names = dict.fromkeys([spec.name] + [_basename(m) for m in spec.mirrors])
    lines = [
        "What to do (any one of):",
        f"  * put the file {spec.name!r} (uncompressed, {_describe_checksums(spec)}) at {dest.absolute()}",
        f"  * set {MIRRORS_ENV} to a directory or base URL that holds "
        + " or ".join(repr(n) for n in names),
    ]
    if spec.hint:
        lines.append(f"  * {spec.hint}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------


def fetch(
    spec: RemoteFile,
    dest_dir: str | os.PathLike[str],
    *,
    retries: int = 2,
    timeout: float = 30,
    progress: bool = True,
) -> Path:
    """Make sure ``dest_dir/spec.name`` exists with the right checksum; return its path.

    An existing verified file is returned at once (no network). Otherwise the candidates of
    :func:`candidate_urls` are tried in order, each up to ``1 + retries`` times for transient
    errors (resuming the partial download). Raises :class:`FetchError` listing every failure.
    """
    dest_dir = Path(dest_dir)
    dest = dest_dir / spec.name
    rejected = _verified(spec, dest)
    if rejected is None:
        return dest

    dest_dir.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    failures: list[tuple[str, str]] = []

    for url in candidate_urls(spec):
        for attempt in range(1 + max(0, retries)):
            try:
                resumed = _download_part(url, part, timeout, progress, spec.name)
                try:
                    _install(spec, part, dest)
                except _MirrorFailed as exc:
                    if resumed and attempt < retries:
                        # A spliced download may be what broke the checksum: retry from scratch.
                        exc.permanent = False
                    raise
                return dest
            except _MirrorFailed as exc:
                if exc.permanent or attempt == retries:
                    failures.append((url, exc.reason))
                    break
                time.sleep(min(0.5 * (attempt + 1), 5.0))  # brief back-off before resuming

    tried = "\n".join(f"  - {url}: {reason}" for url, reason in failures) or "  (no mirrors)"
    existing = "" if rejected == "missing" else f"The existing file {dest} was rejected: {rejected}.\n"
    message = (
        f"could not fetch {spec.name!r} into {dest_dir}: every mirror failed.\n"
        f"{existing}Tried:\n{tried}\n{_advice(spec, dest)}"
    )
    raise FetchError(message, failures)
