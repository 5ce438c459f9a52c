"""Published numbers next to ours: the paper-vs-ours table of the report (issue 11, part 5).

:data:`PUBLISHED` holds every published number the report compares with, one :class:`Published`
row each, as data: which profile (``cifar10``, ``cifar100``, ``imagenet``, ``cityscapes``), which
detector (named as our pipeline names it, e.g. ``maxlogit`` for OpenOOD's MLS), which set
(``near``/``far`` = the OpenOOD v1.5 group averages, or one OOD set by our registry name), which
metric (our names: ``auroc``, ``fpr95``, ``aupr_in``, ``aupr_out``; dense ``ap``, ``fpr95``,
``auroc``), the value as a fraction in [0, 1] (sources print percent: :func:`_row` divides by 100)
and the source: a citation with the file or table and a URL, so every number can be traced.

Only numbers read from a stored copy of their source are here, none from memory. What is in:

* OpenOOD v1.5 leaderboard (Zhang et al. 2023, arXiv 2306.09301), the ``results/*.csv`` files of
  its website branch (``zjysteven/OpenOOD``, branch ``leaderboard``, commit 28d3a40, 2025-07-19):
  near-/far-OOD AUROC of every post-hoc baseline we run that the leaderboard lists, for CIFAR-10,
  CIFAR-100 (ResNet-18, cross-entropy, 100 epochs) and ImageNet-1K (torchvision ResNet-50). The
  leaderboard gives AUROC only (mean ± std over training runs for CIFAR; the std is not kept here).

What is not, because no stored copy of the number could be read: OpenOOD v1.5 FPR95 and per-set
numbers (only in the paper's tables), and the four method papers' own results (MoodCat, ECCV 2022;
DiffGuard, ICCV 2023; Heatmap OOD, WACV 2023; NFlowJS, arXiv 2112.12833): their repositories'
READMEs report no numbers. Left out on purpose: the leaderboard's NNGuide row (ImageNet-1K on a
RegNet-Y-16GF, not ResNet-50), its Swin-T / ViT-B/16 rows and every training-method row. Add rows
here, with their source, when a copy is at hand; a row with a specific set name is only compared
where our profile evaluates that exact set (our registry's set names, e.g. ``ssb-hard``).

:func:`paper_vs_ours` pairs these rows with our ``reports/metrics.json`` for one benchmark.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

__all__ = ["PROFILES", "Published", "PUBLISHED", "COLUMNS", "published_frame", "paper_vs_ours"]

#: The paper profiles a published number can belong to.
PROFILES = ("cifar10", "cifar100", "imagenet", "cityscapes")

#: Columns of :func:`paper_vs_ours`.
COLUMNS = ["detector", "set", "metric", "published", "ours", "difference", "source"]


@dataclass(frozen=True)
class Published:
    """One published number: ``value`` is a fraction in [0, 1]; ``source`` cites table/file and URL."""

    profile: str
    detector: str
    set: str
    metric: str
    value: float
    source: str


def _row(profile: str, detector: str, set_: str, metric: str, percent: float, source: str) -> Published:
    """A :class:`Published` row from a number printed in percent (as the sources print them)."""
    return Published(profile, detector, set_, metric, round(percent / 100, 6), source)


# ---------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------

_LEADERBOARD = "https://github.com/zjysteven/OpenOOD/blob/28d3a40b613c452af379e687f46cbb426a9ea36b/results/"
_CIFAR_SETS = "near = CIFAR-{other} + TIN, far = MNIST + SVHN + Texture + Places365"

# OpenOOD v1.5 leaderboard, CIFAR-10: ResNet-18 trained 100 epochs with cross-entropy (ID accuracy
# 95.06 ± 0.30), post-hoc detector on top; AUROC averaged over the group's sets.
_C10 = ("OpenOOD v1.5 leaderboard (Zhang et al. 2023, arXiv 2306.09301), CIFAR-10, ResNet-18 "
        f"CrossEntropy 100 epochs, {_CIFAR_SETS.format(other='100')}; results/cifar10.csv "
        f"{_LEADERBOARD}cifar10.csv")
# Same file, entries contributed by the methods' authors: another ResNet-18 checkpoint (ID accuracy
# 95.22 ± 0.00, one run).
_C10_CONTRIB = _C10.replace("CrossEntropy 100 epochs",
                           "CrossEntropy 100 epochs, contributed entry (ID acc. 95.22, one run)")

# OpenOOD v1.5 leaderboard, CIFAR-100: as CIFAR-10 (ID accuracy 77.25 ± 0.10).
_C100 = ("OpenOOD v1.5 leaderboard (Zhang et al. 2023, arXiv 2306.09301), CIFAR-100, ResNet-18 "
         f"CrossEntropy 100 epochs, {_CIFAR_SETS.format(other='10')}; results/cifar100.csv "
         f"{_LEADERBOARD}cifar100.csv")
_C100_CONTRIB = _C100.replace("CrossEntropy 100 epochs",
                             "CrossEntropy 100 epochs, contributed entry (ID acc. 77.18, one run)")

# OpenOOD v1.5 leaderboard, ImageNet-1K: torchvision ResNet-50 checkpoint (ID accuracy 76.18); the
# file also lists Swin-T and ViT-B/16 rows, which are left out (another classifier).
_IN1K = ("OpenOOD v1.5 leaderboard (Zhang et al. 2023, arXiv 2306.09301), ImageNet-1K, torchvision "
         "ResNet-50, near = SSB-hard + NINCO, far = iNaturalist + Textures + OpenImage-O; "
         f"results/imagenet1k_ood.csv {_LEADERBOARD}imagenet1k_ood.csv")
_IN1K_CONTRIB = _IN1K.replace("torchvision ResNet-50", "torchvision ResNet-50, contributed entry (ID acc. 76.19)")


# ---------------------------------------------------------------------------------------------
# The table (percent as printed; one row per line, grouped by source)
# ---------------------------------------------------------------------------------------------

PUBLISHED: list[Published] = [
    # --- OpenOOD v1.5 leaderboard, CIFAR-10 (MLS = maxlogit, EBO = energy, MDS = mahalanobis,
    #     KLM = klmatching, RMDS = rmd) ---
    _row("cifar10", "msp", "near", "auroc", 88.03, _C10),
    _row("cifar10", "msp", "far", "auroc", 90.73, _C10),
    _row("cifar10", "maxlogit", "near", "auroc", 87.52, _C10),
    _row("cifar10", "maxlogit", "far", "auroc", 91.10, _C10),
    _row("cifar10", "energy", "near", "auroc", 87.58, _C10),
    _row("cifar10", "energy", "far", "auroc", 91.21, _C10),
    _row("cifar10", "odin", "near", "auroc", 82.87, _C10),
    _row("cifar10", "odin", "far", "auroc", 87.96, _C10),
    _row("cifar10", "mahalanobis", "near", "auroc", 84.20, _C10),
    _row("cifar10", "mahalanobis", "far", "auroc", 89.72, _C10),
    _row("cifar10", "knn", "near", "auroc", 90.64, _C10),
    _row("cifar10", "knn", "far", "auroc", 92.96, _C10),
    _row("cifar10", "vim", "near", "auroc", 88.68, _C10),
    _row("cifar10", "vim", "far", "auroc", 93.48, _C10),
    _row("cifar10", "react", "near", "auroc", 87.11, _C10),
    _row("cifar10", "react", "far", "auroc", 90.42, _C10),
    _row("cifar10", "gen", "near", "auroc", 88.20, _C10),
    _row("cifar10", "gen", "far", "auroc", 91.35, _C10),
    _row("cifar10", "ash", "near", "auroc", 75.27, _C10),
    _row("cifar10", "ash", "far", "auroc", 78.49, _C10),
    _row("cifar10", "scale", "near", "auroc", 82.55, _C10),
    _row("cifar10", "scale", "far", "auroc", 86.39, _C10),
    _row("cifar10", "dice", "near", "auroc", 78.34, _C10),
    _row("cifar10", "dice", "far", "auroc", 84.23, _C10),
    _row("cifar10", "she", "near", "auroc", 81.54, _C10),
    _row("cifar10", "she", "far", "auroc", 85.32, _C10),
    _row("cifar10", "klmatching", "near", "auroc", 79.19, _C10),
    _row("cifar10", "klmatching", "far", "auroc", 82.68, _C10),
    _row("cifar10", "rmd", "near", "auroc", 89.80, _C10),
    _row("cifar10", "rmd", "far", "auroc", 92.20, _C10),
    _row("cifar10", "nci", "near", "auroc", 88.86, _C10_CONTRIB),
    _row("cifar10", "nci", "far", "auroc", 91.27, _C10_CONTRIB),
    _row("cifar10", "fdbd", "near", "auroc", 90.42, _C10_CONTRIB),
    _row("cifar10", "fdbd", "far", "auroc", 93.16, _C10_CONTRIB),
    # --- OpenOOD v1.5 leaderboard, CIFAR-100 ---
    _row("cifar100", "msp", "near", "auroc", 80.27, _C100),
    _row("cifar100", "msp", "far", "auroc", 77.76, _C100),
    _row("cifar100", "maxlogit", "near", "auroc", 81.05, _C100),
    _row("cifar100", "maxlogit", "far", "auroc", 79.67, _C100),
    _row("cifar100", "energy", "near", "auroc", 80.91, _C100),
    _row("cifar100", "energy", "far", "auroc", 79.77, _C100),
    _row("cifar100", "odin", "near", "auroc", 79.90, _C100),
    _row("cifar100", "odin", "far", "auroc", 79.28, _C100),
    _row("cifar100", "mahalanobis", "near", "auroc", 58.69, _C100),
    _row("cifar100", "mahalanobis", "far", "auroc", 69.39, _C100),
    _row("cifar100", "knn", "near", "auroc", 80.18, _C100),
    _row("cifar100", "knn", "far", "auroc", 82.40, _C100),
    _row("cifar100", "vim", "near", "auroc", 74.98, _C100),
    _row("cifar100", "vim", "far", "auroc", 81.70, _C100),
    _row("cifar100", "react", "near", "auroc", 80.77, _C100),
    _row("cifar100", "react", "far", "auroc", 80.39, _C100),
    _row("cifar100", "gen", "near", "auroc", 81.31, _C100),
    _row("cifar100", "gen", "far", "auroc", 79.68, _C100),
    _row("cifar100", "ash", "near", "auroc", 78.20, _C100),
    _row("cifar100", "ash", "far", "auroc", 80.58, _C100),
    _row("cifar100", "scale", "near", "auroc", 80.99, _C100),
    _row("cifar100", "scale", "far", "auroc", 81.42, _C100),
    _row("cifar100", "dice", "near", "auroc", 79.38, _C100),
    _row("cifar100", "dice", "far", "auroc", 80.01, _C100),
    _row("cifar100", "she", "near", "auroc", 78.95, _C100),
    _row("cifar100", "she", "far", "auroc", 76.92, _C100),
    _row("cifar100", "klmatching", "near", "auroc", 76.56, _C100),
    _row("cifar100", "klmatching", "far", "auroc", 76.24, _C100),
    _row("cifar100", "rmd", "near", "auroc", 80.15, _C100),
    _row("cifar100", "rmd", "far", "auroc", 82.92, _C100),
    _row("cifar100", "nci", "near", "auroc", 81.03, _C100_CONTRIB),
    _row("cifar100", "nci", "far", "auroc", 81.32, _C100_CONTRIB),
    _row("cifar100", "fdbd", "near", "auroc", 81.26, _C100_CONTRIB),
    _row("cifar100", "fdbd", "far", "auroc", 79.85, _C100_CONTRIB),
    # --- OpenOOD v1.5 leaderboard, ImageNet-1K, ResNet-50 ---
    _row("imagenet", "msp", "near", "auroc", 76.02, _IN1K),
    _row("imagenet", "msp", "far", "auroc", 85.23, _IN1K),
    _row("imagenet", "maxlogit", "near", "auroc", 76.46, _IN1K),
    _row("imagenet", "maxlogit", "far", "auroc", 89.57, _IN1K),
    _row("imagenet", "energy", "near", "auroc", 75.89, _IN1K),
    _row("imagenet", "energy", "far", "auroc", 89.47, _IN1K),
    _row("imagenet", "odin", "near", "auroc", 74.75, _IN1K),
    _row("imagenet", "odin", "far", "auroc", 89.47, _IN1K),
    _row("imagenet", "mahalanobis", "near", "auroc", 55.44, _IN1K),
    _row("imagenet", "mahalanobis", "far", "auroc", 74.25, _IN1K),
    _row("imagenet", "knn", "near", "auroc", 71.10, _IN1K),
    _row("imagenet", "knn", "far", "auroc", 90.18, _IN1K),
    _row("imagenet", "vim", "near", "auroc", 72.08, _IN1K),
    _row("imagenet", "vim", "far", "auroc", 92.68, _IN1K),
    _row("imagenet", "react", "near", "auroc", 77.38, _IN1K),
    _row("imagenet", "react", "far", "auroc", 93.67, _IN1K),
    _row("imagenet", "gen", "near", "auroc", 76.85, _IN1K),
    _row("imagenet", "gen", "far", "auroc", 89.76, _IN1K),
    _row("imagenet", "ash", "near", "auroc", 78.17, _IN1K),
    _row("imagenet", "ash", "far", "auroc", 95.74, _IN1K),
    _row("imagenet", "scale", "near", "auroc", 81.36, _IN1K),
    _row("imagenet", "scale", "far", "auroc", 96.53, _IN1K),
    _row("imagenet", "dice", "near", "auroc", 73.07, _IN1K),
    _row("imagenet", "dice", "far", "auroc", 90.95, _IN1K),
    _row("imagenet", "she", "near", "auroc", 73.78, _IN1K),
    _row("imagenet", "she", "far", "auroc", 90.92, _IN1K),
    _row("imagenet", "klmatching", "near", "auroc", 76.64, _IN1K),
    _row("imagenet", "klmatching", "far", "auroc", 87.60, _IN1K),
    _row("imagenet", "rmd", "near", "auroc", 76.99, _IN1K),
    _row("imagenet", "rmd", "far", "auroc", 86.38, _IN1K),
    _row("imagenet", "nci", "near", "auroc", 78.69, _IN1K_CONTRIB),
    _row("imagenet", "nci", "far", "auroc", 95.53, _IN1K_CONTRIB),
    _row("imagenet", "fdbd", "near", "auroc", 76.63, _IN1K_CONTRIB),
    _row("imagenet", "fdbd", "far", "auroc", 92.77, _IN1K_CONTRIB),
    # --- cityscapes: no published number could be read from a stored source (see module doc) ---
]


# ---------------------------------------------------------------------------------------------
# Frames
# ---------------------------------------------------------------------------------------------

def _check_profile(profile: str) -> None:
    """Raise ``ValueError`` naming the known profiles unless ``profile`` is one."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; known profiles: {', '.join(PROFILES)}")


def published_frame(profile: str) -> pd.DataFrame:
    """Every published row of ``profile`` (columns = :class:`Published` fields), in table order."""
    _check_profile(profile)
    rows = [asdict(p) for p in PUBLISHED if p.profile == profile]
    return pd.DataFrame(rows, columns=list(Published.__dataclass_fields__))


def _ours(detectors: dict, entry: Published) -> float | None:
    """Our value for ``entry``'s (detector, set, metric), or None when we do not have it."""
    value = detectors.get(entry.detector, {}).get(entry.set, {}).get(entry.metric)
    return None if value is None else float(value)


def paper_vs_ours(metrics: dict, profile: str, benchmark: str) -> pd.DataFrame:
    """Published rows of ``profile`` that ``metrics[benchmark]`` also has, with ours and the difference.

    ``metrics`` is ``reports/metrics.json`` as loaded (``{benchmark: {"detectors": {detector: {set:
    {metric: value}}}}}``). One row per published entry whose detector, set and metric we have:
    ``detector, set, metric, published, ours, difference (ours − published), source``; an empty frame
    with these columns when none match. Unknown ``profile``: ``ValueError``; a ``benchmark`` that is
    not in ``metrics``: ``KeyError`` naming the ones that are.
    """
    _check_profile(profile)
    if benchmark not in metrics:
        raise KeyError(f"benchmark {benchmark!r} is not in the metrics; it has: {', '.join(metrics)}")
    detectors = metrics[benchmark].get("detectors", {})
    rows = []
    for entry in PUBLISHED:
        ours = _ours(detectors, entry) if entry.profile == profile else None
        if ours is not None:
            rows.append([entry.detector, entry.set, entry.metric, entry.value, ours, ours - entry.value, entry.source])
    return pd.DataFrame(rows, columns=COLUMNS)
