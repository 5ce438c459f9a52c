"""OOD metrics (numpy only). **OOD is the positive class**; every score is **higher = more OOD**.

Modules (everything public is re-exported here, so ``ood.metrics.X`` works for all of them):

:mod:`~ood.metrics.image`
    Image metrics ``auroc``, ``fpr95``, ``aupr_in``, ``aupr_out`` and the ROC curve.
:mod:`~ood.metrics.bootstrap`
    Bootstrap CIs of the image metrics, :func:`summarize` (tidy table), :func:`to_metrics_json` and
    :func:`best_baselines` (the reference of the paired comparisons).
:mod:`~ood.metrics.paired`
    Paired tests between detectors on the same samples: :func:`delong_test`, :func:`bootstrap_p`, :func:`holm`.
:mod:`~ood.metrics.pixel`
    Dense pixel metrics ``ap``, ``fpr95``, ``auroc``: :class:`PixelMetrics`.
:mod:`~ood.metrics.components`
    SegmentMeIfYouCan component metrics ``siou``, ``ppv``, ``mean_f1``: :class:`ComponentMetrics`.
:mod:`~ood.metrics.dense`
    Both dense accumulators over a dataset: :func:`dense_metrics`, :func:`summarize_dense`.
:mod:`~ood.metrics.seeds`
    Verdicts over training seeds: :func:`seed_test`, :func:`one_run_test`, :func:`seeds_needed`.
:mod:`~ood.metrics.segmentation`
    Segmenter quality: :func:`pixel_confusion`, :func:`iou_per_class`, :func:`mean_iou`.
"""

from . import bootstrap, components, dense, image, paired, pixel, seeds, segmentation
from .bootstrap import *  # noqa: F401,F403 - each module's __all__ is the public API
from .components import *  # noqa: F401,F403
from .dense import *  # noqa: F401,F403
from .image import *  # noqa: F401,F403
from .paired import *  # noqa: F401,F403
from .pixel import *  # noqa: F401,F403
from .seeds import *  # noqa: F401,F403
from .segmentation import *  # noqa: F401,F403

__all__ = [*image.__all__, *bootstrap.__all__, *paired.__all__, *pixel.__all__, *components.__all__, *dense.__all__,
           *seeds.__all__, *segmentation.__all__]
