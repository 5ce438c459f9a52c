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
    """Datasets needed by ``benchmarks`` (default: every known benchmark), in a stable order."""
    names = list(BENCHMARKS) if benchmarks is None else benchmarks
    needed: dict[str, None] = {}
    for name in names:
        if name not in BENCHMARKS:
            raise _unknown("benchmark", name, BENCHMARKS)
        needed.update(dict.fromkeys(BENCHMARKS[name].datasets))
    return list(needed)

