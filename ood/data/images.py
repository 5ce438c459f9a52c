"""Image OOD datasets of the paper profile, loaded from their official releases.

Every set loads as a torch ``Dataset`` of ``(image, label)``:

* ``image``: ``float32`` tensor ``[C, H, W]`` in ``[0, 1]`` (RGB; MNIST has one channel), not
  normalised and **not resized**: sizes differ from set to set (32×32 CIFAR, SVHN and the ODIN
  sets, 28×28 MNIST, 64×64 Tiny ImageNet, 256×256 Places365, full-size DTD and ImageNet images),
  so a benchmark passes a ``transform`` (image → image) that resizes or crops;
* ``label``: ``int64`` scalar, the set's own class index where it has classes (``classes[i]``
  names class ``i``), else :data:`~ood.data.benchmark.OOD_LABEL` (−1). A benchmark relabels its
  OOD sets to −1 itself.

What is read from each official release (registry names; files, URLs and checksums are in the
one table :data:`ood.data.registry.IMAGE_DATASETS`):

=================  =================================================  ===========================
set                official format                                    loaded (split: size)
=================  =================================================  ===========================
cifar10, cifar100  pickled batches (``data`` uint8 N×3072, CHW rows;  test: 10,000, train: 50,000
                   ``labels`` / ``fine_labels``; class names in
                   ``batches.meta`` / ``meta``)
svhn               ``test_32x32.mat``: ``X`` H×W×C×N, ``y`` 1..10     test: 26,032
                   with 10 for the digit 0 (→ 0, as torchvision)
mnist              IDX ``.gz`` (read by ``fmnist6.read_idx``)         test: 10,000, train: 60,000
dtd                ``dtd/images/<class>/*.jpg``, 47 classes (sorted)  all: 5,640
tiny-imagenet      ``val/images`` + ``val/val_annotations.txt``;      val: 10,000
                   class = index of the wnid in sorted ``wnids.txt``
places365          ``val_256/*.jpg`` + ``places365_val.txt``;         val: 36,500
                   class names from ``categories_places365.txt``
imagenet-train     one tar per class (``n01440764.tar``, ...), each   train: 1,281,167
                   unpacked into ``train/<wnid>/`` on first use;
                   class = index of the wnid in sorted order
imagenet-val       flat ``ILSVRC2012_val_*.JPEG`` + devkit            val: 50,000
                   ``meta.mat`` and ground truth; class = index of
                   the wnid among the sorted 1000 leaf wnids
                   (torchvision's order)
lsun-crop, …       every image under the unpacked archive, label −1:  all: see
                   lsun-resize, isun, tin-crop, tin-resize (ODIN),    ``python -m ood.data list``
                   imagenet-o, inaturalist, ninco (only
                   ``NINCO_OOD_classes``), openimage-o, ssb-hard,
                   species-sub
=================  =================================================  ===========================

Two sets are image *lists* over image folders (``path label`` lines, the label an int or a dict
with ``"label"``): SC-OOD (:func:`load_scood`, the benchmark MoodCat evaluates on) and OpenOOD's
``benchmark_imglist`` (read with :func:`load_imglist` against OpenOOD's image folders).

Archives stay as downloaded in ``<root>/<name>/`` and are unpacked on first use into
``<root>/<name>/extracted/`` with :func:`ood.data.dense.extract_archive` (no absolute paths,
``..``, links or devices; atomic per file; a marker per archive, so nothing is unpacked or hashed
twice). Single files (SVHN's ``.mat``, MNIST's ``.gz``) are read where they are. Only what is
loaded is unpacked: Tiny ImageNet's val split, Places365's category and val lists, ImageNet's
devkit metadata, NINCO's OOD classes.

Public API::

    load_image_set(name, root="data", *, split=None, download=False, transform=None) -> ImageDataset
    load_scood(root="data", benchmark="cifar10", name="tin", stage="test", ...) -> ImageDataset
    load_imglist(list_file, image_root, *, transform=None) -> ImageDataset
    prepare(name, root="data", *, download=False) -> Path     # fetch/verify + unpack only
    IMAGE_SETS, OPENOOD_V15
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import re
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import scipy.io
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from . import registry
from .benchmark import OOD_LABEL
from .dense import EXTRACTED, _is_extracted, _load_image, _marker, _safe_member_path, extract_archive
from .fetch import FetchError, tofu_lock_path
from .fmnist6 import read_idx

__all__ = [
    "IMAGE_SETS",
    "OPENOOD_V15",
    "ImageSetInfo",
    "ImageDataset",
    "ArrayImageDataset",
    "FileImageDataset",
    "load_image_set",
    "load_scood",
    "load_imglist",
    "prepare",
]

# ---------------------------------------------------------------------------------------------
# OpenOOD v1.5 grouping
# ---------------------------------------------------------------------------------------------

#: OpenOOD v1.5 (Zhang et al. 2023) near/far OOD sets per ID set, as registry dataset names.
#: Source: Jingkang50/OpenOOD, openood/evaluation_api/datasets.py (``DATA_INFO[...]["ood"]``),
#: configs/datasets/{cifar10,cifar100,imagenet}/*_ood.yml and the README's benchmark list. OpenOOD
#: calls Tiny ImageNet ``tin``, DTD ``texture`` (``textures`` for ImageNet), SSB-hard ``ssb_hard``
#: and OpenImage-O ``openimage_o``. ImageNet-200 (OpenOOD's 200-class subset of ImageNet-1k, defined
#: by its image lists) has the same OOD sets as ImageNet.
#:
#: What differs: OpenOOD evaluates on its own image lists (``openood-imglist``) over its own copies
#: of the images, which are curated subsets: e.g. its Tiny ImageNet test list leaves out the images
#: whose classes overlap CIFAR, and the 20 categories it holds out as the validation OOD split
#: (OpenOOD wiki, "OpenOOD v1.5 change log"); its Places365 is a subset too. :func:`load_image_set`
#: gives the official releases whole (Tiny ImageNet val 10,000, Places365 val 36,500, MNIST test
#: 10,000), so numbers on these sets are not OpenOOD's to the digit; :func:`load_imglist` applies
#: OpenOOD's lists to OpenOOD's image folders where exact comparability matters.
OPENOOD_V15: dict[str, dict[str, tuple[str, ...]]] = {
    "cifar10": {"near": ("cifar100", "tiny-imagenet"), "far": ("mnist", "svhn", "dtd", "places365")},
    "cifar100": {"near": ("cifar10", "tiny-imagenet"), "far": ("mnist", "svhn", "dtd", "places365")},
    "imagenet": {"near": ("ssb-hard", "ninco"), "far": ("inaturalist", "dtd", "openimage-o")},
}

# ---------------------------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------------------------

Transform = Callable[[torch.Tensor], torch.Tensor]
#: What a set's reader returns: images (uint8 ``[N, C, H, W]``) or image files, labels, class names.
Content = tuple[np.ndarray | list[Path], list[int], list[str]]


class ImageDataset(Dataset):
    """``(image float32 [C,H,W] in [0,1], label int64)``; ``transform(image)`` (optional) is applied
    to each image. ``classes`` names the labels (empty: every label is ``OOD_LABEL``)."""

    def __init__(self, name: str, labels: Sequence[int], classes: list[str], transform: Transform | None):
        if len(labels) == 0:
            raise FileNotFoundError(f"{name}: no images found")
        self.name = name
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        self.classes = list(classes)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def _image(self, index: int) -> torch.Tensor:
        raise NotImplementedError

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self._image(index)
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[index]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {len(self)} images, {len(self.classes)} classes)"


class ArrayImageDataset(ImageDataset):
    """Images held in memory as ``uint8 [N, C, H, W]`` (CIFAR, SVHN, MNIST: small, fixed size)."""

    def __init__(self, name: str, images: np.ndarray, labels: Sequence[int], classes: list[str],
                 transform: Transform | None = None):
        super().__init__(name, labels, classes, transform)
        if images.dtype != np.uint8 or images.ndim != 4 or len(images) != len(self.labels):
            raise ValueError(f"{name}: expected uint8 [N, C, H, W] images for {len(self.labels)} labels, "
                             f"got {images.dtype} {images.shape}")
        self.images = torch.from_numpy(np.ascontiguousarray(images))

    def _image(self, index: int) -> torch.Tensor:
        return self.images[index].to(torch.float32).div_(255.0)


class FileImageDataset(ImageDataset):
    """Images read from files on access (converted to RGB). ``paths[i]`` is image ``i``'s file."""

    def __init__(self, name: str, paths: list[Path], labels: Sequence[int], classes: list[str],
                 transform: Transform | None = None):
        super().__init__(name, labels, classes, transform)
        self.paths = list(paths)

    def _image(self, index: int) -> torch.Tensor:
        return _load_image(self.paths[index])


# ---------------------------------------------------------------------------------------------
# Official formats
# ---------------------------------------------------------------------------------------------

# The CIFAR batches are pickles, and unpickling runs whatever the pickle names. These are the
# only globals a CIFAR batch needs (numpy arrays; _codecs.encode for bytes in protocol-2 pickles
# written by Python 3), so a swapped or tampered archive cannot execute code.
_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a dataset pickle")
        if name == "_reconstruct":  # Python 2 pickles name numpy.core, which numpy 2 renamed
            module = "numpy._core.multiarray"
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as fh:
        data = _ArrayUnpickler(fh, encoding="latin1").load()  # latin1: the batches are Python 2 pickles
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(data).__name__}")
    return data


def _cifar(folder: str, batches: dict[str, list[str]], meta: str, names_key: str,
           labels_key: str) -> Callable[[Path, str], Content]:
    def build(directory: Path, split: str) -> Content:
        base = directory / EXTRACTED / folder
        data, labels = [], []
        for batch in batches[split]:
            entry = _unpickle(base / batch)
            data.append(np.asarray(entry["data"], dtype=np.uint8))
            labels.extend(int(x) for x in entry[labels_key])
        images = np.concatenate(data).reshape(-1, 3, 32, 32)  # each row: 1024 R, 1024 G, 1024 B
        return images, labels, list(_unpickle(base / meta)[names_key])

    return build


def _svhn(directory: Path, split: str) -> Content:
    mat = scipy.io.loadmat(directory / f"{split}_32x32.mat")
    images = np.transpose(mat["X"], (3, 2, 0, 1))  # H x W x C x N -> N x C x H x W
    labels = (mat["y"].reshape(-1).astype(np.int64) % 10).tolist()  # digit 0 is stored as 10
    return images, labels, [str(d) for d in range(10)]


def _mnist(directory: Path, split: str) -> Content:
    prefix = "t10k" if split == "test" else "train"
    images = read_idx(directory / f"{prefix}-images-idx3-ubyte.gz")[:, None]
    labels = read_idx(directory / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64).tolist()
    return images, labels, [str(d) for d in range(10)]


_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def _is_image(path: Path, base: Path) -> bool:
    """An image file, not archive clutter (``__MACOSX/``, macOS ``._*`` resource forks, dot files)."""
    parts = path.relative_to(base).parts
    return (
        path.suffix.lower() in _IMAGE_SUFFIXES
        and path.is_file()
        and not any(p.startswith((".", "__MACOSX")) for p in parts)
    )


def _images_under(base: Path) -> list[Path]:
    return sorted((p for p in base.rglob("*") if _is_image(p, base)), key=lambda p: p.as_posix())


def _unlabelled(directory: Path, split: str) -> Content:
    paths = _images_under(directory / EXTRACTED)
    return paths, [OOD_LABEL] * len(paths), []


def _dtd(directory: Path, split: str) -> Content:
    base = directory / EXTRACTED / "dtd" / "images"
    classes = sorted(p.name for p in base.iterdir() if p.is_dir())
    paths, labels = [], []
    for label, name in enumerate(classes):
        found = _images_under(base / name)
        paths += found
        labels += [label] * len(found)
    return paths, labels, classes


def _tiny_imagenet(directory: Path, split: str) -> Content:
    base = directory / EXTRACTED / "tiny-imagenet-200"
    wnids = sorted((base / "wnids.txt").read_text().split())
    index = {w: i for i, w in enumerate(wnids)}
    paths, labels = [], []
    for line in (base / "val" / "val_annotations.txt").read_text().splitlines():
        if line.strip():
            file, wnid = line.split()[:2]  # file, wnid, then the box
            paths.append(base / "val" / "images" / file)
            labels.append(index[wnid])
    return paths, labels, wnids


def _places365(directory: Path, split: str) -> Content:
    base = directory / EXTRACTED
    classes = {}
    for line in (base / "categories_places365.txt").read_text().splitlines():
        if line.strip():
            name, idx = line.split()  # "/a/airfield 0"
            classes[int(idx)] = name
    paths, labels = [], []
    for line in (base / f"places365_{split}.txt").read_text().splitlines():
        if line.strip():
            file, idx = line.split()  # "Places365_val_00000001.jpg 165"
            paths.append(base / f"{split}_256" / file.lstrip("/"))
            labels.append(int(idx))
    return paths, labels, [classes[i] for i in range(len(classes))]


_IMAGENET_DEVKIT = "ILSVRC2012_devkit_t12/data"
_IMAGENET_VAL = re.compile(r"^ILSVRC2012_val_(\d{8})\.JPEG$")


def _imagenet_val(directory: Path, split: str) -> Content:
    base = directory / EXTRACTED
    synsets = scipy.io.loadmat(base / _IMAGENET_DEVKIT / "meta.mat", squeeze_me=True)["synsets"]
    leaves = [s for s in synsets if int(s["num_children"]) == 0]  # the 1000 classes (ids 1..1000)
    wnid_of = {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in leaves}
    words = {str(s["WNID"]): str(s["words"]) for s in leaves}
    wnids = sorted(words)  # torchvision's class order: ImageFolder over wnid folders
    index = {w: i for i, w in enumerate(wnids)}
    truth = (base / _IMAGENET_DEVKIT / "ILSVRC2012_validation_ground_truth.txt").read_text().split()
    paths, labels = [], []
    for path in sorted(base.glob("ILSVRC2012_val_*.JPEG")):
        m = _IMAGENET_VAL.match(path.name)
        if m:
            paths.append(path)
            labels.append(index[wnid_of[int(truth[int(m.group(1)) - 1])]])
    return paths, labels, [words[w] for w in wnids]


_IMAGENET_CLASS_TAR = re.compile(r"^(n\d{8})\.tar$")


def _unpack_class_tars(extracted: Path) -> None:
    """ImageNet's training archive holds one tar per class (``n01440764.tar``: its ``*.JPEG``):
    each is unpacked into ``train/<wnid>/`` and deleted (138 GB once, not twice). An interrupted
    run unpacks the class it was on again."""
    inner = sorted(p for p in extracted.glob("n*.tar") if _IMAGENET_CLASS_TAR.match(p.name))
    for tar in tqdm(inner, desc="unpacking ImageNet classes", disable=len(inner) < 2):
        extract_archive(tar, extracted / "train" / tar.stem)
        tar.unlink()


def _imagenet_train(directory: Path, split: str) -> Content:
    """Class ``i`` is the ``i``-th wnid in sorted order, as in :func:`_imagenet_val` (and
    torchvision); the class names are the wnids."""
    base = directory / EXTRACTED / "train"
    wnids = sorted(p.name for p in base.iterdir() if p.is_dir())
    paths, labels = [], []
    for label, wnid in enumerate(wnids):
        files = sorted(p for p in (base / wnid).iterdir() if p.suffix == ".JPEG")
        paths += files
        labels += [label] * len(files)
    return paths, labels, wnids


# ---------------------------------------------------------------------------------------------
# The sets
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageSetInfo:
    """How one registry dataset becomes a Dataset.

    Attributes:
        name: the registry dataset (``<root>/<name>/`` holds its files).
        build: ``(dataset folder, split) -> Content`` (images or image files, labels, class names).
        splits: the splits it has; the first is the default.
        select: which archive members to unpack (relative POSIX path -> bool); ``None``: all.
        nested: unpacks archives inside the unpacked ones (the ``extracted/`` folder), once.
    """

    name: str
    build: Callable[[Path, str], Content]
    splits: tuple[str, ...] = ("all",)
    select: Callable[[str], bool] | None = None
    nested: Callable[[Path], None] | None = None


_CIFAR10_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
_TIN_KEEP = ("tiny-imagenet-200/val/", "tiny-imagenet-200/wnids.txt", "tiny-imagenet-200/words.txt")
_PLACES_KEEP = ("categories_places365.txt", "places365_val.txt", "val_256/")
_IMAGENET_KEEP = (f"{_IMAGENET_DEVKIT}/meta.mat", f"{_IMAGENET_DEVKIT}/ILSVRC2012_validation_ground_truth.txt")

IMAGE_SETS: dict[str, ImageSetInfo] = {
    info.name: info
    for info in [
        ImageSetInfo("cifar10", _cifar("cifar-10-batches-py", _CIFAR10_BATCHES, "batches.meta", "label_names",
                                       "labels"), ("test", "train")),
        ImageSetInfo("cifar100", _cifar("cifar-100-python", {"train": ["train"], "test": ["test"]}, "meta",
                                        "fine_label_names", "fine_labels"), ("test", "train")),
        ImageSetInfo("svhn", _svhn, ("test",)),
        ImageSetInfo("mnist", _mnist, ("test", "train")),
        ImageSetInfo("dtd", _dtd, select=lambda p: p.startswith("dtd/images/")),
        ImageSetInfo("tiny-imagenet", _tiny_imagenet, ("val",), select=lambda p: p.startswith(_TIN_KEEP)),
        ImageSetInfo("places365", _places365, ("val",), select=lambda p: p.startswith(_PLACES_KEEP)),
        ImageSetInfo("imagenet-train", _imagenet_train, ("train",),
                     select=lambda p: _IMAGENET_CLASS_TAR.match(p) is not None, nested=_unpack_class_tars),
        ImageSetInfo("imagenet-val", _imagenet_val, ("val",),
                     select=lambda p: p in _IMAGENET_KEEP or _IMAGENET_VAL.match(p) is not None),
        *(ImageSetInfo(name, _unlabelled) for name in (
            "lsun-crop", "lsun-resize", "isun", "tin-crop", "tin-resize", "imagenet-o", "inaturalist",
            "openimage-o", "ssb-hard", "species-sub")),
        ImageSetInfo("ninco", _unlabelled, select=lambda p: p.startswith("NINCO/NINCO_OOD_classes/")),
    ]
}

# ---------------------------------------------------------------------------------------------
# Fetch / verify / unpack
# ---------------------------------------------------------------------------------------------

_ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")


def _is_archive(name: str) -> bool:
    return name.lower().endswith(_ARCHIVE_SUFFIXES)


def _readable(path: Path) -> bool:
    return zipfile.is_zipfile(path) if path.name.lower().endswith(".zip") else tarfile.is_tarfile(path)


def _reject_non_archive(name: str, file: registry.RemoteFile, path: Path) -> None:
    """A first copy trusted on first use that is no archive is a web page served in its place (a
    quota or login page of Google Drive or Dropbox): delete it and its recorded checksum, so the
    next attempt starts clean instead of verifying against the page."""
    if _readable(path):
        return
    message = f"{name}: {path.name} is not a zip or tar archive (a web page served instead of the file?)"
    if not file.pinned:
        tofu_lock_path(path).unlink(missing_ok=True)
        path.unlink()
        message += "; it was deleted, with the checksum recorded on first use"
    raise FetchError(message + (f".\nWhat to do: {file.hint}" if file.hint else "."))


def _done(directory: Path, file: str) -> bool:
    """Unpacked (archives; they may be deleted afterwards) or verified (single files, still there)."""
    return _is_extracted(directory, file) and (_is_archive(file) or (directory / file).is_file())


def prepare(name: str, root: str | os.PathLike[str] = "data", *, download: bool = False, progress: bool = True) -> Path:
    """Make sure dataset ``name``'s files are verified and its archives unpacked; return
    ``<root>/<name>/`` (archives unpacked into its ``extracted/``).

    Files already handled are neither verified nor unpacked again (a marker per file). Otherwise
    every file is verified (and, with ``download=True``, fetched if missing) through
    :func:`ood.data.registry.download`, then archives are unpacked with
    :func:`~ood.data.dense.extract_archive`. Raises ``FileNotFoundError`` (missing file,
    ``download=False``), :class:`~ood.data.registry.ManualDownloadRequired` (ImageNet not in place)
    or :class:`~ood.data.fetch.FetchError` (no mirror served a file with the right checksum).
    """
    directory = registry.dataset_dir(name, root)
    spec = registry.DATASETS[name]
    todo = [f for f in spec.files if not _done(directory, f.name)]
    if not todo:
        return directory

    missing = [f.name for f in todo if not (directory / f.name).is_file()]
    registry.download_if_allowed(name, root, missing, allowed=download, progress=progress)

    info = IMAGE_SETS.get(name)
    extracted = directory / EXTRACTED
    for file in todo:
        path = directory / file.name
        count = 0
        if _is_archive(file.name):
            _reject_non_archive(name, file, path)
            count = extract_archive(path, extracted, select=info.select if info else None)
            if info and info.nested:
                info.nested(extracted)
        extracted.mkdir(parents=True, exist_ok=True)
        marker = _marker(extracted, file.name)
        tmp = marker.with_name(marker.name + ".tmp")
        tmp.write_text(json.dumps({"archive": file.name, "size": path.stat().st_size, "files": count}, indent=1) + "\n")
        os.replace(tmp, marker)
    return directory


# ---------------------------------------------------------------------------------------------
# Public loaders
# ---------------------------------------------------------------------------------------------


def load_image_set(
    name: str,
    root: str | os.PathLike[str] = "data",
    *,
    split: str | None = None,
    download: bool = False,
    transform: Transform | None = None,
    progress: bool = True,
) -> ImageDataset:
    """Image set ``name`` (a key of :data:`IMAGE_SETS`), split ``split`` (default: its first).

    The files are read from ``<root>/<name>/`` (fetched first with ``download=True``) and unpacked
    on first use (see :func:`prepare`). ImageNet is login-gated: the error says what to put where.
    """
    if name not in IMAGE_SETS:
        raise ValueError(f"unknown image set {name!r}; known: {', '.join(IMAGE_SETS)}")
    info = IMAGE_SETS[name]
    split = info.splits[0] if split is None else split
    if split not in info.splits:
        raise ValueError(f"unknown split {split!r} of {name}; known: {', '.join(info.splits)}")
    directory = prepare(name, root, download=download, progress=progress)
    content, labels, classes = info.build(directory, split)
    title = f"{name}-{split}"
    if isinstance(content, np.ndarray):
        return ArrayImageDataset(title, content, labels, classes, transform)
    return FileImageDataset(title, content, labels, classes, transform)


def load_imglist(
    list_file: str | os.PathLike[str],
    image_root: str | os.PathLike[str],
    *,
    transform: Transform | None = None,
) -> FileImageDataset:
    """The images an OpenOOD or SC-OOD image list names, relative to ``image_root``.

    Each line is ``<relative path> <extras>``: ``extras`` an int label, or a dict literal with a
    ``"label"`` key (parsed with :func:`ast.literal_eval`, never ``eval``). A path that would leave
    ``image_root`` (absolute, ``..``) is refused.
    """
    list_file, image_root = Path(list_file), Path(image_root)
    paths, labels = [], []
    for n, line in enumerate(list_file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        rel, _, extras = line.strip().partition(" ")
        safe = _safe_member_path(rel)
        value = ast.literal_eval(extras.strip()) if extras.strip() else None
        label = value.get("label") if isinstance(value, dict) else value
        if safe is None or not isinstance(label, int):
            raise ValueError(f"{list_file}:{n}: expected '<path> <int label or {{\"label\": int}}>', got {line!r}")
        paths.append(image_root / safe)
        labels.append(label)
    return FileImageDataset(list_file.stem, paths, labels, [], transform)


def _scood_root(extracted: Path) -> Path:
    """The folder holding SC-OOD's ``images/`` and ``imglist/`` (the archive's top folder is not
    documented, so it is looked for, two levels deep at most)."""
    for candidate in [extracted, *sorted(extracted.glob("*")), *sorted(extracted.glob("*/*"))]:
        if (candidate / "images").is_dir() and (candidate / "imglist").is_dir():
            return candidate
    raise FileNotFoundError(f"no folder with images/ and imglist/ in {extracted}")


def load_scood(
    root: str | os.PathLike[str] = "data",
    benchmark: str = "cifar10",
    name: str = "tin",
    stage: str = "test",
    *,
    download: bool = False,
    transform: Transform | None = None,
    progress: bool = True,
) -> FileImageDataset:
    """SC-OOD set ``name`` of ``benchmark`` (``cifar10`` or ``cifar100``), as the official loader
    reads it (Jingkang50/ICCV21_SCOOD, ``scood/data/utils.py``): the list
    ``imglist/benchmark_<benchmark>/<stage>_<name>.txt`` over ``images/``. The CIFAR-10 test
    benchmark's OOD sets are ``texture, svhn, cifar100, tin, lsun, places365`` (configs/test/cifar10.yml);
    labels are the lists' own (−1 for OOD, the ID class for semantically coherent images)."""
    directory = prepare("scood", root, download=download, progress=progress)
    base = _scood_root(directory / EXTRACTED)
    list_file = base / "imglist" / f"benchmark_{benchmark}" / f"{stage}_{name}.txt"
    if not list_file.is_file():
        lists = sorted(p.relative_to(base / "imglist").as_posix() for p in (base / "imglist").rglob("*.txt"))
        raise FileNotFoundError(f"no SC-OOD list {list_file}; available: {', '.join(lists)}")
    return load_imglist(list_file, base / "images", transform=transform)
