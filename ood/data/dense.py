"""Real dense (per-pixel) OOD datasets of the paper profile, and Cityscapes as their inlier set.

Every evaluation set loads as a torch ``Dataset`` of ``(image, ood_mask)``:

* ``image``: ``float32`` tensor ``[3, H, W]`` in ``[0, 1]`` (RGB, no normalisation);
* ``ood_mask``: ``int64`` tensor ``[H, W]`` with **0 = inlier, 1 = OOD, 255 = void** (ignored by
  every dense metric), whatever the set's own encoding was.

Official encodings and how they are unified (each mapping is a ``unify_*`` function below, tested
on hand-made arrays):

=========================  ==========================================================  =====================
set (registry name)        official label file and encoding                            unified
=========================  ==========================================================  =====================
smiyc-roadanomaly21        ``labels_masks/<id>_labels_semantic.png``: 0 not anomaly,   0→0, 1→1, other→255
smiyc-roadobstacle21       1 anomaly/obstacle, 255 void (SegmentMeIfYouCan/
                           road-anomaly-benchmark, ``datasets/tracks.py``; only the
                           validation frames are labelled)
fishyscapes-lostandfound   ``<n>_<laf id>_labels.png``: 0 inlier, 1 OOD, 255 void      0→0, 1→1, other→255
                           (hermannsblum/bdl-benchmark scores ``label == 1`` over
                           ``label <= 1``)
roadanomaly                ``frames/<id>.labels/labels_semantic.png``: anomaly where   ≥2→1, other→0
                           ``label >= 2`` (cvlab-epfl/detecting-the-unexpected,        (no void)
                           ``src/datasets/road_anomaly.py``); no void class
streethazards-test         ``annotations/test/<town>/<n>.png``: class index + 1, the   14→1, 0→255, other→0
                           anomaly is 14 (hendrycks/anomaly-seg: labels are shifted
                           by −1 on load and ``out_labels = 13``; the shifted −1 is
                           the training ignore index)
=========================  ==========================================================  =====================

StreetHazards' "unlabeled" class (raw 1) counts as inlier, as in the official evaluation.
Cityscapes (login-gated; see :data:`ood.data.registry.CITYSCAPES`) loads as ``(image, trainId)``
with the 19 standard training classes and 255 = ignore (:data:`CITYSCAPES_TRAIN_IDS`, from
mcordts/cityscapesScripts ``helpers/labels.py``).

Archives stay as downloaded in ``<root>/<name>/`` and are unpacked on first use into
``<root>/<name>/extracted/`` by :func:`extract_archive`, which refuses absolute paths, ``..``
components, links and device files, writes through a temporary folder, and leaves a marker so
the next run neither unpacks nor re-hashes anything (the archives can then be deleted to save
disk). Only what is needed is unpacked: the 100 Fishyscapes frames out of the 5.8 GB Lost & Found
archive, and the train/val images and ``labelIds`` of Cityscapes.

Public API::

    load_dense_set(name, root="data", *, download=False, transform=None) -> DenseOODDataset
    load_cityscapes(root="data", split="train", *, transform=None) -> CityscapesSegmentation
    prepare(name, root="data", *, download=False) -> Path      # fetch/verify + unpack only
    extract_archive(archive, dest, *, select=None) -> int
    unify_smiyc / unify_fishyscapes / unify_road_anomaly / unify_streethazards, cityscapes_train_ids
    DENSE_SETS, CITYSCAPES_CLASSES, CITYSCAPES_TRAIN_IDS, VOID, UnsafeArchiveError
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
import stat
import tarfile
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from . import registry

__all__ = [
    "VOID",
    "DENSE_SETS",
    "DenseSetInfo",
    "DenseOODDataset",
    "CityscapesSegmentation",
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_TRAIN_IDS",
    "UnsafeArchiveError",
    "load_dense_set",
    "load_cityscapes",
    "prepare",
    "extract_archive",
    "unify_smiyc",
    "unify_fishyscapes",
    "unify_road_anomaly",
    "unify_streethazards",
    "cityscapes_train_ids",
]

#: Label of pixels that every dense metric ignores (and the Cityscapes ignore trainId).
VOID = 255

EXTRACTED = "extracted"  # sub-folder of <root>/<name>/ that archives are unpacked into
_MARKER = ".{archive}.extracted.json"  # in EXTRACTED, written last: the archive is fully unpacked


# ---------------------------------------------------------------------------------------------
# Label unification (official encoding -> 0 inlier / 1 OOD / 255 void)
# ---------------------------------------------------------------------------------------------


def _as_label(label: np.ndarray) -> np.ndarray:
    label = np.asarray(label)
    if label.ndim != 2 or not np.issubdtype(label.dtype, np.integer):
        raise ValueError(f"expected a 2-D integer label map, got shape {label.shape} dtype {label.dtype}")
    return label


def _zero_one_void(label: np.ndarray) -> np.ndarray:
    label = _as_label(label)
    out = np.full(label.shape, VOID, dtype=np.uint8)
    out[label == 0] = 0
    out[label == 1] = 1
    return out


def unify_smiyc(label: np.ndarray) -> np.ndarray:
    """SegmentMeIfYouCan ``*_labels_semantic.png``: 0 inlier, 1 anomaly (or obstacle), anything
    else void, exactly as the benchmark's loader builds ``label_pixel_gt``."""
    return _zero_one_void(label)


def unify_fishyscapes(label: np.ndarray) -> np.ndarray:
    """Fishyscapes ``*_labels.png``: 0 inlier, 1 OOD, anything else (255) void."""
    return _zero_one_void(label)


def unify_road_anomaly(label: np.ndarray) -> np.ndarray:
    """Road Anomaly ``labels_semantic.png``: anomaly where ``label >= 2`` (the authors' rule), the
    rest inlier; the set has no void class."""
    return (_as_label(label) >= 2).astype(np.uint8)


#: StreetHazards raw annotation value of the anomaly class (13 after the official −1 shift).
STREETHAZARDS_ANOMALY = 14


def unify_streethazards(label: np.ndarray) -> np.ndarray:
    """StreetHazards ``annotations``: 14 (anomaly) → 1, 0 (−1 after the official shift, the
    ignore index) → void, the 13 classes 1..13 (incl. "unlabeled") → inlier."""
    label = _as_label(label)
    out = np.zeros(label.shape, dtype=np.uint8)
    out[label == STREETHAZARDS_ANOMALY] = 1
    out[label == 0] = VOID
    return out


#: The 19 Cityscapes training classes, in trainId order.
CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)  # fmt: skip

# labelId -> trainId for the evaluated classes (cityscapesScripts helpers/labels.py); every other
# labelId (void classes, parking, rail track, guard rail, bridge, tunnel, polegroup, caravan,
# trailer, and anything unknown) -> 255.
_CITYSCAPES_ID_TO_TRAIN = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
    24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip
#: Lookup table ``labelId (0..255) -> trainId`` (uint8, 255 = ignore).
CITYSCAPES_TRAIN_IDS = np.full(256, VOID, dtype=np.uint8)
for _label_id, _train_id in _CITYSCAPES_ID_TO_TRAIN.items():
    CITYSCAPES_TRAIN_IDS[_label_id] = _train_id
CITYSCAPES_TRAIN_IDS.setflags(write=False)


def cityscapes_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Map a Cityscapes ``*_gtFine_labelIds.png`` array to trainIds (0..18, 255 = ignore)."""
    label_ids = _as_label(label_ids)
    if label_ids.min(initial=0) < 0 or label_ids.max(initial=0) > 255:
        raise ValueError("Cityscapes labelIds must lie in 0..255")
    return CITYSCAPES_TRAIN_IDS[label_ids.astype(np.intp)]


# ---------------------------------------------------------------------------------------------
# Safe archive extraction
# ---------------------------------------------------------------------------------------------


class UnsafeArchiveError(ValueError):
    """An archive member would land outside the destination (absolute path, ``..``) or is a
    link, device or other special file. Nothing is extracted from such an archive."""


_DRIVE = re.compile(r"^[A-Za-z]:")


def _safe_member_path(name: str) -> str | None:
    """The normalised relative POSIX path of an archive member, ``None`` for the archive root;
    raises :class:`UnsafeArchiveError` for absolute paths, drive letters, ``..`` and NUL bytes."""
    unified = name.replace("\\", "/")
    if "\0" in unified or unified.startswith("/") or _DRIVE.match(unified):
        raise UnsafeArchiveError(f"unsafe archive member {name!r}: absolute path")
    parts = [p for p in unified.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"unsafe archive member {name!r}: '..' component")
    return posixpath.join(*parts) if parts else None


@dataclass
class _Member:
    path: str | None  # safe relative path (None: the root itself)
    is_dir: bool
    open: Callable[[], object] | None  # returns a binary stream for regular files


def _zip_members(zf: zipfile.ZipFile) -> Iterator[_Member]:
    for info in zf.infolist():
        path = _safe_member_path(info.filename)
        file_type = stat.S_IFMT(info.external_attr >> 16)  # 0 when the archiver stored none
        if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise UnsafeArchiveError(f"unsafe archive member {info.filename!r}: not a regular file")
        if info.is_dir():
            yield _Member(path, True, None)
        else:
            yield _Member(path, False, lambda info=info: zf.open(info))


def _tar_members(tf: tarfile.TarFile) -> Iterator[_Member]:
    for info in tf:  # streaming: also works for a .tar read once from start to end
        path = _safe_member_path(info.name)
        if info.isdir():
            yield _Member(path, True, None)
        elif info.isfile():
            yield _Member(path, False, lambda info=info: tf.extractfile(info))
        else:
            kind = "link" if (info.issym() or info.islnk()) else "special file"
            raise UnsafeArchiveError(f"unsafe archive member {info.name!r}: {kind}")


def _scan(archive: Path) -> None:
    """Validate every member name and type before anything is written."""
    with _ArchiveMembers(archive) as members:
        for _ in members:
            pass


_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


class _ArchiveMembers:
    """Context manager yielding the members of a zip or tar archive (any tar compression).

    The kind comes from the file name when it says (``.zip``, ``.tar[.gz|.bz2|.xz]``, ``.tgz``):
    content sniffing alone can take a tar whose last member is a zip for a zip.
    """

    def __init__(self, archive: Path) -> None:
        self.archive = archive
        self._handle: zipfile.ZipFile | tarfile.TarFile | None = None

    def __enter__(self) -> Iterator[_Member]:
        name = self.archive.name.lower()
        is_zip = name.endswith(".zip") or (not name.endswith(_TAR_SUFFIXES) and zipfile.is_zipfile(self.archive))
        if is_zip:
            self._handle = zipfile.ZipFile(self.archive)
            return _zip_members(self._handle)
        if name.endswith(_TAR_SUFFIXES) or tarfile.is_tarfile(self.archive):
            self._handle = tarfile.open(self.archive, "r:*")
            return _tar_members(self._handle)
        raise ValueError(f"{self.archive} is neither a zip nor a tar archive")

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.close()


def extract_archive(
    archive: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    select: Callable[[str], bool] | None = None,
) -> int:
    """Unpack the regular files of a zip or tar ``archive`` into ``dest``; return how many.

    ``select(path)`` (relative POSIX path) chooses which files to unpack (default: all). Every
    member is checked first: an absolute path, a ``..`` component, a link or a device file raises
    :class:`UnsafeArchiveError` before anything is written. Files are written into a temporary
    folder next to ``dest`` and moved into place at the end, so an interruption never leaves a
    half-written file under its final name.
    """
    archive, dest = Path(archive), Path(dest)
    _scan(archive)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.partial-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    count = 0
    try:
        with _ArchiveMembers(archive) as members:
            for member in members:
                if member.path is None or member.is_dir or member.open is None:
                    continue
                if select is not None and not select(member.path):
                    continue
                target = tmp / member.path
                target.parent.mkdir(parents=True, exist_ok=True)
                with member.open() as src, open(target, "wb") as out:  # type: ignore[union-attr]
                    shutil.copyfileobj(src, out, 1 << 20)
                count += 1
        _merge_into(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return count


def _merge_into(src: Path, dest: Path) -> None:
    """Move the tree ``src`` into ``dest`` file by file (``os.replace``: atomic per file)."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.rglob("*")):
        if path.is_file():
            target = dest / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)


# ---------------------------------------------------------------------------------------------
# Per-dataset layout: archives, what to unpack, and how to pair images with labels
# ---------------------------------------------------------------------------------------------

Pairs = list[tuple[str, Path, Path]]  # (frame id, image path, label path)
_IMAGE_EXTS = (".jpg", ".png", ".webp", ".jpeg")


def _first_existing(base: Path, stem: str) -> Path | None:
    for ext in _IMAGE_EXTS:
        if (base / f"{stem}{ext}").is_file():
            return base / f"{stem}{ext}"
    return None


def _smiyc_pairs(track_dir: str) -> Callable[[Path], Pairs]:
    suffix = "_labels_semantic.png"

    def pairs(extracted: Path) -> Pairs:
        base = extracted / track_dir
        out = []
        for label in sorted((base / "labels_masks").glob(f"*{suffix}")):
            fid = label.name[: -len(suffix)]
            image = _first_existing(base / "images", fid)
            if image is None:
                raise FileNotFoundError(f"no image for label {label} in {base / 'images'}")
            out.append((fid, image, label))
        return out

    return pairs


_FS_LABEL = re.compile(r"^(\d+)_(.+)_labels\.png$")
_LAF_SPLITS = ("test", "train")


def _fs_masks(extracted: Path) -> list[tuple[str, str, Path]]:
    """``(fishyscapes id, Lost & Found id, mask path)`` of every Fishyscapes mask."""
    out = []
    for path in sorted(extracted.glob("*_labels.png")):
        m = _FS_LABEL.match(path.name)
        if m:
            out.append((m.group(1), m.group(2), path))
    return out


def _laf_image_members(laf_id: str) -> list[str]:
    # '04_Maurener_Weg_8_000000_000030' lives in the scene folder '04_Maurener_Weg_8'.
    scene = laf_id.rsplit("_", 2)[0]
    return [f"leftImg8bit/{split}/{scene}/{laf_id}_leftImg8bit.png" for split in _LAF_SPLITS]


def _fs_select(extracted: Path) -> Callable[[str], bool]:
    wanted = {m for _, laf_id, _ in _fs_masks(extracted) for m in _laf_image_members(laf_id)}
    return wanted.__contains__


def _fs_pairs(extracted: Path) -> Pairs:
    out = []
    for fs_id, laf_id, mask in _fs_masks(extracted):
        image = next((extracted / m for m in _laf_image_members(laf_id) if (extracted / m).is_file()), None)
        if image is None:
            raise FileNotFoundError(
                f"Lost & Found frame {laf_id} (for {mask.name}) is not in {extracted / 'leftImg8bit'}"
            )
        out.append((f"{fs_id}_{laf_id}", image, mask))
    return out


def _road_anomaly_pairs(extracted: Path) -> Pairs:
    base = extracted / "RoadAnomaly_jpg"
    frame_list = base / "frame_list.json"
    if frame_list.is_file():  # the authors' loader reads the frame order from this list
        names = [Path(n).name for n in json.loads(frame_list.read_text())]
    else:
        names = sorted(p.name for p in (base / "frames").glob("*.jpg"))
    out = []
    for name in names:
        stem = Path(name).stem
        out.append((stem, base / "frames" / name, base / "frames" / f"{stem}.labels" / "labels_semantic.png"))
    return out


def _natural_key(path: Path) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.as_posix()))


def _streethazards_pairs(extracted: Path) -> Pairs:
    images = extracted / "test" / "images" / "test"
    out = []
    for image in sorted(images.glob("*/*.png"), key=_natural_key):
        rel = image.relative_to(images)
        label = extracted / "test" / "annotations" / "test" / rel
        out.append((f"{rel.parent.name}/{image.stem}", image, label))
    return out


@dataclass(frozen=True)
class DenseSetInfo:
    """How one registry dataset becomes ``(image, ood_mask)`` pairs.

    Attributes:
        name: the registry dataset (``<root>/<name>/`` holds its archives).
        unify: official label array -> 0/1/255.
        pairs: ``extracted dir -> [(frame id, image path, label path)]``.
        expected: the number of labelled frames in the real set (documentation and a sanity check
            callers may apply; fixtures are smaller).
    """

    name: str
    unify: Callable[[np.ndarray], np.ndarray]
    pairs: Callable[[Path], Pairs]
    expected: int

    @property
    def archives(self) -> list[str]:
        return [f.name for f in registry.DATASETS[self.name].files]


DENSE_SETS: dict[str, DenseSetInfo] = {
    info.name: info
    for info in [
        DenseSetInfo("smiyc-roadanomaly21", unify_smiyc, _smiyc_pairs("dataset_AnomalyTrack"), 10),
        DenseSetInfo("smiyc-roadobstacle21", unify_smiyc, _smiyc_pairs("dataset_ObstacleTrack"), 30),
        DenseSetInfo("fishyscapes-lostandfound", unify_fishyscapes, _fs_pairs, 100),
        DenseSetInfo("roadanomaly", unify_road_anomaly, _road_anomaly_pairs, 60),
        DenseSetInfo("streethazards-test", unify_streethazards, _streethazards_pairs, 1500),
    ]
}

CITYSCAPES = "cityscapes"
_CITYSCAPES_SPLITS = ("train", "val")


def _cityscapes_member(path: str) -> bool:
    """Unpack README/licence, train/val images and train/val ``labelIds`` (not test, colours,
    instances or polygons: 3 GB less)."""
    parts = path.split("/")
    if len(parts) == 1:  # README, license.txt
        return True
    if len(parts) < 3 or parts[1] not in _CITYSCAPES_SPLITS:
        return False
    return parts[0] == "leftImg8bit" or path.endswith("_gtFine_labelIds.png")


#: ``{dataset: {archive: extracted dir -> member filter}}`` for archives not unpacked whole.
_SELECT: dict[str, dict[str, Callable[[Path], Callable[[str], bool]]]] = {
    "fishyscapes-lostandfound": {"leftImg8bit.zip": _fs_select},
    CITYSCAPES: {
        "leftImg8bit_trainvaltest.zip": lambda extracted: _cityscapes_member,
        "gtFine_trainvaltest.zip": lambda extracted: _cityscapes_member,
    },
}


# ---------------------------------------------------------------------------------------------
# Fetch / verify / unpack
# ---------------------------------------------------------------------------------------------


def _marker(extracted: Path, archive: str) -> Path:
    return extracted / _MARKER.format(archive=archive)


def _is_extracted(directory: Path, archive: str) -> bool:
    """The archive was fully unpacked, and (if still present) is the same file as then."""
    marker = _marker(directory / EXTRACTED, archive)
    if not marker.is_file():
        return False
    try:
        record = json.loads(marker.read_text())
    except ValueError:
        return False
    path = directory / archive
    return not path.is_file() or path.stat().st_size == record.get("size")


def prepare(
    name: str,
    root: str | os.PathLike[str] = "data",
    *,
    download: bool = False,
    progress: bool = True,
) -> Path:
    """Make sure dataset ``name``'s archives are verified and unpacked; return the unpack folder.

    Already-unpacked archives are neither verified nor unpacked again. Otherwise the archives are
    verified (and, with ``download=True``, fetched if missing) through
    :func:`ood.data.registry.download`, then unpacked with :func:`extract_archive`.
    Raises ``FileNotFoundError`` (missing archive, ``download=False``) or
    :class:`~ood.data.registry.ManualDownloadRequired` (Cityscapes not in place).
    """
    directory = registry.dataset_dir(name, root)
    spec = registry.DATASETS[name]
    archives = [f.name for f in spec.files]
    todo = [a for a in archives if not _is_extracted(directory, a)]
    if not todo:
        return directory / EXTRACTED

    missing = [a for a in todo if not (directory / a).is_file()]
    registry.download_if_allowed(name, root, missing, allowed=download, progress=progress)

    extracted = directory / EXTRACTED
    select_of = _SELECT.get(name, {})
    for archive in todo:  # in the spec's order: Fishyscapes masks before the frames they select
        path = directory / archive
        make_select = select_of.get(archive)
        count = extract_archive(path, extracted, select=make_select(extracted) if make_select else None)
        record = {"archive": archive, "size": path.stat().st_size, "files": count}
        marker = _marker(extracted, archive)
        tmp = marker.with_name(marker.name + ".tmp")
        tmp.write_text(json.dumps(record, indent=1) + "\n")
        os.replace(tmp, marker)
    return extracted


# ---------------------------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------------------------


def _load_image(path: Path) -> torch.Tensor:
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1).to(torch.float32).div_(255.0)


def _load_label(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        if im.mode not in ("L", "P", "I", "I;16"):
            raise ValueError(f"{path}: expected a single-channel label image, got mode {im.mode}")
        return np.asarray(im).astype(np.int64)


Transform = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class _PairDataset(Dataset):
    def __init__(self, name: str, pairs: Pairs, convert: Callable[[np.ndarray], np.ndarray], transform=None):
        if not pairs:
            raise FileNotFoundError(f"{name}: no labelled frames found")
        self.name = name
        self.frame_ids = [fid for fid, _, _ in pairs]
        self.images = [img for _, img, _ in pairs]
        self.labels = [lbl for _, _, lbl in pairs]
        self.convert = convert
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = _load_image(self.images[index])
        label = _load_label(self.labels[index])
        if label.shape != tuple(image.shape[1:]):
            raise ValueError(
                f"{self.name} frame {self.frame_ids[index]}: image {tuple(image.shape[1:])} and "
                f"label {label.shape} differ in size"
            )
        target = torch.from_numpy(self.convert(label).astype(np.int64))
        if self.transform is not None:
            image, target = self.transform(image, target)
        return image, target

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {len(self)} frames)"


class DenseOODDataset(_PairDataset):
    """``(image float32 [3,H,W] in [0,1], ood_mask int64 [H,W] in {0, 1, 255})`` pairs.

    ``frame_ids`` names each frame; ``transform(image, mask)`` (optional) is applied jointly.
    """


class CityscapesSegmentation(_PairDataset):
    """Cityscapes ``(image float32 [3,H,W] in [0,1], trainId int64 [H,W])``, 19 classes + 255."""

    classes = CITYSCAPES_CLASSES
    ignore_index = VOID


def load_dense_set(
    name: str,
    root: str | os.PathLike[str] = "data",
    *,
    download: bool = False,
    transform: Transform | None = None,
    progress: bool = True,
) -> DenseOODDataset:
    """The dense OOD evaluation set ``name`` (a key of :data:`DENSE_SETS`), unified to 0/1/255.

    The archives are read from ``<root>/<name>/`` (fetched first with ``download=True``) and
    unpacked on first use (see :func:`prepare`).
    """
    if name not in DENSE_SETS:
        hint = " (Cityscapes is the inlier set: use load_cityscapes)" if name == CITYSCAPES else ""
        raise ValueError(f"unknown dense OOD set {name!r}{hint}; known: {', '.join(DENSE_SETS)}")
    info = DENSE_SETS[name]
    extracted = prepare(name, root, download=download, progress=progress)
    return DenseOODDataset(name, info.pairs(extracted), info.unify, transform)


def _cityscapes_pairs(extracted: Path, split: str) -> Pairs:
    images = extracted / "leftImg8bit" / split
    out = []
    for image in sorted(images.glob("*/*_leftImg8bit.png")):
        fid = image.name[: -len("_leftImg8bit.png")]
        label = extracted / "gtFine" / split / image.parent.name / f"{fid}_gtFine_labelIds.png"
        out.append((fid, image, label))
    return out


def load_cityscapes(
    root: str | os.PathLike[str] = "data",
    split: str = "train",
    *,
    transform: Transform | None = None,
    progress: bool = True,
) -> CityscapesSegmentation:
    """Cityscapes ``split`` (``train``: 2975 frames, ``val``: 500) with trainId targets.

    The two login-gated archives must be in ``<root>/cityscapes/`` (see
    :data:`ood.data.registry.CITYSCAPES`); if they are not, the error says where to get them and
    where to put them.
    """
    if split not in _CITYSCAPES_SPLITS:
        raise ValueError(f"unknown Cityscapes split {split!r}; known: {', '.join(_CITYSCAPES_SPLITS)}")
    extracted = prepare(CITYSCAPES, root, progress=progress)
    pairs = _cityscapes_pairs(extracted, split)
    return CityscapesSegmentation(f"cityscapes-{split}", pairs, cityscapes_train_ids, transform)
