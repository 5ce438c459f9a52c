"""Registry of raw datasets (what to fetch, from where, with which checksums) and of benchmarks.

Adding a dataset: append a :class:`DatasetSpec` to :data:`DATASETS`. Adding a benchmark: append a
:class:`BenchmarkSpec` to :data:`BENCHMARKS` naming its loader as ``"module:function"`` (imported
lazily, so ``python -m ood.data download`` does not pay for importing torch) and the datasets it
reads.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .fetch import FetchError, RemoteFile, fetch

__all__ = [
    "DatasetSpec",
    "BenchmarkSpec",
    "ManualDownloadRequired",
    "DATASETS",
    "BENCHMARKS",
    "download",
    "download_if_allowed",
    "dataset_dir",
    "required_datasets",
]


@dataclass(frozen=True)
class DatasetSpec:
    """A raw dataset: the files stored under ``<root>/<name>/`` and how to get them."""

    name: str
    files: list[RemoteFile]
    description: str = ""
    hint: str | None = None  # shown when every mirror fails (also set on each file)
    #: Login-gated dataset: where a person downloads it. :func:`download` then never fetches; it
    #: checks that the files were put in ``<root>/<name>/`` (and verifies them) or says how to.
    manual_url: str | None = None


class ManualDownloadRequired(FetchError):
    """A login-gated dataset's files are not in place; the message says where to get and put them."""


@dataclass(frozen=True)
class BenchmarkSpec:
    """A benchmark: how to build it (``loader``, as ``"module:function"``) and what it reads."""

    name: str
    loader_path: str
    datasets: tuple[str, ...] = ()
    description: str = ""
    #: Part of the embedded default (offline, minutes on a CPU); paper profiles' benchmarks are not.
    embedded: bool = True

    @property
    def loader(self) -> Callable:
        """The loader function, imported on first use."""
        module, _, func = self.loader_path.partition(":")
        return getattr(importlib.import_module(module), func)


# ---------------------------------------------------------------------------------------------
# Fashion-MNIST
# ---------------------------------------------------------------------------------------------

# Checksums of the UNCOMPRESSED IDX files: the official .gz files and Debian's re-compressed ones
# differ byte-wise but decompress to the same content (measured on dataset-fashion-mnist
# 0.0~git20200523.55506a9-1), so this is what we verify whichever mirror served the file.
_FMNIST_FILES: dict[str, tuple[str, int]] = {
    "train-images-idx3-ubyte": (
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        47_040_016,
    ),
    "train-labels-idx1-ubyte": (
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        60_008,
    ),
    "t10k-images-idx3-ubyte": (
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        7_840_016,
    ),
    "t10k-labels-idx1-ubyte": (
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        10_008,
    ),
}
_FMNIST_MIRRORS = (
    "/usr/share/datasets/fashion-mnist",  # Debian/Ubuntu package: works offline
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com",  # official
    "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion",
)
_FMNIST_HINT = (
    "on Debian/Ubuntu: `sudo apt-get update && sudo apt-get install dataset-fashion-mnist` "
    "(offline mirror in /usr/share/datasets/fashion-mnist), then run the command again"
)

FASHION_MNIST = DatasetSpec(
    name="fashion-mnist",
    description="Fashion-MNIST (Xiao et al. 2017): 60k train / 10k test 28x28 grayscale, 10 classes",
    hint=_FMNIST_HINT,
    files=[
        RemoteFile(
            name=name,
            sha256=sha,
            size=size,
            gzip=True,
            mirrors=[f"{base}/{name}.gz" for base in _FMNIST_MIRRORS],
            hint=_FMNIST_HINT,
        )
        for name, (sha, size) in _FMNIST_FILES.items()
    ],
)

# ---------------------------------------------------------------------------------------------
# Dense OOD (paper profile): evaluation sets and the Cityscapes inlier set
# ---------------------------------------------------------------------------------------------
# Archives are stored as downloaded under <root>/<name>/ and unpacked (safely, on first use) by
# ood.data.dense, which also maps each official label encoding to 0 inlier / 1 OOD / 255 void.
# Checksums are the published ones, each with its source. Where only an MD5 is published, the
# MD5 is verified; where nothing is published (Cityscapes) the SHA-256 of the first copy is
# recorded and verified later (trust on first use, see ood.data.fetch).

# SegmentMeIfYouCan (Chan et al., NeurIPS 2021 Datasets & Benchmarks), segmentmeifyoucan.com.
# Files and MD5s: Zenodo records 5270237 / 5281633, as pinned by pytorch-ood
# (kkirchheim/pytorch-ood, dataset/img/smiyc.py); the RoadAnomaly21 MD5 is
# quoted independently (with "52.6 MB, zenodo.org/records/5270237") in a third-party README.
# Only the validation frames have public labels (10 in RoadAnomaly21, 30 in RoadObstacle21).
SMIYC_ROADANOMALY21 = DatasetSpec(
    name="smiyc-roadanomaly21",
    description="SMIYC RoadAnomaly21 (anomaly track): validation frames with labels (0/1/255)",
    files=[
        RemoteFile(
            name="dataset_AnomalyTrack.zip",
            md5="231bf79ed58924bcd33d9cbe22e61076",
            mirrors=[
                "https://zenodo.org/records/5270237/files/dataset_AnomalyTrack.zip?download=1",
                "https://zenodo.org/record/5270237/files/dataset_AnomalyTrack.zip",
            ],
            hint="the archive is on https://zenodo.org/records/5270237 (CC licences, no login)",
        )
    ],
)
SMIYC_ROADOBSTACLE21 = DatasetSpec(
    name="smiyc-roadobstacle21",
    description="SMIYC RoadObstacle21 (obstacle track): validation frames with labels (0/1/255)",
    files=[
        RemoteFile(
            name="dataset_ObstacleTrack.zip",
            md5="895fb36d18765482cc291f69e63d6da6",
            mirrors=[
                "https://zenodo.org/records/5281633/files/dataset_ObstacleTrack.zip?download=1",
                "https://zenodo.org/record/5281633/files/dataset_ObstacleTrack.zip",
            ],
            hint="the archive is on https://zenodo.org/records/5281633 (CC BY 4.0, no login)",
        )
    ],
)

# Fishyscapes Lost & Found validation (Blum et al. 2019): 100 masks from ETH ASL, images from
# Lost & Found (Pinggera et al. 2016, DHBW / 6d-vision.com, no login).
# Mask archive: SHA-256 and size from the official Fishyscapes code
# (hermannsblum/bdl-benchmark, bdlb/core/url_checksums/fishyscapes.txt); MD5 from pytorch-ood
# (dataset/img/fishyscapes.py).
# Image archive (left 8-bit images of the whole Lost & Found set, 5.8 GB; only the 100 frames
# the masks name are unpacked): SHA-256 and size from TensorFlow Datasets
# (tensorflow/datasets, tensorflow_datasets/url_checksums/lost_and_found.txt); MD5 from pytorch-ood.
FISHYSCAPES_LOSTANDFOUND = DatasetSpec(
    name="fishyscapes-lostandfound",
    description="Fishyscapes Lost & Found validation: 100 Lost & Found frames, masks 0/1/255",
    files=[
        RemoteFile(
            name="fishyscapes_lostandfound.zip",
            sha256="f0078e89f0a147060a0864feb90e8b523313a2723b1b764bce638dc425473094",
            md5="0d3bf7c0ec38bd50b84f3d8aaa4b2e26",
            size=729_335,
            mirrors=["http://robotics.ethz.ch/~asl-datasets/Fishyscapes/fishyscapes_lostandfound.zip"],
            hint="the masks are linked from https://fishyscapes.com/dataset",
        ),
        RemoteFile(
            name="leftImg8bit.zip",
            sha256="307f66002023ab597d309963b94990f5b9a8e5735ee729c3292647a66e9f2b18",
            md5="08eaa79ce05126f6bd22a3ca563746d0",
            size=5_802_953_400,
            mirrors=[
                "http://www.dhbw-stuttgart.de/~sgehrig/lostAndFoundDataset/leftImg8bit.zip",
                "http://wwwlehre.dhbw-stuttgart.de/~sgehrig/lostAndFoundDataset/leftImg8bit.zip",
            ],
            hint="Lost & Found images: http://www.6d-vision.com/lostandfounddataset (5.8 GB, no login)",
        ),
    ],
)

# Road Anomaly (Lis et al., ICCV 2019, EPFL CVLab): 60 frames, https://www.epfl.ch/labs/cvlab/data/road-anomaly/.
# MD5 from pytorch-ood (dataset/img/roadanomaly.py); no SHA-256 is published.
ROAD_ANOMALY = DatasetSpec(
    name="roadanomaly",
    description="Road Anomaly (Lis et al. 2019): 60 frames, anomaly = label >= 2, no void",
    files=[
        RemoteFile(
            name="RoadAnomaly_jpg.zip",
            md5="87a0908e5c72827824693913cf2e4fb0",
            mirrors=["https://datasets-cvlab.epfl.ch/2019-road-anomaly/RoadAnomaly_jpg.zip"],
            hint="the archive is linked from https://www.epfl.ch/labs/cvlab/data/road-anomaly/",
        )
    ],
)

# StreetHazards test (Hendrycks et al., "Scaling OOD detection for real-world settings", ICML 2022):
# URL from the official repository's README (hendrycks/anomaly-seg); MD5 from pytorch-ood
# (dataset/img/streethazards.py), the same value in several other loaders.
STREETHAZARDS_TEST = DatasetSpec(
    name="streethazards-test",
    description="StreetHazards test (CARLA, towns t5/t6): 1500 frames, anomaly = label 14",
    files=[
        RemoteFile(
            name="streethazards_test.tar",
            md5="8c547c1346b00c21b2483887110bfea7",
            mirrors=["https://people.eecs.berkeley.edu/~hendrycks/streethazards_test.tar"],
            hint="the archive is linked from https://github.com/hendrycks/anomaly-seg",
        )
    ],
)

# Cityscapes (Cordts et al., CVPR 2016): the inlier training set of the dense benchmarks. Its
# licence needs a (free) account, so nothing fetches it: a person downloads the two packages
# (packageID=1: gtFine_trainvaltest.zip, 241 MB; packageID=3: leftImg8bit_trainvaltest.zip,
# 11 GB) and puts them, still zipped, in <root>/cityscapes/. No checksum is published for them:
# the first verified copy's SHA-256 is recorded in <file>.sha256 (trust on first use).
CITYSCAPES_URL = "https://www.cityscapes-dataset.com/downloads/"
_CITYSCAPES_HINT = (
    f"Log in (free account) at {CITYSCAPES_URL} and download gtFine_trainvaltest.zip (packageID=1) and "
    "leftImg8bit_trainvaltest.zip (packageID=3), or `pip install cityscapesscripts && "
    "csDownload gtFine_trainvaltest.zip leftImg8bit_trainvaltest.zip`"
)
CITYSCAPES = DatasetSpec(
    name="cityscapes",
    description="Cityscapes fine annotations (login-gated): inlier set for the segmenters, 19 trainIds",
    manual_url=CITYSCAPES_URL,
    hint=_CITYSCAPES_HINT,
    files=[
        RemoteFile(name="leftImg8bit_trainvaltest.zip", hint=_CITYSCAPES_HINT),
        RemoteFile(name="gtFine_trainvaltest.zip", hint=_CITYSCAPES_HINT),
    ],
)

DENSE_DATASETS = [
    SMIYC_ROADANOMALY21,
    SMIYC_ROADOBSTACLE21,
    FISHYSCAPES_LOSTANDFOUND,
    ROAD_ANOMALY,
    STREETHAZARDS_TEST,
    CITYSCAPES,
]

DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in [FASHION_MNIST, *DENSE_DATASETS]}

_TITLE = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}

BENCHMARKS: dict[str, BenchmarkSpec] = {
    spec.name: spec
    for spec in [
        BenchmarkSpec(
            name="fmnist6",
            loader_path="ood.data.fmnist6:load_fmnist6",
            datasets=("fashion-mnist",),
            description="Fashion-MNIST, 6 ID classes; near-OOD = 4 held-out classes; "
            "far-OOD = digits, natural crops, noise",
        ),
        BenchmarkSpec(
            name="scenes",
            loader_path="ood.data.scenes:load_scenes",
            datasets=("fashion-mnist",),
            description="dense: 96x96 scenes of fmnist6 ID objects with per-pixel labels; test scenes "
            "with pasted anomalies (near = held-out classes, far = digits, natural crops), masks 0/1/255",
        ),
        # Paper profiles (python -m ood.pipeline.profile use cifar10 | cifar100): OpenOOD v1.5's sets
        *(
            BenchmarkSpec(
                name=id_set,
                loader_path=f"ood.data.openood:load_{id_set}",
                datasets=(id_set, other, "tiny-imagenet", "mnist", "svhn", "dtd", "places365"),
                description=f"{_TITLE[id_set]} (ID); OpenOOD v1.5 near = {_TITLE[other]}, Tiny ImageNet; far = MNIST, "
                "SVHN, Textures, Places365",
                embedded=False,
            )
            for id_set, other in (("cifar10", "cifar100"), ("cifar100", "cifar10"))
        ),
        BenchmarkSpec(
            name="imagenet",
            loader_path="ood.data.openood:load_imagenet",
            datasets=("imagenet-train", "imagenet-val", "ssb-hard", "ninco", "inaturalist", "dtd", "openimage-o"),
            description="ImageNet-1k (ID, login-gated); OpenOOD v1.5 near = SSB-hard, NINCO; far = iNaturalist, "
            "Textures, OpenImage-O",
            embedded=False,
        ),
        BenchmarkSpec(
            name="cityscapes",
            loader_path="ood.data.cityscapes:load_cityscapes_benchmark",
            datasets=("cityscapes", "smiyc-roadanomaly21", "smiyc-roadobstacle21", "fishyscapes-lostandfound"),
            description="dense: Cityscapes (ID, login-gated) scenes; OOD = SMIYC RoadAnomaly21, RoadObstacle21, "
            "Fishyscapes Lost & Found validation frames, masks 0/1/255",
            embedded=False,
        ),
    ]
}


def _unknown(kind: str, name: str, known: dict) -> ValueError:
    return ValueError(f"unknown {kind} {name!r}; known: {', '.join(sorted(known))}")


def dataset_dir(name: str, root: str | os.PathLike[str] = "data") -> Path:
    """Where dataset ``name`` lives: ``<root>/<name>``."""
    if name not in DATASETS:
        raise _unknown("dataset", name, DATASETS)
    return Path(root) / name


def download(
    name: str,
    root: str | os.PathLike[str] = "data",
    *,
    progress: bool = True,
    retries: int = 2,
    timeout: float = 30,
) -> Path:
    """Fetch (and verify) every file of dataset ``name`` into ``<root>/<name>/``; return that dir.

    Files already present with the right checksum are not fetched again.
    Raises :class:`~ood.data.fetch.FetchError` when a file cannot be fetched from any mirror.
    A login-gated dataset (``manual_url``) is never fetched: its files must already be in
    ``<root>/<name>/`` (then they are verified), else :class:`ManualDownloadRequired` (a
    ``FetchError``) says where to get them and exactly where to put them.
    """
    directory = dataset_dir(name, root)
    dataset = DATASETS[name]
    if dataset.manual_url is not None:
        missing = [f.name for f in dataset.files if not (directory / f.name).is_file()]
        if missing:
            raise ManualDownloadRequired(_manual_instructions(dataset, directory, missing))
    for spec in dataset.files:
        fetch(spec, directory, retries=retries, timeout=timeout, progress=progress)
    return directory


def download_if_allowed(name: str, root: str | os.PathLike[str], missing: list[str], *, allowed: bool,
                        progress: bool = True) -> Path:
    """:func:`download` for loaders: with ``allowed=False`` files that are ``missing`` are an
    error saying how to fetch them (login-gated sets explain themselves in :func:`download`)."""
    if missing and not allowed and DATASETS[name].manual_url is None:
        raise FileNotFoundError(
            f"{name}: {', '.join(missing)} not found in {dataset_dir(name, root).absolute()}/. Run "
            f"`python -m ood.data download {name}` (add `--root DIR` for another data root), "
            f"or pass download=True."
        )
    return download(name, root, progress=progress)  # verifies; fetches only what is missing


def _manual_instructions(dataset: DatasetSpec, directory: Path, missing: list[str]) -> str:
    lines = [
        f"{dataset.name} cannot be downloaded automatically (its licence requires a login).",
        f"Missing in {directory.absolute()}/: {', '.join(missing)}",
        f"1. {dataset.hint}." if dataset.hint else f"1. Get the files from {dataset.manual_url}.",
        f"2. Put them, as downloaded (do not unpack), in {directory.absolute()}/",
        *(f"     {directory.absolute() / f.name}" for f in dataset.files),
        f"3. Run `python -m ood.data download {dataset.name}` (add `--root DIR` for another data "
        "root): it verifies the files and records their checksums.",
    ]
    return "\n".join(lines)


def required_datasets(benchmarks: list[str] | None = None) -> list[str]:
    """Datasets needed by ``benchmarks`` (default: the embedded benchmarks), in a stable order."""
    names = [n for n, b in BENCHMARKS.items() if b.embedded] if benchmarks is None else benchmarks
    needed: dict[str, None] = {}
    for name in names:
        if name not in BENCHMARKS:
            raise _unknown("benchmark", name, BENCHMARKS)
        needed.update(dict.fromkeys(BENCHMARKS[name].datasets))
    return list(needed)


# ---------------------------------------------------------------------------------------------
# Image OOD (paper profile): CIFAR-10/100 and ImageNet as ID sets, and their OOD sets
# ---------------------------------------------------------------------------------------------
# The one table of image datasets: file, mirrors and checksum of each, with the source of each
# URL and checksum. It lives here, not in ood.data.images (loaders, archive layouts, the OpenOOD
# v1.5 near/far grouping), so that `python -m ood.data download` never imports torch.
# Archives are stored as downloaded in <root>/<name>/ and unpacked on first use by
# ood.data.images. Where only an MD5 is published, the MD5 is verified. Where nothing is published
# the SHA-256 of the first copy is recorded (trust on first use, ood.data.fetch), and
# ood.data.images refuses a first copy that is not an archive (a web page served instead of the
# file), deleting it and its record.


def _gdrive(file_id: str) -> str:
    """Google Drive's direct-download URL of a public file: the endpoint gdown ends at for large
    files (``confirm=t`` answers the virus-scan page). Built from the published file id; not tried
    from the development machine (no network there)."""
    return f"https://drive.usercontent.google.com/download?id={file_id}&export=download&confirm=t"


def _gdrive_hint(file_id: str, name: str, page: str) -> str:
    return (
        f"the file is on Google Drive (id {file_id}, linked from {page}); if the direct download fails, "
        f"`pip install gdown && gdown {file_id} -O {name}` and put {name} in the dataset folder"
    )


def _dropbox(key: str, name: str) -> list[str]:
    """A public Dropbox file: ``/s/raw/`` serves the bytes (a bare ``/s/`` link serves a page);
    ``?dl=1`` is Dropbox's other direct form."""
    return [f"https://www.dropbox.com/s/raw/{key}/{name}", f"https://www.dropbox.com/s/{key}/{name}?dl=1"]


_ODIN_HINT = "the ODIN OOD sets are linked from https://github.com/facebookresearch/odin (README)"
_OPENOOD = "Jingkang50/OpenOOD scripts/download/download.py"
_SCOOD = "Jingkang50/ICCV21_SCOOD README.md"


def _odin(name: str, file: str, key: str, md5: str | None, description: str) -> DatasetSpec:
    return DatasetSpec(
        name=name,
        description=description,
        hint=_ODIN_HINT,
        files=[RemoteFile(name=file, md5=md5, mirrors=_dropbox(key, file), hint=_ODIN_HINT)],
    )


def _drive_spec(name: str, file: str, file_id: str, page: str, description: str) -> DatasetSpec:
    hint = _gdrive_hint(file_id, file, page)
    files = [RemoteFile(name=file, mirrors=[_gdrive(file_id)], hint=hint)]
    return DatasetSpec(name=name, description=description, hint=hint, files=files)


_MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist", "http://yann.lecun.com/exdb/mnist")
_PLACES_BASE = "http://data.csail.mit.edu/places/places365"
IMAGENET_URL = "https://image-net.org/download-images.php"
_IMAGENET_HINT = (
    f"Log in (free account, non-commercial terms) at {IMAGENET_URL}, open ILSVRC 2012 and download "
    "'Validation images (all tasks)' ILSVRC2012_img_val.tar (6.3 GB) and 'Development kit (Task 1 & 2)' "
    "ILSVRC2012_devkit_t12.tar.gz (2.5 MB)"
)
_IMAGENET_TRAIN_HINT = (
    f"Log in (free account, non-commercial terms) at {IMAGENET_URL}, open ILSVRC 2012 and download "
    "'Training images (Task 1 & 2)' ILSVRC2012_img_train.tar (138 GB)"
)

IMAGE_DATASETS = [
    # CIFAR (Krizhevsky 2009), python versions. URL and MD5: torchvision (pytorch/vision,
    # torchvision/datasets/cifar.py, CIFAR10/CIFAR100.tgz_md5).
    DatasetSpec(
        name="cifar10",
        description="CIFAR-10 (python): 50k train / 10k test 32x32 RGB, 10 classes (ID; near-OOD for CIFAR-100)",
        files=[RemoteFile(name="cifar-10-python.tar.gz", md5="c58f30108f718f92721af3b95e74349a",
                          mirrors=["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"])],
    ),
    DatasetSpec(
        name="cifar100",
        description="CIFAR-100 (python): 50k train / 10k test 32x32 RGB, 100 classes (ID; near-OOD for CIFAR-10)",
        files=[RemoteFile(name="cifar-100-python.tar.gz", md5="eb9058c3a382ffc7106e4002c42a8d85",
                          mirrors=["https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"])],
    ),
    # SVHN (Netzer et al. 2011), cropped digits, test split. URL and MD5: torchvision
    # (torchvision/datasets/svhn.py, split_list["test"]).
    DatasetSpec(
        name="svhn",
        description="SVHN test_32x32.mat: 26,032 32x32 digits (far-OOD for CIFAR)",
        files=[RemoteFile(name="test_32x32.mat", md5="eb5a983be6a315427106f1b164d9cef3",
                          mirrors=["http://ufldl.stanford.edu/housenumbers/test_32x32.mat"])],
    ),
    # MNIST (LeCun et al. 1998). File names, mirrors and MD5s of the .gz files: torchvision
    # (torchvision/datasets/mnist.py, MNIST.mirrors / MNIST.resources). Stored as the .gz files
    # (their MD5 is what is published); ood.data.fmnist6.read_idx reads them.
    DatasetSpec(
        name="mnist",
        description="MNIST IDX (.gz as published): 60k train / 10k test 28x28 digits (far-OOD for CIFAR)",
        files=[
            RemoteFile(name=name, md5=md5, mirrors=[f"{base}/{name}" for base in _MNIST_MIRRORS])
            for name, md5 in [
                ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
                ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
                ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
                ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
            ]
        ],
    ),
    # Describable Textures (Cimpoi et al. 2014), "Textures" in OpenOOD. URL and MD5: torchvision
    # (torchvision/datasets/dtd.py, DTD._URL/_MD5); the same MD5 in pytorch-ood (textures.py).
    DatasetSpec(
        name="dtd",
        description="Describable Textures (DTD r1.0.1): 5,640 images, 47 classes (far-OOD for CIFAR and ImageNet)",
        files=[RemoteFile(name="dtd-r1.0.1.tar.gz", md5="fff73e5086ae6bdbea199a49dfb8a4c1",
                          mirrors=["https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz"])],
    ),
    # Tiny ImageNet (Stanford cs231n). URL and MD5: pytorch-ood (kkirchheim/pytorch-ood,
    # src/pytorch_ood/dataset/img/tinyimagenet.py); torchvision has no Tiny ImageNet.
    DatasetSpec(
        name="tiny-imagenet",
        description="Tiny ImageNet: 200 classes, 64x64; the 10,000 labelled val images (near-OOD for CIFAR)",
        files=[RemoteFile(name="tiny-imagenet-200.zip", md5="90528d7ca1a48142e341f4ef8d21d0de",
                          mirrors=["http://cs231n.stanford.edu/tiny-imagenet-200.zip"])],
    ),
    # Places365-Standard validation, 256x256 (Zhou et al. 2017). URLs and MD5s: torchvision
    # (torchvision/datasets/places365.py, _BASE_URL, _DEVKIT_META["standard"], _IMAGES_META[("val", True)]).
    DatasetSpec(
        name="places365",
        description="Places365-Standard val_256: 36,500 images, 365 scene classes (far-OOD for CIFAR)",
        files=[
            RemoteFile(name="filelist_places365-standard.tar", md5="35a0585fee1fa656440f3ab298f8479c",
                       mirrors=[f"{_PLACES_BASE}/filelist_places365-standard.tar"]),
            RemoteFile(name="val_256.tar", md5="e27b17d8d44f4af9a78502beb927f808",
                       mirrors=[f"{_PLACES_BASE}/val_256.tar"]),
        ],
    ),
    # ODIN's OOD sets (Liang et al., ICLR 2018): Dropbox links from facebookresearch/odin README.md;
    # MD5s of LSUN, LSUN_resize, Imagenet and Imagenet_resize from pytorch-ood (dataset/img/odin.py);
    # none is published for iSUN (trust on first use).
    _odin("lsun-crop", "LSUN.tar.gz", "fhtsw1m3qxlwj6h", "458a0a0ab8e5f1cb4516d7400568e460",
          "LSUN (crop), ODIN: 10,000 32x32 scene crops (far-OOD for CIFAR)"),
    _odin("lsun-resize", "LSUN_resize.tar.gz", "moqh2wh8696c3yl", "278b7b31c8cb7e804a1465a8ce03a2dc",
          "LSUN (resize), ODIN: 10,000 scenes resized to 32x32 (far-OOD for CIFAR)"),
    _odin("isun", "iSUN.tar.gz", "ssz7qxfqae0cca5", None,
          "iSUN, ODIN: 8,925 32x32 scene images (far-OOD for CIFAR; no published checksum)"),
    _odin("tin-crop", "Imagenet.tar.gz", "avgm2u562itwpkl", "7c0827e4246c3718a5ee076e999e52e5",
          "Tiny ImageNet (crop), ODIN: 10,000 32x32 crops (OOD for CIFAR)"),
    _odin("tin-resize", "Imagenet_resize.tar.gz", "kp3my3412u5k9rl", "0f9ff11d45babf2eff5fe12281d1ac31",
          "Tiny ImageNet (resize), ODIN: 10,000 images resized to 32x32 (OOD for CIFAR)"),
    # ImageNet-1k (ILSVRC 2012) validation: login-gated. Archive names and MD5s: torchvision
    # (torchvision/datasets/imagenet.py, ARCHIVE_META["val"] and ["devkit"]).
    DatasetSpec(
        name="imagenet-val",
        description="ImageNet-1k val (login-gated): 50,000 images, 1000 classes (ID set of the ImageNet benchmark)",
        manual_url=IMAGENET_URL,
        hint=_IMAGENET_HINT,
        files=[
            RemoteFile(name="ILSVRC2012_devkit_t12.tar.gz", md5="fa75699e90414af021442c21a62c3abf",
                       hint=_IMAGENET_HINT),
            RemoteFile(name="ILSVRC2012_img_val.tar", md5="29b22e2961454d5413ddabcf34fc5622", hint=_IMAGENET_HINT),
        ],
    ),
    # ImageNet-1k training set: the ID training split of the imagenet benchmark (what post-hoc
    # detectors fit on and Heatmap / MoodCat train on). Login-gated. Archive name and MD5: torchvision
    # (torchvision/datasets/imagenet.py, ARCHIVE_META["train"]). The archive holds one tar per class
    # (``n01440764.tar``, ...); ood.data.images unpacks each into ``train/<wnid>/`` on first use.
    DatasetSpec(
        name="imagenet-train",
        description="ImageNet-1k train (login-gated): 1,281,167 images, 1000 classes (ID training split of imagenet)",
        manual_url=IMAGENET_URL,
        hint=_IMAGENET_TRAIN_HINT,
        files=[RemoteFile(name="ILSVRC2012_img_train.tar", md5="1d675b47d978889d74fa0da5fadfb00e",
                          hint=_IMAGENET_TRAIN_HINT)],
    ),
    # ImageNet-O (Hendrycks et al., CVPR 2021): URL from hendrycks/natural-adv-examples README.md;
    # MD5 from pytorch-ood (dataset/img/imagenet.py, ImageNetO.tgz_md5).
    DatasetSpec(
        name="imagenet-o",
        description="ImageNet-O: 2,000 adversarially filtered OOD images for ImageNet-1k",
        files=[RemoteFile(name="imagenet-o.tar", md5="86bd7a50c1c4074fb18fc5f219d6d50b",
                          mirrors=["https://people.eecs.berkeley.edu/~hendrycks/imagenet-o.tar"])],
    ),
    # iNaturalist OOD subset of MOS (Huang & Li, CVPR 2021), the one OpenOOD v1.5 uses: URL from
    # deeplearning-wisc/large_scale_ood README.md; no checksum is published (trust on first use).
    DatasetSpec(
        name="inaturalist",
        description="iNaturalist OOD subset (MOS): 10,000 images of classes not in ImageNet-1k (far-OOD for ImageNet)",
        files=[RemoteFile(
            name="iNaturalist.tar.gz",
            mirrors=["http://pages.cs.wisc.edu/~huangrui/imagenet_ood_dataset/iNaturalist.tar.gz",
                     "https://pages.cs.wisc.edu/~huangrui/imagenet_ood_dataset/iNaturalist.tar.gz"],
            hint="the archive is linked from https://github.com/deeplearning-wisc/large_scale_ood (README)",
        )],
    ),
    # NINCO (Bitterwolf et al., ICML 2023): Zenodo record 8013288; URL and MD5 from pytorch-ood
    # (dataset/img/ninco.py). Only NINCO_OOD_classes (the OOD set proper) is unpacked.
    DatasetSpec(
        name="ninco",
        description="NINCO: 5,879 hand-checked OOD images in 64 classes (near-OOD for ImageNet)",
        files=[RemoteFile(
            name="NINCO_all.tar.gz",
            md5="b9ffae324363cd900a81ce3c367cd834",
            mirrors=["https://zenodo.org/records/8013288/files/NINCO_all.tar.gz?download=1",
                     "https://zenodo.org/record/8013288/files/NINCO_all.tar.gz"],
            hint="the archive is on https://zenodo.org/records/8013288 (no login)",
        )],
    ),
    # Sets that only OpenOOD hosts as published archives, on Google Drive: ids from
    # Jingkang50/OpenOOD (scripts/download/download.py, download_id_dict), file names
    # <key>.zip as that script expects them. No checksum is published (trust on first use).
    # OpenImage-O's own source (haoqiwang/vim) is an image list of Open Images V3, SSB-hard's
    # (sgvaze/SSB) a list of ImageNet-21K images (login-gated), and no public archive of the full
    # Species set (Hendrycks et al. 2022) was found: OpenOOD's species_sub is registered instead.
    _drive_spec("openimage-o", "openimage_o.zip", "1VUFXnB_z70uHfdgJG2E_pjYOcEgqM7tE", _OPENOOD,
                "OpenImage-O (ViM), OpenOOD's archive: Open Images V3 test images (far-OOD for ImageNet)"),
    _drive_spec("ssb-hard", "ssb_hard.zip", "1PzkA-WGG8Z18h0ooL_pDdz9cO-DCIouE", _OPENOOD,
                "SSB-hard (Vaze et al. 2022), OpenOOD's archive: ImageNet-21K images (near-OOD for ImageNet)"),
    _drive_spec("species-sub", "species_sub.zip", "1-JCxDx__iFMExkYRMylnGJYTPvyuX6aq", _OPENOOD,
                "Species (Hendrycks et al. 2022), OpenOOD's subset: OOD for ImageNet"),
    _drive_spec("openood-imglist", "benchmark_imglist.zip", "1lI1j0_fDDvjIt9JlWAw09X8ks-yrR_H1", _OPENOOD,
                "OpenOOD v1.5 benchmark image lists (which images of OpenOOD's folders each set uses)"),
    # SC-OOD benchmark (Yang et al., ICCV 2021), used by MoodCat (cure-lab/MOODCat runs
    # ICCV21_SCOOD's loader): Google Drive id from Jingkang50/ICCV21_SCOOD README.md (an NTU
    # OneDrive copy is linked there too). No checksum is published (trust on first use).
    _drive_spec("scood", "scood_benchmark.zip", "1cbLXZ39xnJjxXnDM7g2KODHIjE0Qj4gu", _SCOOD,
                "SC-OOD benchmark (images + imglist): CIFAR-10/100 with semantically coherent OOD sets (MoodCat)"),
]

DATASETS.update({spec.name: spec for spec in IMAGE_DATASETS})
