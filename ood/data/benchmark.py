"""The :class:`Benchmark` container every loader returns (contract in ARCHITECTURE.md, "Contracts")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch.utils.data import Dataset

__all__ = ["Benchmark", "DenseBenchmark", "OOD_LABEL", "IGNORE_INDEX"]

#: Label of every OOD sample (ID labels are 0..num_classes-1).
OOD_LABEL = -1
#: Void label of dense benchmarks (semantic labels and OOD masks): ignored by losses and metrics.
IGNORE_INDEX = 255


@dataclass(repr=False, kw_only=True)  # keywords only: each kind adds fields of its own
class _Splits:
    """What both benchmark kinds share: ID splits ``train``/``val``/``test`` and named OOD sets."""

    name: str
    classes: list[str]
    train: Dataset
    val: Dataset
    test: Dataset
    ood: dict[str, Dataset]
    in_channels: int
    image_size: tuple[int, int]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def sizes(self) -> dict[str, int]:
        """Number of samples (images or scenes) per ID split and OOD set."""
        out = {"train": len(self.train), "val": len(self.val), "test": len(self.test)}  # type: ignore[arg-type]
        out.update({name: len(ds) for name, ds in self.ood.items()})  # type: ignore[arg-type]
        return out

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes().items())
        return (
            f"{type(self).__name__}({self.name!r}, {self.num_classes} classes, "
            f"{self.in_channels}x{self.image_size[0]}x{self.image_size[1]}, {sizes})"
        )


@dataclass(repr=False, kw_only=True)  # _Splits.__repr__: sizes, not dataset objects
class Benchmark(_Splits):
    """ID splits and named OOD sets of one benchmark.

    Every dataset yields ``(image, label)``: ``image`` a float32 tensor ``[C, H, W]`` in [0, 1]
    (not normalised: models normalise internally), ``label`` an int64 scalar, ``-1`` for OOD.

    Attributes:
        name: benchmark name as used in params.yaml (e.g. ``"fmnist6"``).
        classes: ID class names; label ``i`` is ``classes[i]``.
        train, val, test: ID splits.
        ood: OOD sets by name, ordered near sets first, then far sets.
        groups: ``{"near": [...], "far": [...]}``: OOD set names per group (for the averages).
        in_channels, image_size: input geometry (``image_size`` is ``(H, W)``).
        params: the parameters the benchmark was built with (for provenance in reports).
    """

    groups: dict[str, list[str]]
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        grouped = [s for names in self.groups.values() for s in names]
        if sorted(grouped) != sorted(self.ood):
            raise ValueError(
                f"groups {self.groups} must name every OOD set exactly once: {list(self.ood)}"
            )


@dataclass(repr=False, kw_only=True)
class DenseBenchmark(_Splits):
    """Segmentation splits and dense OOD sets of one benchmark (e.g. ``"scenes"``).

    Every dataset yields ``(image, target)``: ``image`` a float32 tensor ``[C, H, W]`` in [0, 1],
    ``target`` an int64 tensor ``[H, W]`` with ``ignore_index`` (255) on void pixels.

    Attributes:
        name: benchmark name as used in params.yaml.
        classes: semantic class names; label ``i`` is ``classes[i]`` (``classes[0]`` is usually
            ``"background"``).
        train, val, test: ID scenes with semantic labels in ``0..num_classes-1`` or void; ``test``
            is the clean test split (no anomalies), for the segmenter's mIoU.
        ood: dense OOD sets by name (``near``, ``far``): targets are OOD masks, 0 = ID pixel,
            1 = OOD pixel, ``ignore_index`` = void (excluded from every dense metric). Pool them for
            ``all``.
        ood_semantic: the same scenes as ``ood`` (same images, same order) with semantic labels
            (anomaly pixels void), for diagnostics such as the segmenter's mIoU around anomalies.
        in_channels, image_size: input geometry (``image_size`` is ``(H, W)``).
        ignore_index: the void label.
        params: the parameters the benchmark was built with (for provenance in reports).
    """

    ood_semantic: dict[str, Dataset] = field(default_factory=dict)
    ignore_index: int = IGNORE_INDEX
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        extra = sorted(set(self.ood_semantic) - set(self.ood))
        if extra:
            raise ValueError(f"ood_semantic names sets {extra} that are not in ood: {list(self.ood)}")

