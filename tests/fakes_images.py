"""Tiny fixture archives of the real image datasets, in their official formats.

Same archive and member names, folder layouts, file formats (pickled CIFAR batches, SVHN's
MATLAB file, MNIST's gzipped IDX, JPEG folders, ImageNet's devkit ``meta.mat``) and label
encodings as the published files (see :mod:`ood.data.images`), with 2–4 small images per split,
so that the real download, verify, unpack and load code runs offline through ``file://`` mirrors.
Where a layout is not documented (the Google Drive archives of OpenOOD and SC-OOD) the fixture
picks one, and the loaders do not depend on it.

Image ``i`` of size ``h×w`` is :func:`rgb` ``(i, h, w)``: ``R`` a horizontal ramp, ``G`` a
vertical ramp, ``B = 40·i + 20``; grey sets (MNIST) keep ``R``. :data:`EXPECTED` lists, per
registry name and split, each image's label and content in load order. Archives are
byte-for-byte reproducible. Every writer returns ``{file name: {"sha256", "md5", "size"}}``.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.io

import fakes_dense as fd

__all__ = ["rgb", "Sample", "EXPECTED", "WRITERS", "write_fake_images", "write_openood_image_root", "OOD"]

Checksums = dict[str, dict[str, object]]
OOD = -1


def rgb(i: int, h: int, w: int) -> np.ndarray:
    """Content ``[h, w, 3]`` uint8 of image ``i``."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack(
        [xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), np.full_like(xx, (40 * i + 20) % 256)], axis=-1
    ).astype(np.uint8)


@dataclass(frozen=True)
class Sample:
    """One image as a loader must return it: ``label``, and content ``rgb(i, h, w)`` (``grey``: its
    red channel only); ``exact``: stored losslessly (arrays), else as JPEG."""

    i: int
    h: int
    w: int
    label: int
    grey: bool = False
    exact: bool = False

    def array(self) -> np.ndarray:
        """``[C, H, W]`` uint8."""
        a = rgb(self.i, self.h, self.w).transpose(2, 0, 1)
        return a[:1] if self.grey else a


def _jpeg(s: Sample) -> bytes:
    return fd._encode(rgb(s.i, s.h, s.w), "JPEG")


def _targz(path: Path, members: dict[str, bytes]) -> None:
    """A reproducible ``.tar.gz`` (or plain ``.tar``) with directory entries before their files."""
    if path.name.endswith(".tar"):
        fd._write_tar(path, fd._with_dirs(members))
        return
    plain = path.with_name(path.name + ".plain.tar")
    fd._write_tar(plain, fd._with_dirs(members))
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(plain.read_bytes())
    plain.unlink()


def _zip(path: Path, members: dict[str, bytes]) -> None:
    fd._write_zip(path, fd._with_dirs(members))


def _done(dest: Path, *names: str) -> Checksums:
    return fd._checksums(*(dest / n for n in names))


# ---------------------------------------------------------------------------------------------
# What each fixture holds (and every loader must return, in this order)
# ---------------------------------------------------------------------------------------------

_CIFAR10_TRAIN = [Sample(b * 2 + j, 32, 32, (3 * b + j) % 10, exact=True) for b in range(5) for j in range(2)]
_CIFAR10_TEST = [Sample(20 + k, 32, 32, label, exact=True) for k, label in enumerate([7, 0, 9])]
_CIFAR100_TRAIN = [Sample(30 + k, 32, 32, label, exact=True) for k, label in enumerate([5, 99, 0, 42])]
_CIFAR100_TEST = [Sample(40 + k, 32, 32, label, exact=True) for k, label in enumerate([63, 1, 12])]
_SVHN_Y = [10, 1, 9]  # as stored: the digit 0 is 10
_MNIST_TRAIN = [Sample(50 + k, 28, 28, label, grey=True, exact=True) for k, label in enumerate([5, 0, 4, 1])]
_MNIST_TEST = [Sample(60 + k, 28, 28, label, grey=True, exact=True) for k, label in enumerate([7, 2, 1])]
# DTD: classes sorted (banded 0, blotchy 1, zigzagged 2), files sorted within a class.
_DTD = {
    "banded/banded_0002.jpg": Sample(70, 40, 48, 0),
    "banded/banded_0004.jpg": Sample(71, 48, 40, 0),
    "blotchy/blotchy_0003.jpg": Sample(72, 44, 44, 1),
    "zigzagged/zigzagged_0001.jpg": Sample(73, 36, 52, 2),
}
_TIN_WNIDS = ["n02124075", "n01443537", "n09193705"]  # wnids.txt order; sorted: n01443537 n02124075 n09193705
_TIN_VAL = [("val_0.JPEG", "n09193705", Sample(80, 64, 64, 2)), ("val_1.JPEG", "n01443537", Sample(81, 64, 64, 0)),
            ("val_2.JPEG", "n02124075", Sample(82, 64, 64, 1))]
_PLACES_CLASSES = ["/a/airfield", "/a/airplane_cabin", "/b/bakery/shop"]
_PLACES_VAL = [Sample(90 + k, 40, 40, label) for k, label in enumerate([2, 0, 1])]
# ImageNet: ILSVRC2012_IDs 1..3 are leaves (not in wnid order); 1001 is an inner node.
_IMAGENET_SYNSETS = [(1, "n02119789", "kit fox, Vulpes macrotis", 0), (2, "n02100735", "English setter", 0),
                     (3, "n01443537", "goldfish, Carassius auratus", 0), (1001, "n00001740", "entity", 3)]
_IMAGENET_VAL = [Sample(100 + k, 30, 40, label) for k, label in enumerate([0, 2, 1])]
#: Training images per class archive (``<wnid>.tar``: ``<wnid>_<n>.JPEG``), in wnid order.
_IMAGENET_TRAIN = {"n01443537": [Sample(170, 40, 30, 0), Sample(171, 36, 36, 0)],
                   "n02100735": [Sample(172, 30, 40, 1)],
                   "n02119789": [Sample(173, 40, 40, 2), Sample(174, 44, 30, 2)]}
#: Member paths (in load order, i.e. sorted) of the unlabelled sets, with each archive's name.
_FOLDERS: dict[str, tuple[str, list[str]]] = {
    "lsun-crop": ("LSUN.tar.gz", [f"LSUN/test/{k}.jpg" for k in range(3)]),
    "lsun-resize": ("LSUN_resize.tar.gz", [f"LSUN_resize/LSUN_resize/{k}.jpg" for k in range(3)]),
    "isun": ("iSUN.tar.gz", [f"iSUN/iSUN_patches/COCO_train2014_00000000{k}.jpeg" for k in range(3)]),
    "tin-crop": ("Imagenet.tar.gz", [f"Imagenet/test/{k}.jpg" for k in range(2)]),
    "tin-resize": ("Imagenet_resize.tar.gz", [f"Imagenet_resize/Imagenet_resize/{k}.jpg" for k in range(2)]),
    "imagenet-o": ("imagenet-o.tar", ["imagenet-o/n01443537/a.jpg", "imagenet-o/n01443537/b.jpg",
                                      "imagenet-o/n01704323/c.jpg"]),
    "inaturalist": ("iNaturalist.tar.gz", [f"iNaturalist/images/{h}.jpg" for h in ("0a1b", "3c4d", "9e8f")]),
    "ninco": ("NINCO_all.tar.gz", ["NINCO/NINCO_OOD_classes/amphiuma_means/a.jpg",
                                   "NINCO/NINCO_OOD_classes/amphiuma_means/b.jpg",
                                   "NINCO/NINCO_OOD_classes/caracal_caracal/c.jpg"]),
    "openimage-o": ("openimage_o.zip", [f"openimage_o/{h}.jpg" for h in ("0001eeaf4aed83f9", "000a1249af2bc5f0")]),
    "ssb-hard": ("ssb_hard.zip", ["ssb_hard/n00005787/n00005787_1.JPEG", "ssb_hard/n00006024/n00006024_2.JPEG"]),
    "species-sub": ("species_sub.zip", ["species_sub/Acanthurus/1.jpg", "species_sub/Zea/2.jpg"]),
}
_FOLDER_SIZE = {name: (32, 32) for name in ("lsun-crop", "lsun-resize", "isun", "tin-crop", "tin-resize")}


def _folder_samples(name: str) -> list[Sample]:
    h, w = _FOLDER_SIZE.get(name, (40, 30))
    return [Sample(110 + k, h, w, OOD) for k in range(len(_FOLDERS[name][1]))]


#: ``{registry name: {split: [Sample, ...]}}`` in load order.
EXPECTED: dict[str, dict[str, list[Sample]]] = {
    "cifar10": {"train": _CIFAR10_TRAIN, "test": _CIFAR10_TEST},
    "cifar100": {"train": _CIFAR100_TRAIN, "test": _CIFAR100_TEST},
    "svhn": {"test": [Sample(120 + k, 32, 32, y % 10, exact=True) for k, y in enumerate(_SVHN_Y)]},
    "mnist": {"train": _MNIST_TRAIN, "test": _MNIST_TEST},
    "dtd": {"all": list(_DTD.values())},
    "tiny-imagenet": {"val": [s for _, _, s in _TIN_VAL]},
    "places365": {"val": _PLACES_VAL},
    "imagenet-train": {"train": [s for samples in _IMAGENET_TRAIN.values() for s in samples]},
    "imagenet-val": {"val": _IMAGENET_VAL},
    **{name: {"all": _folder_samples(name)} for name in _FOLDERS},
}
CLASSES: dict[str, list[str]] = {
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
    "cifar100": [f"fine_{k:02d}" for k in range(100)],
    "svhn": [str(d) for d in range(10)],
    "mnist": [str(d) for d in range(10)],
    "dtd": ["banded", "blotchy", "zigzagged"],
    "tiny-imagenet": sorted(_TIN_WNIDS),
    "places365": _PLACES_CLASSES,
    "imagenet-train": sorted(_IMAGENET_TRAIN),
    "imagenet-val": ["goldfish, Carassius auratus", "English setter", "kit fox, Vulpes macrotis"],
}

# ---------------------------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------------------------


def _batch(samples: list[Sample], label_key: str, extra: dict) -> bytes:
    data = np.stack([s.array().reshape(-1) for s in samples])  # rows: 1024 R, 1024 G, 1024 B
    entry = {"batch_label": "fixture", label_key: [s.label for s in samples], "data": data,
             "filenames": [f"img_{s.i}.png" for s in samples], **extra}
    return pickle.dumps(entry, protocol=2)


def cifar_samples(n: int, first: int, classes: int) -> list[Sample]:
    """``n`` CIFAR-format samples (32×32, lossless), labels cycling through ``classes``, contents from
    image number ``first`` on: bigger fixtures for pipeline smoke runs."""
    return [Sample(first + k, 32, 32, k % classes, exact=True) for k in range(n)]


def write_cifar10(dest: Path, train: list[Sample] = _CIFAR10_TRAIN, test: list[Sample] = _CIFAR10_TEST) -> Checksums:
    """``cifar-10-python.tar.gz``: ``cifar-10-batches-py/{data_batch_1..5, test_batch,
    batches.meta, readme.html}`` (by default 2 images per training batch, 3 in the test batch)."""
    top = "cifar-10-batches-py"
    members = {f"{top}/batches.meta": pickle.dumps(
        {"num_cases_per_batch": 10000, "label_names": CLASSES["cifar10"], "num_vis": 3072}, protocol=2)}
    per = len(train) // 5
    for b in range(5):
        members[f"{top}/data_batch_{b + 1}"] = _batch(train[per * b: per * (b + 1) if b < 4 else None], "labels", {})
    members[f"{top}/readme.html"] = b"<html>fixture</html>"
    members[f"{top}/test_batch"] = _batch(test, "labels", {})
    _targz(dest / "cifar-10-python.tar.gz", members)
    return _done(dest, "cifar-10-python.tar.gz")


def write_cifar100(dest: Path, train: list[Sample] = _CIFAR100_TRAIN, test: list[Sample] = _CIFAR100_TEST) -> Checksums:
    """``cifar-100-python.tar.gz``: ``cifar-100-python/{train, test, meta}`` with ``fine_labels``,
    ``coarse_labels`` and ``fine_label_names``/``coarse_label_names``."""
    top = "cifar-100-python"

    def coarse(samples: list[Sample]) -> dict:
        return {"coarse_labels": [s.label // 5 for s in samples]}

    members = {
        f"{top}/meta": pickle.dumps({"fine_label_names": CLASSES["cifar100"],
                                     "coarse_label_names": [f"coarse_{k}" for k in range(20)]}, protocol=2),
        f"{top}/test": _batch(test, "fine_labels", coarse(test)),
        f"{top}/train": _batch(train, "fine_labels", coarse(train)),
    }
    _targz(dest / "cifar-100-python.tar.gz", members)
    return _done(dest, "cifar-100-python.tar.gz")


def write_svhn(dest: Path) -> Checksums:
    """``test_32x32.mat``: ``X`` uint8 32×32×3×N, ``y`` uint8 N×1 (digit 0 stored as 10)."""
    samples = EXPECTED["svhn"]["test"]
    x = np.stack([rgb(s.i, 32, 32) for s in samples], axis=-1)
    scipy.io.savemat(dest / "test_32x32.mat", {"X": x, "y": np.array(_SVHN_Y, dtype=np.uint8)[:, None]})
    return _done(dest, "test_32x32.mat")


def _idx(array: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_mnist(dest: Path) -> Checksums:
    """The four IDX files gzipped, under their published ``.gz`` names."""
    names = []
    for prefix, samples in (("train", _MNIST_TRAIN), ("t10k", _MNIST_TEST)):
        images = np.stack([s.array()[0] for s in samples])
        labels = np.array([s.label for s in samples], dtype=np.uint8)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{prefix}-{kind}-ubyte.gz"
            with open(dest / name, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
                gz.write(_idx(array))
            names.append(name)
    return _done(dest, *names)


def write_dtd(dest: Path) -> Checksums:
    """``dtd-r1.0.1.tar.gz``: ``dtd/images/<class>/<class>_<nnnn>.jpg``, ``dtd/labels/*.txt``,
    ``dtd/imdb/imdb.mat`` (the last two are not unpacked)."""
    members = {f"dtd/images/{path}": _jpeg(s) for path, s in _DTD.items()}
    members["dtd/imdb/imdb.mat"] = b"not read"
    members["dtd/labels/train1.txt"] = "\n".join(_DTD).encode()
    _targz(dest / "dtd-r1.0.1.tar.gz", members)
    return _done(dest, "dtd-r1.0.1.tar.gz")


def write_tiny_imagenet(dest: Path) -> Checksums:
    """``tiny-imagenet-200.zip``: ``wnids.txt``, ``words.txt``, ``train/<wnid>/images`` (not
    unpacked), ``val/images/val_<k>.JPEG`` + tab-separated ``val/val_annotations.txt``,
    ``test/images`` (unlabelled, not unpacked)."""
    top = "tiny-imagenet-200"
    members = {f"{top}/wnids.txt": ("\n".join(_TIN_WNIDS) + "\n").encode(),
               f"{top}/words.txt": "".join(f"{w}\tthing {w}\n" for w in _TIN_WNIDS).encode()}
    for k, wnid in enumerate(_TIN_WNIDS):
        members[f"{top}/train/{wnid}/images/{wnid}_0.JPEG"] = _jpeg(Sample(130 + k, 64, 64, k))
        members[f"{top}/train/{wnid}/{wnid}_boxes.txt"] = f"{wnid}_0.JPEG\t0\t0\t63\t63\n".encode()
    for file, _, s in _TIN_VAL:
        members[f"{top}/val/images/{file}"] = _jpeg(s)
    members[f"{top}/val/val_annotations.txt"] = "".join(f"{f}\t{w}\t0\t8\t60\t55\n" for f, w, _ in _TIN_VAL).encode()
    members[f"{top}/test/images/test_0.JPEG"] = _jpeg(Sample(139, 64, 64, OOD))
    _zip(dest / "tiny-imagenet-200.zip", members)
    return _done(dest, "tiny-imagenet-200.zip")


def write_places365(dest: Path) -> Checksums:
    """``filelist_places365-standard.tar`` (category list, train/val lists at the top level) and
    ``val_256.tar`` (``val_256/Places365_val_<8 digits>.jpg``)."""
    names = [f"Places365_val_{k + 1:08d}.jpg" for k in range(len(_PLACES_VAL))]
    lists = {
        "categories_places365.txt": "".join(f"{c} {k}\n" for k, c in enumerate(_PLACES_CLASSES)).encode(),
        "places365_train_standard.txt": b"/a/airfield/00000001.jpg 0\n",
        "places365_val.txt": "".join(f"{n} {s.label}\n" for n, s in zip(names, _PLACES_VAL)).encode(),
    }
    _targz(dest / "filelist_places365-standard.tar", lists)
    _targz(dest / "val_256.tar", {f"val_256/{n}": _jpeg(s) for n, s in zip(names, _PLACES_VAL)})
    return _done(dest, "filelist_places365-standard.tar", "val_256.tar")


def write_imagenet_val(dest: Path, val: list[Sample] | None = None) -> Checksums:
    """``ILSVRC2012_img_val.tar`` (flat ``ILSVRC2012_val_<8 digits>.JPEG``) and
    ``ILSVRC2012_devkit_t12.tar.gz`` (``data/meta.mat`` with the ``synsets`` struct array,
    ``data/ILSVRC2012_validation_ground_truth.txt``), as the user puts them from image-net.org.
    ``val`` overrides the images (labels 0..2, the sorted-wnid classes)."""
    val = _IMAGENET_VAL if val is None else val
    leaves = sorted((wnid, idx) for idx, wnid, _, children in _IMAGENET_SYNSETS if children == 0)
    truth = [leaves[s.label][1] for s in val]  # sorted-wnid label -> its ILSVRC2012_ID
    fields = ["ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "children", "wordnet_height",
              "num_train_images"]
    synsets = np.zeros((len(_IMAGENET_SYNSETS), 1), dtype=[(f, "O") for f in fields])
    for k, (idx, wnid, words, children) in enumerate(_IMAGENET_SYNSETS):
        synsets[k, 0] = (idx, wnid, words, "gloss", children, np.arange(1, children + 1, dtype=np.uint8),
                         0, 1300 if children == 0 else 0)
    meta = io.BytesIO()
    scipy.io.savemat(meta, {"synsets": synsets})
    devkit = {
        "ILSVRC2012_devkit_t12/COPYING": b"fixture",
        "ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt": "".join(
            f"{t}\n" for t in truth).encode(),
        "ILSVRC2012_devkit_t12/data/meta.mat": meta.getvalue(),
        "ILSVRC2012_devkit_t12/evaluation/demo_eval.m": b"% fixture",
    }
    _targz(dest / "ILSVRC2012_devkit_t12.tar.gz", devkit)
    _targz(dest / "ILSVRC2012_img_val.tar",
           {f"ILSVRC2012_val_{k + 1:08d}.JPEG": _jpeg(s) for k, s in enumerate(val)})
    return _done(dest, "ILSVRC2012_devkit_t12.tar.gz", "ILSVRC2012_img_val.tar")


def write_imagenet_train(dest: Path, per_class: dict[str, list[Sample]] | None = None) -> Checksums:
    """``ILSVRC2012_img_train.tar``: one uncompressed ``<wnid>.tar`` per class holding
    ``<wnid>_<n>.JPEG``, as image-net.org serves it. ``per_class`` overrides the images."""
    per_class = _IMAGENET_TRAIN if per_class is None else per_class
    inner = {}
    for wnid, samples in per_class.items():
        path = dest / f"{wnid}.tar"
        _targz(path, {f"{wnid}_{n}.JPEG": _jpeg(s) for n, s in enumerate(samples)})
        inner[f"{wnid}.tar"] = path.read_bytes()
        path.unlink()
    fd._write_tar(dest / "ILSVRC2012_img_train.tar", inner)
    return _done(dest, "ILSVRC2012_img_train.tar")


def _write_folder(name: str) -> Callable[[Path], Checksums]:
    """The unlabelled sets: their images, plus clutter a loader must skip (a README, a macOS
    ``._`` resource fork, and for NINCO its other two folders, which are not unpacked)."""

    def write(dest: Path) -> Checksums:
        archive, paths = _FOLDERS[name]
        members = {p: _jpeg(s) for p, s in zip(paths, _folder_samples(name))}
        top = paths[0].split("/")[0]
        members[f"{top}/README.txt"] = b"fixture"
        members[f"{top}/._{paths[0].rsplit('/', 1)[-1]}"] = b"\x00\x05\x16\x07 AppleDouble"
        if name == "ninco":
            members["NINCO/NINCO_OOD_unit_tests/noise/d.jpg"] = _jpeg(Sample(140, 20, 20, OOD))
            members["NINCO/NINCO_popular_datasets_subsamples/iNaturalist/e.jpg"] = _jpeg(Sample(141, 20, 20, OOD))
        (_zip if archive.endswith(".zip") else _targz)(dest / archive, members)
        return _done(dest, archive)

    return write


#: OpenOOD's image list fixture: ``benchmark_imglist/cifar10/test_tin.txt`` over an OpenOOD-style
#: ``images_classic/`` folder (:func:`write_openood_image_root`).
OPENOOD_LIST = [("tin/test/n01443537/val_1.JPEG", OOD), ("tin/test/n09193705/val_0.JPEG", OOD)]
OPENOOD_SAMPLES = [Sample(150 + k, 64, 64, label) for k, (_, label) in enumerate(OPENOOD_LIST)]


def write_openood_imglist(dest: Path) -> Checksums:
    """``benchmark_imglist.zip``: ``benchmark_imglist/<benchmark>/<split>_<set>.txt`` lines
    ``<path> <label>`` (OpenOOD's ImglistDataset format)."""
    members = {
        "benchmark_imglist/cifar10/test_tin.txt": "".join(f"{p} {lbl}\n" for p, lbl in OPENOOD_LIST).encode(),
        "benchmark_imglist/cifar10/test_cifar10.txt": b"cifar10/test/airplane/0001.png 0\n",
    }
    _zip(dest / "benchmark_imglist.zip", members)
    return _done(dest, "benchmark_imglist.zip")


def write_openood_image_root(dest: Path) -> Path:
    """OpenOOD's ``images_classic/`` for :data:`OPENOOD_LIST` (OpenOOD's own copies, not an archive)."""
    for (path, _), s in zip(OPENOOD_LIST, OPENOOD_SAMPLES):
        (dest / path).parent.mkdir(parents=True, exist_ok=True)
        (dest / path).write_bytes(_jpeg(s))
    return dest


#: SC-OOD fixture: ``imglist/benchmark_cifar10/test_tin.txt`` (one semantically coherent image,
#: labelled with its CIFAR-10 class 3, and two OOD images) over ``images/``.
SCOOD_LIST = [("tin/test/a.jpg", 3), ("tin/test/b.jpg", OOD), ("tin/test/c.jpg", OOD)]
SCOOD_SAMPLES = [Sample(160 + k, 32, 32, label) for k, (_, label) in enumerate(SCOOD_LIST)]


def write_scood(dest: Path) -> Checksums:
    """``scood_benchmark.zip``: ``data/images/...`` and ``data/imglist/benchmark_<id>/<stage>_<set>.txt``
    with lines ``<path> {"label": k}``, the layout ICCV21_SCOOD's loader reads."""
    members = {f"data/images/{p}": _jpeg(s) for (p, _), s in zip(SCOOD_LIST, SCOOD_SAMPLES)}
    members["data/imglist/benchmark_cifar10/test_tin.txt"] = "".join(
        f'{p} {{"label": {lbl}}}\n' for p, lbl in SCOOD_LIST).encode()
    members["data/imglist/benchmark_cifar10/test_cifar10.txt"] = b'cifar10/test/0.png {"label": 0}\n'
    _zip(dest / "scood_benchmark.zip", members)
    return _done(dest, "scood_benchmark.zip")


#: Registry dataset name -> fixture writer ``(dest_dir) -> checksums``.
WRITERS: dict[str, Callable[[Path], Checksums]] = {
    "cifar10": write_cifar10,
    "cifar100": write_cifar100,
    "svhn": write_svhn,
    "mnist": write_mnist,
    "dtd": write_dtd,
    "tiny-imagenet": write_tiny_imagenet,
    "places365": write_places365,
    "imagenet-train": write_imagenet_train,
    "imagenet-val": write_imagenet_val,
    **{name: _write_folder(name) for name in _FOLDERS},
    "openood-imglist": write_openood_imglist,
    "scood": write_scood,
}


def write_fake_images(name: str, dest_dir: str | os.PathLike[str]) -> Checksums:
    """Write the fixture files of registry dataset ``name`` into ``dest_dir``."""
    if name not in WRITERS:
        raise ValueError(f"no fixture for {name!r}; known: {', '.join(WRITERS)}")
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    return WRITERS[name](dest)
