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
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable

__all__ = ["RemoteFile", "FetchError", "fetch", "sha256sum", "candidate_urls", "MIRRORS_ENV"]

#: Environment variable with extra mirrors (whitespace-separated base URLs or directories),
#: tried before the spec's own mirrors.
MIRRORS_ENV = "OOD_MIRRORS"

CHUNK_SIZE = 1 << 20  # 1 MiB: large enough to be fast, small enough for a smooth progress bar
_USER_AGENT = "oodstudy-fetch/0.1 (python-urllib)"
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch.

    Attributes:
        name: destination file name (inside ``dest_dir``).
        sha256: checksum of the content as stored, i.e. *after* gunzip when ``gzip`` is true.
        mirrors: full URLs (``https://``, ``http://``, ``file://``) or local paths, tried in order.
        gzip: the mirrors serve a gzip stream that is decompressed before storing.
        size: expected size in bytes of the stored content (optional; a cheap pre-check).
        hint: dataset-specific advice appended to the error message (e.g. an ``apt-get`` line).
    """

    name: str
    sha256: str
    mirrors: list[str] = field(default_factory=list)
    gzip: bool = False
    size: int | None = None
    hint: str | None = None

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or "\\" in self.name:
            raise ValueError(f"RemoteFile.name must be a plain file name, got {self.name!r}")
        if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256.lower()):
            raise ValueError(f"RemoteFile.sha256 must be 64 hex digits, got {self.sha256!r}")


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
        from tqdm.auto import tqdm
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
        got = sha256sum(staged)
        if got != spec.sha256.lower():
            raise _MirrorFailed(
                f"checksum mismatch: got {_short(got)}, expected {_short(spec.sha256.lower())}",
                permanent=True,
            )
        os.replace(staged, dest)  # atomic on POSIX and Windows (same directory)
    except _MirrorFailed:
        part.unlink(missing_ok=True)
        src_file.unlink(missing_ok=True)
        raise
    finally:
        if staged != part:
            staged.unlink(missing_ok=True)  # no stray temp file, whatever happened
    part.unlink(missing_ok=True)
    src_file.unlink(missing_ok=True)


def _verified(spec: RemoteFile, path: Path) -> bool:
    if not path.is_file():
        return False
    if spec.size is not None and path.stat().st_size != spec.size:
        return False  # cheap rejection before hashing
    return sha256sum(path) == spec.sha256.lower()


def _advice(spec: RemoteFile, dest: Path) -> str:
    names = dict.fromkeys([spec.name] + [_basename(m) for m in spec.mirrors])
    lines = [
        "What to do (any one of):",
        f"  * put the file {spec.name!r} (uncompressed, sha256 {spec.sha256}) at {dest.absolute()}",
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
    if _verified(spec, dest):
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
    message = (
        f"could not fetch {spec.name!r} into {dest_dir}: every mirror failed.\n"
        f"Tried:\n{tried}\n{_advice(spec, dest)}"
    )
    raise FetchError(message, failures)
