"""Image OOD datasets (paper profile) against fixture archives in the official formats.

Everything runs offline: each fixture (tests/fakes_images.py) is served through the *real*
registry spec (same file names and mirrors) with ``OOD_MIRRORS`` pointing at a local folder and
the fixture's checksums patched in where a checksum is published; sets without one go through
trust on first use, as they would for real. Expected labels and pixels come from the fixture
recipe (:data:`fakes_images.EXPECTED`).
"""

from __future__ import annotations

import importlib
import pickle
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from ood.data import images, registry
from ood.data.__main__ import main as cli_main
from ood.data.fetch import FetchError, UnpinnedChecksumWarning, tofu_lock_path

import fakes_dense as fd
import fakes_images as fi

fetch_mod = importlib.import_module("ood.data.fetch")

AUTOMATIC = [name for name in images.IMAGE_SETS if registry.DATASETS[name].manual_url is None]
IMAGE_NAMES = [spec.name for spec in registry.IMAGE_DATASETS]
#: Sets with no published checksum (trust on first use).
UNPINNED = {"isun", "inaturalist", "openimage-o", "ssb-hard", "species-sub", "openood-imglist", "scood"}


@pytest.fixture(autouse=True)
def _isolate(monkeypatch):
    monkeypatch.delenv(fetch_mod.MIRRORS_ENV, raising=False)
    monkeypatch.setattr(fetch_mod.time, "sleep", lambda s: None)
    fd.no_network(monkeypatch)


def _serve(name: str, tmp_path: Path, monkeypatch) -> dict:
    """Write the fixture of ``name`` into a mirror folder and point the real spec at it."""
    mirror = tmp_path / "mirror" / name
    checksums = fi.write_fake_images(name, mirror)
    monkeypatch.setitem(registry.DATASETS, name, fd.pinned_spec(name, checksums))
    monkeypatch.setenv(fetch_mod.MIRRORS_ENV, mirror.as_uri())
    return checksums


def _load(name: str, root: Path, **kwargs) -> images.ImageDataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore" if name in UNPINNED else "error", UnpinnedChecksumWarning)
        return images.load_image_set(name, root, download=True, progress=False, **kwargs)


def _check(ds: images.ImageDataset, expected: list[fi.Sample]) -> None:
    assert len(ds) == len(expected)
    for k, sample in enumerate(expected):
        image, label = ds[k]
        assert image.dtype == torch.float32 and tuple(image.shape) == (1 if sample.grey else 3, sample.h, sample.w)
        assert 0.0 <= image.min().item() and image.max().item() <= 1.0
        assert label.dtype == torch.int64 and label.ndim == 0 and label.item() == sample.label, k
        want = torch.from_numpy(sample.array()).float() / 255
        if sample.exact:
            assert torch.equal(image, want), k
        else:  # JPEG
            assert (image - want).abs().mean().item() < 0.03, k


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------


def test_the_table_names_real_files_and_checksums(tmp_path):
    assert set(IMAGE_NAMES) <= set(registry.DATASETS)
    for spec in registry.IMAGE_DATASETS:
        assert spec.description
        written = fi.write_fake_images(spec.name, tmp_path / spec.name)
        assert sorted(written) == sorted(f.name for f in spec.files), spec.name  # fixtures use the real names
        for f in spec.files:
            assert bool(f.pinned) == (spec.name not in UNPINNED), f.name
            if spec.manual_url:
                assert not f.mirrors and f.hint
                continue
            assert f.mirrors and all(m.startswith(("https://", "http://")) for m in f.mirrors)
            if "drive.usercontent.google.com" in f.mirrors[0]:
                assert "gdown" in f.hint  # the fallback when Drive serves a page
            else:  # OOD_MIRRORS looks for these names
                assert {fetch_mod._basename(m) for m in f.mirrors} == {f.name}
    md5 = {f.name: f.md5 for spec in registry.IMAGE_DATASETS for f in spec.files}
    assert md5["cifar-10-python.tar.gz"] == "c58f30108f718f92721af3b95e74349a"  # torchvision cifar.py
    assert md5["test_32x32.mat"] == "eb5a983be6a315427106f1b164d9cef3"  # torchvision svhn.py
    assert md5["t10k-images-idx3-ubyte.gz"] == "9fb629c4189551a2d022fa330f9573f3"  # torchvision mnist.py
    assert md5["val_256.tar"] == "e27b17d8d44f4af9a78502beb927f808"  # torchvision places365.py
    assert md5["ILSVRC2012_img_val.tar"] == "29b22e2961454d5413ddabcf34fc5622"  # torchvision imagenet.py
    assert registry.DATASETS["imagenet-val"].manual_url == "https://image-net.org/download-images.php"
    assert registry.required_datasets() == ["fashion-mnist"]  # the default profile fetches nothing new


def test_openood_v15_grouping_names_loadable_sets():
    assert images.OPENOOD_V15["cifar10"] == {"near": ("cifar100", "tiny-imagenet"),
                                             "far": ("mnist", "svhn", "dtd", "places365")}
    assert images.OPENOOD_V15["cifar100"]["near"] == ("cifar10", "tiny-imagenet")
    assert images.OPENOOD_V15["imagenet"] == {"near": ("ssb-hard", "ninco"),
                                              "far": ("inaturalist", "dtd", "openimage-o")}
    for groups in images.OPENOOD_V15.values():
        for name in groups["near"] + groups["far"]:
            assert name in images.IMAGE_SETS and name in registry.DATASETS


def test_the_table_does_not_import_torch():
    """The table is in the registry so that `python -m ood.data download` stays torch-free; the
    loaders come with `ood.data.load_image_set` (lazily)."""
    code = "import sys, ood.data.__main__; assert 'cifar10' in ood.data.DATASETS; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    import ood.data

    assert ood.data.load_image_set is images.load_image_set and ood.data.OPENOOD_V15 is images.OPENOOD_V15


def test_cli_lists_the_image_sets(capsys):
    assert cli_main(["list"]) == 0
    out = capsys.readouterr().out
    for name in IMAGE_NAMES:
        assert re.search(rf"^dataset\s+{re.escape(name)}\s", out, re.M), name


# ---------------------------------------------------------------------------------------------
# Fetch -> verify -> unpack -> load, per set and split
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", AUTOMATIC)
def test_fetch_extract_load(name, tmp_path, monkeypatch):
    checksums = _serve(name, tmp_path, monkeypatch)
    root = tmp_path / "data"
    for split, expected in fi.EXPECTED[name].items():
        ds = _load(name, root, split=split)
        _check(ds, expected)
        assert ds.classes == fi.CLASSES.get(name, []), split
    for file, c in checksums.items():  # fetched through the spec, verified, kept as downloaded
        assert fetch_mod.sha256sum(root / name / file) == c["sha256"]
        assert tofu_lock_path(root / name / file).is_file() == (name in UNPINNED)
    assert images.load_image_set(name, root).name == f"{name}-{images.IMAGE_SETS[name].splits[0]}"


def test_only_what_is_loaded_is_unpacked(tmp_path, monkeypatch):
    root = tmp_path / "data"
    for name in ("tiny-imagenet", "places365", "ninco", "dtd"):
        _serve(name, tmp_path, monkeypatch)
        _load(name, root)
    files = {name: sorted(p.relative_to(root / name / "extracted").as_posix()
                          for p in (root / name / "extracted").rglob("*") if p.is_file() and not p.name.startswith("."))
             for name in ("tiny-imagenet", "places365", "ninco", "dtd")}
    assert not any("/train/" in f or "/test/" in f for f in files["tiny-imagenet"])
    assert "tiny-imagenet-200/wnids.txt" in files["tiny-imagenet"]
    assert "places365_train_standard.txt" not in files["places365"] and "categories_places365.txt" in files["places365"]
    assert all(f.startswith("NINCO/NINCO_OOD_classes/") for f in files["ninco"])
    assert all(f.startswith("dtd/images/") for f in files["dtd"])


def test_second_load_unpacks_and_hashes_nothing(tmp_path, monkeypatch):
    root = tmp_path / "data"
    for name in ("cifar10", "svhn"):
        _serve(name, tmp_path, monkeypatch)
        _load(name, root)
    monkeypatch.setattr(images, "extract_archive", lambda *a, **k: pytest.fail("unpacked twice"))
    monkeypatch.setattr(fetch_mod, "file_digests", lambda *a, **k: pytest.fail("hashed twice"))
    (root / "cifar10" / "cifar-10-python.tar.gz").unlink()  # archives may go once unpacked
    assert len(images.load_image_set("cifar10", root)) == 3
    assert len(images.load_image_set("svhn", root)) == 3
    (root / "svhn" / "test_32x32.mat").unlink()  # a single file is read in place: it must stay
    monkeypatch.undo()
    with pytest.raises(FileNotFoundError, match=r"python -m ood\.data download svhn"):
        images.load_image_set("svhn", root)


def test_transform_hook(tmp_path, monkeypatch):
    _serve("mnist", tmp_path, monkeypatch)
    ds = _load("mnist", tmp_path / "data", transform=lambda x: x.expand(3, -1, -1)[:, :16, :16])
    image, label = ds[0]
    assert tuple(image.shape) == (3, 16, 16) and label.item() == 7


@pytest.mark.parametrize("name", ["mnist", "dtd"])
def test_cli_downloads_and_unpacks_an_image_set(name, tmp_path, monkeypatch, capsys):
    """`python -m ood.data download` leaves nothing to unpack: data/ is every stage's DVC dependency,
    so a stage that unpacked would change it after `dvc add data`."""
    checksums = _serve(name, tmp_path, monkeypatch)
    root = tmp_path / "data"
    assert cli_main(["download", name, "--root", str(root), "--no-progress"]) == 0
    assert f"{name}: ok" in capsys.readouterr().out
    files = lambda: sorted(p.relative_to(root) for p in root.rglob("*"))  # noqa: E731
    before = files()
    assert set(checksums) <= {p.name for p in before}
    images.load_image_set(name, root)  # as a stage reads it
    assert files() == before


def test_bad_names_and_splits(tmp_path):
    with pytest.raises(ValueError, match="unknown image set 'cifar11'"):
        images.load_image_set("cifar11", tmp_path)
    with pytest.raises(ValueError, match="unknown split 'val' of cifar10; known: test, train"):
        images.load_image_set("cifar10", tmp_path, split="val")
    with pytest.raises(FileNotFoundError, match=r"python -m ood\.data download dtd"):
        images.load_image_set("dtd", tmp_path)


# ---------------------------------------------------------------------------------------------
# Checksums and broken downloads
# ---------------------------------------------------------------------------------------------


def test_corrupted_archive_is_rejected_by_checksum(tmp_path, monkeypatch):
    _serve("cifar10", tmp_path, monkeypatch)
    served = tmp_path / "mirror" / "cifar10" / "cifar-10-python.tar.gz"
    data = bytearray(served.read_bytes())
    data[len(data) // 2] ^= 0xFF
    served.write_bytes(bytes(data))
    with pytest.raises(FetchError, match="md5 checksum mismatch"):
        images.load_image_set("cifar10", tmp_path / "data", download=True, progress=False)
    assert not (tmp_path / "data/cifar10/cifar-10-python.tar.gz").exists()
    assert not (tmp_path / "data/cifar10/extracted").exists()


def test_unpinned_page_instead_of_archive_is_dropped_with_its_record(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "iSUN.tar.gz").write_bytes(b"<!DOCTYPE html><html>Dropbox - Error</html>")
    monkeypatch.setenv(fetch_mod.MIRRORS_ENV, mirror.as_uri())
    root = tmp_path / "data"
    with pytest.warns(UnpinnedChecksumWarning), pytest.raises(FetchError) as info:
        images.load_image_set("isun", root, download=True, progress=False)
    assert "not a zip or tar archive" in str(info.value) and "facebookresearch/odin" in str(info.value)
    assert not (root / "isun" / "iSUN.tar.gz").exists() and not tofu_lock_path(root / "isun" / "iSUN.tar.gz").exists()
    fi.write_fake_images("isun", mirror)  # the real file: accepted and recorded on the next try
    with pytest.warns(UnpinnedChecksumWarning):
        assert len(images.load_image_set("isun", root, download=True, progress=False)) == 3


def test_unpinned_archive_changed_after_first_use_is_rejected(tmp_path, monkeypatch):
    _serve("inaturalist", tmp_path, monkeypatch)
    root = tmp_path / "data"
    _load("inaturalist", root)
    archive = root / "inaturalist" / "iNaturalist.tar.gz"
    archive.write_bytes(archive.read_bytes() + b"\0")  # a different file under the same name
    (root / "inaturalist" / "extracted" / ".iNaturalist.tar.gz.extracted.json").unlink()
    monkeypatch.delenv(fetch_mod.MIRRORS_ENV)  # else the good copy is simply fetched again
    with pytest.raises(FetchError, match=r"checksum mismatch: .*recorded on first use"):
        images.load_image_set("inaturalist", root)


def test_cifar_pickles_cannot_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": Evil()}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load (__builtin__|builtins)\.print"):
        images._unpickle(path)


# ---------------------------------------------------------------------------------------------
# ImageNet: login-gated
# ---------------------------------------------------------------------------------------------


def test_imagenet_missing_names_folder_files_and_url(tmp_path, capsys):
    root = tmp_path / "data"
    with pytest.raises(registry.ManualDownloadRequired) as info:
        images.load_image_set("imagenet-val", root)
    msg = str(info.value)
    folder = (root / "imagenet-val").absolute()
    assert "https://image-net.org/download-images.php" in msg and f"{folder}/" in msg
    assert str(folder / "ILSVRC2012_img_val.tar") in msg and str(folder / "ILSVRC2012_devkit_t12.tar.gz") in msg
    assert "do not unpack" in msg
    assert cli_main(["download", "imagenet-val", "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert "image-net.org" in err and str(folder) in err and "Traceback" not in err
    assert not (root / "imagenet-val").exists()


def test_imagenet_from_manually_placed_archives(tmp_path, monkeypatch):
    root = tmp_path / "data"
    checksums = fi.write_fake_images("imagenet-val", root / "imagenet-val")  # what the user puts there
    monkeypatch.setitem(registry.DATASETS, "imagenet-val", fd.pinned_spec("imagenet-val", checksums))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # MD5s are published: no trust on first use
        ds = images.load_image_set("imagenet-val", root, progress=False)
    _check(ds, fi.EXPECTED["imagenet-val"]["val"])
    assert ds.classes == fi.CLASSES["imagenet-val"]  # sorted wnids, names from meta.mat
    assert [p.name for p in ds.paths] == [f"ILSVRC2012_val_0000000{k}.JPEG" for k in (1, 2, 3)]
    assert sorted(p.name for p in (root / "imagenet-val/extracted/ILSVRC2012_devkit_t12/data").iterdir()) == [
        "ILSVRC2012_validation_ground_truth.txt", "meta.mat"]


# ---------------------------------------------------------------------------------------------
# Image lists: SC-OOD and OpenOOD
# ---------------------------------------------------------------------------------------------


def test_scood_list(tmp_path, monkeypatch):
    _serve("scood", tmp_path, monkeypatch)
    root = tmp_path / "data"
    with pytest.warns(UnpinnedChecksumWarning):
        ds = images.load_scood(root, "cifar10", "tin", download=True, progress=False)
    assert ds.name == "test_tin"
    _check(ds, fi.SCOOD_SAMPLES)
    with pytest.raises(FileNotFoundError, match="benchmark_cifar10/test_cifar10.txt, benchmark_cifar10/test_tin.txt"):
        images.load_scood(root, "cifar10", "lsun")


def test_openood_list_over_openood_images(tmp_path, monkeypatch):
    _serve("openood-imglist", tmp_path, monkeypatch)
    with pytest.warns(UnpinnedChecksumWarning):
        directory = images.prepare("openood-imglist", tmp_path / "data", download=True, progress=False)
    lists = directory / "extracted" / "benchmark_imglist"
    image_root = fi.write_openood_image_root(tmp_path / "images_classic")
    ds = images.load_imglist(lists / "cifar10" / "test_tin.txt", image_root, transform=lambda x: x[:, :8, :8])
    assert len(ds) == 2 and [int(lbl) for _, lbl in ds] == [-1, -1]
    assert tuple(ds[0][0].shape) == (3, 8, 8)
    assert ds.paths[0] == image_root / "tin/test/n01443537/val_1.JPEG"


@pytest.mark.parametrize(
    "line", ["../escape.jpg 0", "/etc/passwd 0", "a.jpg", "a.jpg {'x': 1}", "a.jpg __import__('os')"]
)
def test_imglist_rejects_bad_lines(tmp_path, line):
    (tmp_path / "list.txt").write_text(f"ok.jpg 1\n{line}\n")
    with pytest.raises(ValueError, match=r"unsafe archive member|expected '<path>|malformed node"):
        images.load_imglist(tmp_path / "list.txt", tmp_path)


def test_cli_fetches_the_other_sets_when_a_login_gated_one_is_missing(tmp_path, monkeypatch, capsys):
    _serve("mnist", tmp_path, monkeypatch)
    root = tmp_path / "data"
    assert cli_main(["download", "imagenet-val", "mnist", "--root", str(root), "--no-progress"]) == 1
    out, err = capsys.readouterr()
    assert "mnist: ok" in out and "https://image-net.org/download-images.php" in err
    assert "not ready: imagenet-val" in err and (root / "mnist" / "extracted").is_dir()
