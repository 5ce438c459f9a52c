"""Real dense OOD datasets (paper profile) against fixture archives in the official formats.

Everything runs offline: the fixtures are served through the *real* registry specs (same file
names and mirrors) with ``OOD_MIRRORS`` pointing at a local folder and the fixtures' checksums
patched in. Expected masks are written out by hand from the fixture recipe
(:mod:`fakes_dense`, tests/fakes_dense.py): box of frame ``i`` = rows 12-19, columns 8+8i .. 23+8i.
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import re
import shutil
import stat
import tarfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from ood.data import dense, registry
from ood.data.__main__ import main as cli_main
from ood.data.fetch import FetchError, RemoteFile, UnpinnedChecksumWarning, fetch, tofu_lock_path

import fakes_dense as fd

fetch_mod = importlib.import_module("ood.data.fetch")

EVAL_SETS = [
    "smiyc-roadanomaly21", "smiyc-roadobstacle21", "fishyscapes-lostandfound", "roadanomaly", "streethazards-test",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _isolate(monkeypatch):
    monkeypatch.delenv(fetch_mod.MIRRORS_ENV, raising=False)
    monkeypatch.setattr(fetch_mod.time, "sleep", lambda s: None)


def _serve_fixture(name: str, tmp_path: Path, monkeypatch) -> dict:
    """Write the fixture of ``name`` into a mirror folder and point the real spec at it."""
    mirror = tmp_path / "mirror" / name
    checksums = fd.write_fake_dense(name, mirror)
    monkeypatch.setitem(registry.DATASETS, name, fd.pinned_spec(name, checksums))
    monkeypatch.setenv(fetch_mod.MIRRORS_ENV, mirror.as_uri())
    fd.no_network(monkeypatch)
    return checksums


def _expected_mask(name: str, i: int) -> np.ndarray:
    mask = np.zeros((32, 64), dtype=np.int64)
    if name.startswith("smiyc") or name.startswith("fishyscapes"):
        mask[0:4, :] = 255  # void band of the fixture, kept as void
    mask[12:20, 8 + 8 * i : 24 + 8 * i] = 1  # the anomaly box: 8 x 16 = 128 pixels
    return mask


# ---------------------------------------------------------------------------------------------
# Label unification on hand-made arrays
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("unify", [dense.unify_smiyc, dense.unify_fishyscapes])
def test_unify_zero_one_void(unify):
    raw = np.array([[0, 1, 255], [2, 7, 0]], dtype=np.uint8)
    assert unify(raw).tolist() == [[0, 1, 255], [255, 255, 0]]
    assert unify(raw.astype(np.int32)).dtype == np.uint8


def test_unify_road_anomaly_is_label_ge_2_without_void():
    raw = np.array([[0, 1, 2], [3, 255, 0]], dtype=np.uint8)
    assert dense.unify_road_anomaly(raw).tolist() == [[0, 0, 1], [1, 1, 0]]


def test_unify_streethazards_anomaly_14_void_0():
    raw = np.array([[0, 1, 13], [14, 2, 14]], dtype=np.uint8)  # 1 = "unlabeled" counts as inlier
    assert dense.unify_streethazards(raw).tolist() == [[255, 0, 0], [1, 0, 1]]


def test_unify_rejects_non_label_arrays():
    with pytest.raises(ValueError, match="2-D integer"):
        dense.unify_smiyc(np.zeros((2, 2, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="2-D integer"):
        dense.unify_road_anomaly(np.zeros((2, 2), dtype=np.float32))


def test_cityscapes_train_ids():
    expected = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
                24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}  # fmt: skip
    table = dense.CITYSCAPES_TRAIN_IDS
    for label_id in range(256):
        assert table[label_id] == expected.get(label_id, 255), label_id
    assert len(dense.CITYSCAPES_CLASSES) == 19
    assert dense.CITYSCAPES_CLASSES[13] == "car" and dense.CITYSCAPES_CLASSES[18] == "bicycle"
    raw = np.array([[0, 7, 9], [26, 33, 34]], dtype=np.uint8)  # 9 parking, 34 unknown: ignore
    assert dense.cityscapes_train_ids(raw).tolist() == [[255, 0, 255], [13, 18, 255]]


# ---------------------------------------------------------------------------------------------
# The real specs
# ---------------------------------------------------------------------------------------------


def test_real_specs_are_pinned_and_named_like_the_fixtures(tmp_path):
    for name in EVAL_SETS:
        spec = registry.DATASETS[name]
        assert spec.manual_url is None
        for f in spec.files:
            assert f.pinned, f"{name}/{f.name} has no published checksum"
            assert f.mirrors and all(m.startswith(("https://", "http://")) for m in f.mirrors)
            assert {fetch_mod._basename(m) for m in f.mirrors} == {f.name}  # what OOD_MIRRORS looks for
        written = fd.write_fake_dense(name, tmp_path / name)
        assert sorted(written) == sorted(f.name for f in spec.files)
    assert registry.DATASETS["smiyc-roadanomaly21"].files[0].md5 == "231bf79ed58924bcd33d9cbe22e61076"
    assert registry.DATASETS["fishyscapes-lostandfound"].files[1].size == 5_802_953_400
    city = registry.DATASETS["cityscapes"]
    assert city.manual_url == "https://www.cityscapes-dataset.com/downloads/"
    assert [f.name for f in city.files] == ["leftImg8bit_trainvaltest.zip", "gtFine_trainvaltest.zip"]
    assert all(not f.pinned and not f.mirrors for f in city.files)
    assert registry.required_datasets() == ["fashion-mnist"]  # the default profile fetches nothing new


# ---------------------------------------------------------------------------------------------
# Fetch -> verify -> unpack -> load, per set
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", EVAL_SETS)
def test_fetch_extract_load(name, tmp_path, monkeypatch):
    checksums = _serve_fixture(name, tmp_path, monkeypatch)
    root = tmp_path / "data"
    ds = dense.load_dense_set(name, root, download=True, progress=False)
    for archive, c in checksums.items():  # fetched through the spec, verified, kept as downloaded
        assert fetch_mod.sha256sum(root / name / archive) == c["sha256"]

    assert len(ds) == 3
    for i in range(3):
        image, mask = ds[i]
        assert image.dtype == torch.float32 and tuple(image.shape) == (3, 32, 64)
        assert 0.0 <= image.min().item() and image.max().item() <= 1.0
        assert mask.dtype == torch.int64 and tuple(mask.shape) == (32, 64)
        expected = _expected_mask(name, i)
        assert np.array_equal(mask.numpy(), expected), f"frame {i}"
        assert int((mask == 1).sum()) == 128
        rgb = torch.from_numpy(fd.frame_rgb(i)).permute(2, 0, 1).float() / 255
        if name in ("fishyscapes-lostandfound", "streethazards-test"):  # PNG frames: lossless
            assert torch.equal(image, rgb)
        else:  # JPG / WEBP frames
            assert (image - rgb).abs().mean().item() < 0.03

    # Second load: nothing is unpacked again (markers), and the archives may even be deleted.
    monkeypatch.setattr(dense, "extract_archive", lambda *a, **k: pytest.fail("unpacked twice"))
    for archive in checksums:
        (root / name / archive).unlink()
    again = dense.load_dense_set(name, root)
    assert again.frame_ids == ds.frame_ids and torch.equal(again[2][1], ds[2][1])


def test_frame_ids_follow_the_official_names(tmp_path, monkeypatch):
    ids = {}
    for name in EVAL_SETS:
        _serve_fixture(name, tmp_path, monkeypatch)
        ids[name] = dense.load_dense_set(name, tmp_path / "data", download=True, progress=False).frame_ids
    assert ids["smiyc-roadanomaly21"] == ["validation0000", "validation0001", "validation0002"]
    assert ids["smiyc-roadobstacle21"] == ["validation_1", "validation_2", "validation_3"]  # no test frames
    assert ids["fishyscapes-lostandfound"][1] == "0001_01_Hanns_Klemm_Str_45_000000_000270"  # a train-split frame
    assert ids["roadanomaly"][0] == "animals01_Guiguinto_railway_station_Calves"
    assert ids["streethazards-test"] == ["t5/1", "t5/2", "t6/3"]


def test_fishyscapes_unpacks_only_the_labelled_frames(tmp_path, monkeypatch):
    _serve_fixture("fishyscapes-lostandfound", tmp_path, monkeypatch)
    dense.load_dense_set("fishyscapes-lostandfound", tmp_path / "data", download=True, progress=False)
    frames = sorted(p.name for p in (tmp_path / "data/fishyscapes-lostandfound/extracted/leftImg8bit").rglob("*.png"))
    assert frames == sorted(f"{laf_id}_leftImg8bit.png" for laf_id, _ in fd.LAF_FRAMES)  # 2 others skipped


def test_missing_archive_without_download_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"python -m ood\.data download roadanomaly"):
        dense.load_dense_set("roadanomaly", tmp_path / "data")
    with pytest.raises(ValueError, match="load_cityscapes"):
        dense.load_dense_set("cityscapes", tmp_path / "data")


def test_cli_downloads_a_dense_set(tmp_path, monkeypatch, capsys):
    checksums = _serve_fixture("streethazards-test", tmp_path, monkeypatch)
    root = tmp_path / "data"
    assert cli_main(["download", "streethazards-test", "--root", str(root), "--no-progress"]) == 0
    assert "streethazards-test: ok" in capsys.readouterr().out
    got = fetch_mod.sha256sum(root / "streethazards-test/streethazards_test.tar")
    assert got == checksums["streethazards_test.tar"]["sha256"]


# ---------------------------------------------------------------------------------------------
# Checksums: md5, sha256 + md5, trust on first use
# ---------------------------------------------------------------------------------------------


def test_md5_mismatch_is_detected_and_nothing_is_unpacked(tmp_path, monkeypatch):
    _serve_fixture("roadanomaly", tmp_path, monkeypatch)
    spec = registry.DATASETS["roadanomaly"]
    bad = dataclasses.replace(spec, files=[dataclasses.replace(spec.files[0], md5="0" * 32)])
    monkeypatch.setitem(registry.DATASETS, "roadanomaly", bad)
    with pytest.raises(FetchError, match="md5 checksum mismatch: got [0-9a-f]{12}…, expected 000000000000…"):
        dense.load_dense_set("roadanomaly", tmp_path / "data", download=True, progress=False)
    assert not (tmp_path / "data/roadanomaly/RoadAnomaly_jpg.zip").exists()
    assert not (tmp_path / "data/roadanomaly/extracted").exists()


def test_every_published_checksum_must_match(tmp_path):
    src = tmp_path / "m" / "blob"
    src.parent.mkdir()
    src.write_bytes(b"payload" * 1000)
    digests = fetch_mod.file_digests(src, ("sha256", "md5"))
    good = RemoteFile("blob", sha256=digests["sha256"], md5=digests["md5"], mirrors=[src.as_uri()])
    assert fetch(good, tmp_path / "ok", progress=False).read_bytes() == src.read_bytes()
    wrong_md5 = RemoteFile("blob", sha256=digests["sha256"], md5="f" * 32, mirrors=[src.as_uri()])
    with pytest.raises(FetchError, match="md5 checksum mismatch"):
        fetch(wrong_md5, tmp_path / "bad", retries=0, progress=False)
    wrong_sha = RemoteFile("blob", sha256="0" * 64, md5=digests["md5"], mirrors=[src.as_uri()])
    with pytest.raises(FetchError, match="checksum mismatch: got"):
        fetch(wrong_sha, tmp_path / "bad", retries=0, progress=False)
    # A good file already in place is accepted without any I/O on the mirrors.
    offline = RemoteFile("blob", md5=digests["md5"], mirrors=["http://example.invalid/blob"])
    assert fetch(offline, tmp_path / "ok") == tmp_path / "ok/blob"
    with pytest.raises(ValueError, match="md5 must be 32 hex digits"):
        RemoteFile("blob", md5="abc")


def test_trust_on_first_use_records_then_verifies(tmp_path):
    src = tmp_path / "m" / "blob"
    src.parent.mkdir()
    src.write_bytes(b"first version")
    spec = RemoteFile("blob", mirrors=[src.as_uri()])  # nothing published
    with pytest.warns(UnpinnedChecksumWarning, match="trusting this copy on first use"):
        dest = fetch(spec, tmp_path / "d", progress=False)
    sha = fetch_mod.sha256sum(dest)
    lock = tofu_lock_path(dest)
    assert lock.read_text() == f"{sha}  blob\n"  # `sha256sum -c` format
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # verified against the lock: no second warning
        assert fetch(spec, tmp_path / "d", progress=False) == dest

    # Upstream changes (or the local copy rots): the recorded checksum rejects it.
    src.write_bytes(b"second version")
    dest.unlink()
    with pytest.raises(FetchError, match=r"checksum mismatch: .*\(recorded on first use in .*blob\.sha256\)"):
        fetch(spec, tmp_path / "d", retries=0, progress=False)
    assert not dest.exists() and lock.read_text() == f"{sha}  blob\n"


# ---------------------------------------------------------------------------------------------
# Cityscapes: login-gated
# ---------------------------------------------------------------------------------------------


def test_cityscapes_missing_names_folder_and_url(tmp_path, monkeypatch, capsys):
    fd.no_network(monkeypatch)
    root = tmp_path / "data"
    with pytest.raises(registry.ManualDownloadRequired) as info:
        dense.load_cityscapes(root)
    msg = str(info.value)
    folder = (root / "cityscapes").absolute()
    assert "https://www.cityscapes-dataset.com/downloads/" in msg
    assert f"{folder}/" in msg and str(folder / "leftImg8bit_trainvaltest.zip") in msg
    assert "gtFine_trainvaltest.zip" in msg and "do not unpack" in msg
    assert isinstance(info.value, FetchError)  # the CLI reports it like any failed download

    assert cli_main(["download", "cityscapes", "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert "https://www.cityscapes-dataset.com/downloads/" in err and str(folder) in err
    assert "Traceback" not in err
    assert not (root / "cityscapes").exists()  # nothing was fetched or created


def test_cityscapes_from_manually_placed_archives(tmp_path, monkeypatch):
    fd.no_network(monkeypatch)
    root = tmp_path / "data"
    fd.write_fake_cityscapes(root / "cityscapes")  # what the user puts there, as downloaded
    with pytest.warns(UnpinnedChecksumWarning):
        train = dense.load_cityscapes(root, "train", progress=False)
    val = dense.load_cityscapes(root, "val")
    assert len(train) == 2 and len(val) == 1 and val.frame_ids == ["frankfurt_000000_000019"]
    image, target = train[1]
    assert image.dtype == torch.float32 and tuple(image.shape) == (3, 32, 64)
    assert torch.equal(image, torch.from_numpy(fd.frame_rgb(1)).permute(2, 0, 1).float() / 255)
    expected = np.zeros((32, 64), dtype=np.int64)
    expected[0:8], expected[8:16], expected[16:24], expected[24:32] = 0, 13, 255, 18  # road car void bicycle
    expected[:, 0] = 255  # parking is not a training class
    assert target.dtype == torch.int64 and np.array_equal(target.numpy(), expected)
    assert train.ignore_index == 255 and train.classes[0] == "road"
    for archive in ("leftImg8bit_trainvaltest.zip", "gtFine_trainvaltest.zip"):
        assert tofu_lock_path(root / "cityscapes" / archive).is_file()
    extracted = root / "cityscapes" / "extracted"
    assert not (extracted / "leftImg8bit" / "test").exists()  # only train/val are unpacked
    assert not list(extracted.rglob("*_polygons.json")) and not list(extracted.rglob("*_color.png"))
    with pytest.raises(ValueError, match="split"):
        dense.load_cityscapes(root, "test")


def test_cityscapes_archive_changed_after_first_use_is_rejected(tmp_path, monkeypatch):
    fd.no_network(monkeypatch)
    root = tmp_path / "data"
    fd.write_fake_cityscapes(root / "cityscapes")
    with pytest.warns(UnpinnedChecksumWarning):
        registry.download("cityscapes", root, progress=False)
    fd.write_fake_cityscapes(root / "cityscapes", n_train=3)  # a different file under the same name
    with pytest.raises(FetchError) as info:
        dense.load_cityscapes(root)
    msg = str(info.value)
    assert re.search(r"existing file .*leftImg8bit_trainvaltest\.zip was rejected: checksum mismatch", msg)
    assert "recorded on first use in" in msg and "https://www.cityscapes-dataset.com/downloads/" in msg
    assert not (root / "cityscapes" / "extracted").exists()


# ---------------------------------------------------------------------------------------------
# Safe extraction
# ---------------------------------------------------------------------------------------------


def _zip(path: Path, names: list[str], symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name in names:
            zf.writestr(name, b"x")
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "../../etc/passwd")
    return path


def _tar(path: Path, kind: str) -> Path:
    with tarfile.open(path, "w") as tf:
        ok = tarfile.TarInfo("good.txt")
        ok.size = 1
        tf.addfile(ok, io.BytesIO(b"x"))
        bad = tarfile.TarInfo("evil")
        if kind == "symlink":
            bad.type, bad.linkname = tarfile.SYMTYPE, "/etc/passwd"
        elif kind == "hardlink":
            bad.type, bad.linkname = tarfile.LNKTYPE, "good.txt"
        elif kind == "device":
            bad.type = tarfile.CHRTYPE
        elif kind == "dotdot":
            bad.name, bad.size = "../evil", 1
        tf.addfile(bad, io.BytesIO(b"x") if kind == "dotdot" else None)
    return path


@pytest.mark.parametrize(
    "member", ["../evil.txt", "/abs/evil.txt", "a/../../evil.txt", "C:/evil.txt", "..\\evil.txt", "ok/..\\..\\evil.txt"]
)
def test_unsafe_zip_member_is_rejected_before_writing(tmp_path, member):
    archive = _zip(tmp_path / "a.zip", ["good.txt", member])
    dest = tmp_path / "out" / "x"
    with pytest.raises(dense.UnsafeArchiveError, match="unsafe archive member"):
        dense.extract_archive(archive, dest)
    assert not dest.exists() and not (tmp_path / "evil.txt").exists() and not (tmp_path / "out/evil.txt").exists()


def test_zip_symlink_is_rejected(tmp_path):
    archive = _zip(tmp_path / "a.zip", ["good.txt"], symlink="link")
    with pytest.raises(dense.UnsafeArchiveError, match="not a regular file"):
        dense.extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "device", "dotdot"])
def test_unsafe_tar_member_is_rejected(tmp_path, kind):
    archive = _tar(tmp_path / "a.tar", kind)
    with pytest.raises(dense.UnsafeArchiveError, match="unsafe archive member"):
        dense.extract_archive(archive, tmp_path / "out" / "x")
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil").exists()


def test_unsafe_member_in_a_registry_archive_fails_the_load(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    archive = _zip(mirror / "RoadAnomaly_jpg.zip", ["RoadAnomaly_jpg/frame_list.json", "../../escape.txt"])
    digests = fetch_mod.file_digests(archive, ("md5",))
    spec = registry.DATASETS["roadanomaly"]
    patched = dataclasses.replace(spec, files=[dataclasses.replace(spec.files[0], md5=digests["md5"])])
    monkeypatch.setitem(registry.DATASETS, "roadanomaly", patched)
    monkeypatch.setenv(fetch_mod.MIRRORS_ENV, str(mirror))
    with pytest.raises(dense.UnsafeArchiveError):
        dense.load_dense_set("roadanomaly", tmp_path / "data", download=True, progress=False)
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "data/escape.txt").exists()
    assert not (tmp_path / "data/roadanomaly/extracted").exists()


def test_interrupted_extraction_leaves_nothing_half_written(tmp_path, monkeypatch):
    archive = _zip(tmp_path / "a.zip", ["d/one.txt", "d/two.txt"])
    calls = []

    def boom(src, dst, length=0):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        dst.write(src.read())

    with monkeypatch.context() as m:
        m.setattr(dense.shutil, "copyfileobj", boom)
        with pytest.raises(KeyboardInterrupt):
            dense.extract_archive(archive, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip"]  # no dest, no temp folder
    assert dense.extract_archive(archive, tmp_path / "out", select=lambda p: p.endswith("two.txt")) == 1
    assert [p.name for p in (tmp_path / "out").rglob("*.txt")] == ["two.txt"]


def test_label_and_image_size_mismatch_is_reported(tmp_path, monkeypatch):
    _serve_fixture("roadanomaly", tmp_path, monkeypatch)
    ds = dense.load_dense_set("roadanomaly", tmp_path / "data", download=True, progress=False)
    from PIL import Image

    Image.fromarray(np.zeros((10, 10), dtype=np.uint8)).save(ds.labels[0])
    with pytest.raises(ValueError, match="differ in size"):
        ds[0]
    shutil.rmtree(tmp_path / "data")
