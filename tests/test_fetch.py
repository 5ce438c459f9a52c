"""The checksummed multi-mirror fetcher, against local fixtures only (file://, paths, 127.0.0.1)."""

from __future__ import annotations

import gzip
import hashlib
import importlib
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ood.data import FetchError, RemoteFile, fetch, registry
from ood.data.__main__ import main as cli_main

from fakes import write_fake_fashion_mnist

# `ood.data.fetch` the attribute is the function; the module is reached through sys.modules.
fetch_mod = importlib.import_module("ood.data.fetch")

# 300 KiB of half-compressible content: the .gz spans many 4 KiB test chunks too.
_RNG = random.Random(0)
PAYLOAD = b"".join(_RNG.randbytes(512) + bytes(512) for _ in range(300))
SHA = hashlib.sha256(PAYLOAD).hexdigest()
GZ = gzip.compress(PAYLOAD, mtime=0)


@pytest.fixture(autouse=True)
def _isolate(monkeypatch):
    # Small chunks so interruptions can land mid-file; no env mirrors; no back-off sleeps.
    monkeypatch.setattr(fetch_mod, "CHUNK_SIZE", 4096)
    monkeypatch.delenv(fetch_mod.MIRRORS_ENV, raising=False)
    monkeypatch.setattr(fetch_mod.time, "sleep", lambda s: None)


def _mirror(directory: Path, name: str, data: bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(data)
    return path


def _spec(*mirrors: str, gz: bool = True, sha: str = SHA) -> RemoteFile:
    return RemoteFile(name="blob", sha256=sha, mirrors=list(mirrors), gzip=gz, hint="try apt-get install x")


def _leftovers(dest_dir: Path) -> list[str]:
    return sorted(p.name for p in dest_dir.iterdir() if p.name != "blob")


class OpenRecorder:
    """Wraps ``_open_source`` to log (url, offset asked, start granted) and count bytes read."""

    def __init__(self, monkeypatch):
        self.calls: list[tuple[str, int, int]] = []
        self.bytes_read = 0
        self._orig = fetch_mod._open_source
        monkeypatch.setattr(fetch_mod, "_open_source", self)

    def __call__(self, url, offset, timeout):
        stream, start, total = self._orig(url, offset, timeout)
        self.calls.append((url, offset, start))
        recorder = self

        class Counting:
            def read(self, n=-1):
                block = stream.read(n)
                recorder.bytes_read += len(block)
                return block

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                stream.close()

            def close(self):
                stream.close()

        return Counting(), start, total


def _interrupt_after(monkeypatch, n_bytes: int) -> None:
    """Make the copy loop raise KeyboardInterrupt once ``n_bytes`` have been written."""
    orig = fetch_mod._copy_stream

    def copy(src, dst, update):
        class Limited:
            done = 0

            def read(self, n):
                if self.done >= n_bytes:
                    raise KeyboardInterrupt
                block = src.read(min(n, n_bytes - self.done))
                self.done += len(block)
                return block

        return orig(Limited(), dst, update)

    monkeypatch.setattr(fetch_mod, "_copy_stream", copy)


# ---------------------------------------------------------------------------------------------
# Local mirrors
# ---------------------------------------------------------------------------------------------


def test_file_url_gzip_success(tmp_path):
    src = _mirror(tmp_path / "m", "blob.gz", GZ)
    out = fetch(_spec(src.as_uri()), tmp_path / "dest", progress=False)
    assert out == tmp_path / "dest" / "blob"
    assert out.read_bytes() == PAYLOAD
    assert _leftovers(tmp_path / "dest") == []  # no .part, .src or temp file left behind


def test_plain_local_path_mirror(tmp_path):
    src = _mirror(tmp_path / "m", "blob", PAYLOAD)
    out = fetch(_spec(str(src), gz=False), tmp_path / "dest", progress=False)
    assert fetch_mod.sha256sum(out) == SHA


def test_gzip_spec_accepts_an_uncompressed_mirror(tmp_path):
    # A user's mirror directory may hold the already-uncompressed file: the checksum decides.
    src = _mirror(tmp_path / "m", "blob.gz", PAYLOAD)
    assert fetch(_spec(str(src)), tmp_path / "dest", progress=False).read_bytes() == PAYLOAD


def test_checksum_mismatch_falls_back_to_next_mirror(tmp_path, monkeypatch):
    bad = _mirror(tmp_path / "bad", "blob.gz", gzip.compress(b"not the right content"))
    good = _mirror(tmp_path / "good", "blob.gz", GZ)
    rec = OpenRecorder(monkeypatch)
    out = fetch(_spec(bad.as_uri(), good.as_uri()), tmp_path / "dest", progress=False)
    assert out.read_bytes() == PAYLOAD
    # A wrong checksum is permanent for that mirror: tried once, not retried.
    assert [url for url, _, _ in rec.calls] == [bad.as_uri(), good.as_uri()]
    assert _leftovers(tmp_path / "dest") == []


def test_recompressed_mirror_passes(tmp_path):
    # Debian re-compresses the .gz files: different archive bytes, same content, same checksum.
    src = _mirror(tmp_path / "m", "blob.gz", gzip.compress(PAYLOAD, compresslevel=1, mtime=123))
    assert gzip.compress(PAYLOAD, compresslevel=1, mtime=123) != GZ
    assert fetch(_spec(src.as_uri()), tmp_path / "dest", progress=False).read_bytes() == PAYLOAD


def test_all_mirrors_fail_lists_each_mirror_and_reason(tmp_path):
    bad = _mirror(tmp_path / "bad", "blob.gz", gzip.compress(b"wrong"))
    missing = tmp_path / "nowhere" / "blob.gz"
    refused = "http://127.0.0.1:9/blob.gz"  # discard port: connection refused
    with pytest.raises(FetchError) as info:
        fetch(_spec(str(missing), bad.as_uri(), refused), tmp_path / "dest", retries=0, timeout=5, progress=False)
    msg = str(info.value)
    assert f"{missing}: file not found" in msg
    wrong_sha = hashlib.sha256(b"wrong").hexdigest()
    assert f"{bad.as_uri()}: checksum mismatch: got {wrong_sha[:12]}…, expected {SHA[:12]}…" in msg
    assert f"{refused}: URLError" in msg
    # ... and tells the user what to do.
    assert str((tmp_path / "dest" / "blob").absolute()) in msg
    assert "OOD_MIRRORS" in msg and "try apt-get install x" in msg
    assert [url for url, _ in info.value.attempts] == [str(missing), bad.as_uri(), refused]
    assert isinstance(info.value, RuntimeError)
    assert not (tmp_path / "dest" / "blob").exists()


def test_corrupt_gzip_is_rejected(tmp_path):
    src = _mirror(tmp_path / "m", "blob.gz", GZ[: len(GZ) // 2])  # truncated archive
    with pytest.raises(FetchError, match="corrupt gzip data"):
        fetch(_spec(str(src)), tmp_path / "dest", retries=0, progress=False)
    assert _leftovers(tmp_path / "dest") == []


# ---------------------------------------------------------------------------------------------
# Interruptions: atomic install and resume
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_interrupted_download_leaves_only_part_and_resumes(tmp_path, monkeypatch, gz):
    data = GZ if gz else PAYLOAD
    src = _mirror(tmp_path / "m", "blob.gz" if gz else "blob", data)
    spec = _spec(src.as_uri(), gz=gz)
    dest_dir = tmp_path / "dest"
    cut = 3 * 4096 + 100

    with monkeypatch.context() as m:
        _interrupt_after(m, cut)
        with pytest.raises(KeyboardInterrupt):
            fetch(spec, dest_dir, progress=False)
    assert not (dest_dir / "blob").exists()  # never a half file under the final name
    assert (dest_dir / "blob.part").read_bytes() == data[:cut]
    assert _leftovers(dest_dir) == ["blob.part", "blob.part.src"]

    rec = OpenRecorder(monkeypatch)
    out = fetch(spec, dest_dir, progress=False)
    assert out.read_bytes() == PAYLOAD
    assert rec.calls == [(src.as_uri(), cut, cut)]  # asked for, and got, a resume at `cut`
    assert rec.bytes_read == len(data) - cut  # only the remaining bytes were read
    assert _leftovers(dest_dir) == []


def test_interrupt_while_decompressing_leaves_no_temp_file(tmp_path, monkeypatch):
    src = _mirror(tmp_path / "m", "blob.gz", GZ)
    dest_dir = tmp_path / "dest"

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(fetch_mod.shutil, "copyfileobj", boom)
        with pytest.raises(KeyboardInterrupt):
            fetch(_spec(str(src)), dest_dir, progress=False)
    assert _leftovers(dest_dir) == ["blob.part", "blob.part.src"]  # the complete raw download
    rec = OpenRecorder(monkeypatch)
    assert fetch(_spec(str(src)), dest_dir, progress=False).read_bytes() == PAYLOAD
    assert rec.bytes_read == 0  # nothing left to read: it only had to be decompressed
    assert _leftovers(dest_dir) == []


def test_partial_from_another_mirror_is_not_spliced(tmp_path, monkeypatch):
    # Two mirrors' .gz files may differ: bytes of one must never be resumed with the other's.
    good = _mirror(tmp_path / "good", "blob.gz", GZ)
    dest_dir = tmp_path / "dest"
    dest_dir.mkdir()
    (dest_dir / "blob.part").write_bytes(b"x" * 5000)
    (dest_dir / "blob.part.src").write_text("file:///some/other/mirror/blob.gz\n")
    rec = OpenRecorder(monkeypatch)
    assert fetch(_spec(good.as_uri()), dest_dir, progress=False).read_bytes() == PAYLOAD
    assert rec.calls == [(good.as_uri(), 0, 0)]


def test_bad_resumed_download_restarts_from_scratch(tmp_path, monkeypatch):
    # A corrupt partial from the same URL (e.g. the file changed upstream): the checksum fails,
    # the partial is dropped and the file is fetched again from byte 0 on the same mirror.
    src = _mirror(tmp_path / "m", "blob.gz", GZ)
    dest_dir = tmp_path / "dest"
    dest_dir.mkdir()
    (dest_dir / "blob.part").write_bytes(b"\x1f\x8bgarbage" + b"\0" * 100)
    (dest_dir / "blob.part.src").write_text(src.as_uri() + "\n")
    rec = OpenRecorder(monkeypatch)
    assert fetch(_spec(src.as_uri()), dest_dir, progress=False).read_bytes() == PAYLOAD
    assert [(off, start) for _, off, start in rec.calls] == [(109, 109), (0, 0)]


# ---------------------------------------------------------------------------------------------
# Precedence, caching, registry, CLI
# ---------------------------------------------------------------------------------------------


def test_env_mirrors_take_precedence(tmp_path, monkeypatch):
    spec_mirror = _mirror(tmp_path / "official", "blob.gz", GZ)
    env_dir = tmp_path / "envmirror"
    _mirror(env_dir, "blob.gz", GZ)
    monkeypatch.setenv("OOD_MIRRORS", f"  {tmp_path / 'empty'}\n{env_dir}/  ")
    spec = _spec(spec_mirror.as_uri())
    assert fetch_mod.candidate_urls(spec) == [
        f"{tmp_path / 'empty'}/blob.gz",
        f"{tmp_path / 'empty'}/blob",
        f"{env_dir}/blob.gz",
        f"{env_dir}/blob",
        spec_mirror.as_uri(),
    ]
    rec = OpenRecorder(monkeypatch)
    fetch(spec, tmp_path / "dest", progress=False)
    assert [url for url, _, _ in rec.calls] == [f"{env_dir}/blob.gz"]  # the empty dir was skipped


def test_verified_file_needs_no_io(tmp_path, monkeypatch):
    dest_dir = tmp_path / "dest"
    _mirror(dest_dir, "blob", PAYLOAD)

    def no_network(*args):
        raise AssertionError("a verified file must not be fetched again")

    monkeypatch.setattr(fetch_mod, "_open_source", no_network)
    assert fetch(_spec("http://example.invalid/blob.gz"), dest_dir) == dest_dir / "blob"


def test_corrupted_existing_file_is_replaced(tmp_path):
    src = _mirror(tmp_path / "m", "blob.gz", GZ)
    dest = _mirror(tmp_path / "dest", "blob", PAYLOAD[:-1] + b"?")
    fetch(_spec(str(src)), tmp_path / "dest", progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_remote_file_validates_fields():
    with pytest.raises(ValueError, match="sha256"):
        RemoteFile(name="x", sha256="abc", mirrors=[])
    with pytest.raises(ValueError, match="name"):
        RemoteFile(name="a/b", sha256=SHA, mirrors=[])


def test_registry_fashion_mnist_entry():
    spec = registry.DATASETS["fashion-mnist"]
    assert [f.name for f in spec.files] == [
        "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
    ]  # fmt: skip
    for f in spec.files:
        assert f.gzip and f.hint and "dataset-fashion-mnist" in f.hint
        assert f.mirrors[0] == f"/usr/share/datasets/fashion-mnist/{f.name}.gz"  # offline first
        assert len(f.mirrors) == 3
    assert registry.required_datasets() == ["fashion-mnist"]
    with pytest.raises(ValueError, match="fashion-mnist"):
        registry.download("nope")


def _fake_registry(monkeypatch, mirror_dir: Path, checksums: dict[str, str]) -> None:
    files = [
        RemoteFile(name=n, sha256=sha, gzip=True, mirrors=[str(mirror_dir / f"{n}.gz")], hint="HINT")
        for n, sha in checksums.items()
    ]
    monkeypatch.setitem(registry.DATASETS, "fashion-mnist", registry.DatasetSpec("fashion-mnist", files))


def test_download_and_cli(tmp_path, monkeypatch, capsys):
    checksums = write_fake_fashion_mnist(tmp_path / "mirror", n_train=50, n_test=20)
    _fake_registry(monkeypatch, tmp_path / "mirror", checksums)
    root = tmp_path / "data"
    assert cli_main(["download", "--root", str(root), "--no-progress"]) == 0
    for name, sha in checksums.items():
        assert fetch_mod.sha256sum(root / "fashion-mnist" / name) == sha
    assert "fashion-mnist: ok" in capsys.readouterr().out


def test_cli_failure_exits_1_with_message(tmp_path, monkeypatch, capsys):
    checksums = write_fake_fashion_mnist(tmp_path / "mirror", n_train=50, n_test=20)
    _fake_registry(monkeypatch, tmp_path / "empty", checksums)
    code = cli_main(["download", "fashion-mnist", "--root", str(tmp_path / "data"), "--retries", "0"])
    err = capsys.readouterr().err
    assert code == 1
    assert "file not found" in err and "HINT" in err and "Traceback" not in err
    with pytest.raises(SystemExit):  # argparse: unknown dataset name
        cli_main(["download", "nope"])


# ---------------------------------------------------------------------------------------------
# HTTP, with a real server on 127.0.0.1 that honours Range requests
# ---------------------------------------------------------------------------------------------


class _Server:
    """Serves ``files`` (path -> bytes); logs Range headers; can cut or ignore ranges."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.ranges: list[str | None] = []
        self.cut_first_after: int | None = None  # first response: send this many bytes, hang up
        self.ignore_range = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                outer.ranges.append(rng)
                data = outer.files.get(self.path)
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                start = 0
                if rng and not outer.ignore_range:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.cut_first_after is not None:
                    body, outer.cut_first_after = body[: outer.cut_first_after], None
                    self.close_connection = True  # hang up mid-body: the client sees a short read
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server():
    srv = _Server()
    srv.files["/data/blob.gz"] = GZ
    yield srv
    srv.close()


def test_http_download(server, tmp_path):
    out = fetch(_spec(f"{server.url}/data/blob.gz"), tmp_path / "dest", timeout=5, progress=False)
    assert out.read_bytes() == PAYLOAD
    assert server.ranges == [None]


def test_http_dropped_connection_is_resumed_with_range(server, tmp_path, monkeypatch):
    server.cut_first_after = 10_000
    rec = OpenRecorder(monkeypatch)
    out = fetch(_spec(f"{server.url}/data/blob.gz"), tmp_path / "dest", timeout=5, progress=False)
    assert out.read_bytes() == PAYLOAD
    assert server.ranges == [None, "bytes=10000-"]  # second attempt asked for the rest only
    assert rec.bytes_read == len(GZ)  # 10000 + the remainder: nothing read twice
    assert _leftovers(tmp_path / "dest") == []


def test_http_server_ignoring_range_restarts_from_zero(server, tmp_path):
    server.cut_first_after = 10_000
    server.ignore_range = True
    out = fetch(_spec(f"{server.url}/data/blob.gz"), tmp_path / "dest", timeout=5, progress=False)
    assert out.read_bytes() == PAYLOAD
    assert server.ranges == [None, "bytes=10000-"]  # asked, got 200, rewrote from byte 0


def test_http_complete_partial_gets_416_and_installs(server, tmp_path):
    url = f"{server.url}/data/blob.gz"
    dest_dir = tmp_path / "dest"
    _mirror(dest_dir, "blob.part", GZ)  # interrupted right after the last byte
    (dest_dir / "blob.part.src").write_text(url + "\n")
    assert fetch(_spec(url), dest_dir, timeout=5, progress=False).read_bytes() == PAYLOAD
    assert server.ranges == [f"bytes={len(GZ)}-"]


def test_http_404_then_env_and_spec_mirrors(server, tmp_path, monkeypatch):
    monkeypatch.setenv("OOD_MIRRORS", f"{server.url}/missing")
    with pytest.raises(FetchError) as info:
        fetch(_spec(f"{server.url}/also-missing/blob.gz"), tmp_path / "dest", timeout=5, progress=False)
    msg = str(info.value)
    assert f"{server.url}/missing/blob.gz: HTTP 404" in msg
    assert f"{server.url}/also-missing/blob.gz: HTTP 404" in msg
    # 404 is permanent: one request per URL, no retries.
    assert len(server.ranges) == 3  # missing/blob.gz, missing/blob, also-missing/blob.gz
