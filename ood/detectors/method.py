"""How a trained method plugs into the pipeline: one :class:`Method` on its detector class, and the
plain data its hooks hand to the generic training and scoring stages (:class:`Gallery`,
:class:`Ablation`).

The pipeline (``ood.pipeline``: the training and scoring stages, ``dvc.yaml``'s generator, the
report) reads these instead of branching on method names. See ARCHITECTURE.md, "Add a method".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal

__all__ = ["Ablation", "Gallery", "Method"]


@dataclass(frozen=True)
class Method:
    """What the pipeline needs to know of a trained method, declared once on its detector.

    ``benchmark``: the params.yaml section of the benchmark it runs on (``benchmark``: an image
    classifier; ``dense_benchmark``: a segmenter). ``train_stage``: the DVC stage that trains it
    (default ``<name>_train``); the stem of its checkpoint ``models/<benchmark>/<stem>.pt`` is the
    stage's name without ``_train``. ``headline``: the scoring parameter that names the headline
    among the detector's ``scores()`` variants (the others are ablations); ``None``: one score.
    ``fit_val``: train on a seeded subset
    of that many ID validation images, or on all of them (``None``). ``localises``: its
    ``score_map`` is also evaluated on the localisation set (``<benchmark>_loc``). ``fine_tunes``: it
    trains a copy of the segmenter (the detector's ``own_model``), whose mIoU its training reports
    (dense methods only). ``reads``: params
    keys both its stages read besides their own (e.g. the segmenter's batch size). ``title``: the
    heading of its report section.
    """

    benchmark: Literal["benchmark", "dense_benchmark"] = "benchmark"
    train_stage: str | None = None
    headline: str | None = None
    fit_val: int | None = None
    localises: bool = False
    fine_tunes: bool = False
    reads: tuple[str, ...] = ()
    title: str = ""

    def stages(self, name: str) -> tuple[str, str]:
        """(training stage, scoring stage) of the method called ``name``."""
        return self.train_stage or f"{name}_train", name

    def checkpoint_stem(self, name: str) -> str:
        """The file stem of the checkpoint the training stage writes (``heatmap``, ``diffusion``)."""
        return self.stages(name)[0].removesuffix("_train")

    def __post_init__(self) -> None:
        if self.fine_tunes and self.benchmark != "dense_benchmark":
            raise ValueError("fine_tunes: only a dense method's segmenter is evaluated (mIoU)")

    @property
    def dense(self) -> bool:
        return self.benchmark == "dense_benchmark"

    @property
    def model(self) -> str:
        """The frozen network it builds on: ``classifier`` or ``segmenter``."""
        return "segmenter" if self.dense else "classifier"


@dataclass
class Gallery:
    """A figure a stage shows, as data: ``kind`` names the drawing of :mod:`ood.report.figures`
    (``samples``: ``sample_grid``, ``heatmaps``: ``heatmap_grid``, ``dense``: ``dense_gallery``,
    ``labels``: ``label_maps``), ``args``/``kwargs`` its inputs. With a ``file`` name the scoring
    stage also saves it (``<name>_gallery/<file>.png``), and the report shows it."""

    kind: Literal["samples", "heatmaps", "dense", "labels"]
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    title: str = ""
    file: str | None = None
    dpi: int = 80


@dataclass
class Ablation:
    """A labelled variant scored next to the headline, never as one (e.g. MoodCat's oracle labels):
    the trained detector with ``params`` (and the headline detector's fitted state), scored with
    ``labels(set, y, keys)`` on the test sets, a seeded subset of ``subset`` images each (``None``:
    all); its headline variant is written as ``<name>[<ablation name>]`` to the ablations file."""

    name: str
    params: dict[str, Any]
    labels: Callable[..., Any] | None = None
    subset: int | None = None
