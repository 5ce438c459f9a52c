"""The :class:`Benchmark` container every loader returns (contract in DESIGN.md, "Contracts")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch.utils.data import Dataset

__all__ = ["Benchmark", "OOD_LABEL"]

#: Label of every OOD sample (ID labels are 0..num_classes-1).
OOD_LABEL = -1


@dataclass
class Benchmark:
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

    name: str
    classes: list[str]
    train: Dataset
    val: Dataset
    test: Dataset
    ood: dict[str, Dataset]
    groups: dict[str, list[str]]
    in_channels: int
    image_size: tuple[int, int]
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        grouped = [s for names in self.groups.values() for s in names]
        if sorted(grouped) != sorted(self.ood):
            raise ValueError(
                f"groups {self.groups} must name every OOD set exactly once: {list(self.ood)}"
            )

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def sizes(self) -> dict[str, int]:
        """Number of samples per ID split and OOD set (handy for reports and logs)."""
        out = {"train": len(self.train), "val": len(self.val), "test": len(self.test)}  # type: ignore[arg-type]
        out.update({name: len(ds) for name, ds in self.ood.items()})  # type: ignore[arg-type]
        return out

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes().items())
        return (
            f"Benchmark({self.name!r}, {self.num_classes} classes, "
            f"{self.in_channels}x{self.image_size[0]}x{self.image_size[1]}, {sizes})"
        )
