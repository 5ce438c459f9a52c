"""How a trained method plugs into the pipeline: one :class:`Method` on its detector class.

The pipeline (``ood.pipeline``: training and scoring entry points, ``dvc.yaml``'s generator, the
report) reads these descriptors instead of branching on method names. See ARCHITECTURE.md,
"Add a method".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Method"]


@dataclass(frozen=True)
class Method:
    """What the pipeline needs to know of a trained method, declared once on its detector.

    ``benchmark``: the params.yaml section of the benchmark it runs on (``benchmark``: an image
    classifier; ``dense_benchmark``: a segmenter). ``train_stage``: the DVC stage that trains it
    (default ``<name>_train``); the stem of its checkpoint ``models/<benchmark>/<stem>.pt`` is the
    stage's name without ``_train``. ``score_stage``: the stage that scores it (default its name).
    ``fit_scoring``: training reads the ``score`` section
    too (e.g. a validation score). ``fit_val``: train on a seeded subset of that many ID
    validation images (a per-epoch loss only), or all of them (``None``).
    """

    benchmark: Literal["benchmark", "dense_benchmark"] = "benchmark"
    train_stage: str | None = None
    score_stage: str | None = None
    fit_scoring: bool = False
    fit_val: int | None = None

    def stages(self, name: str) -> tuple[str, str]:
        """(training stage, scoring stage) of the method called ``name``."""
        return self.train_stage or f"{name}_train", self.score_stage or name

    def checkpoint_stem(self, name: str) -> str:
        """The file stem of the checkpoint the training stage writes (``heatmap``, ``diffusion``)."""
        return self.stages(name)[0].removesuffix("_train")

    @property
    def model(self) -> str:
        """The frozen network it builds on: ``classifier`` or ``segmenter``."""
        return "segmenter" if self.benchmark == "dense_benchmark" else "classifier"
