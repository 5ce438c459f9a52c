"""Train a detector's networks as its training stage does, in one process or data-parallel over
several (``torch.distributed``), and write its checkpoint.

``python -m ood.pipeline.fit moodcat`` trains with params.yaml's ``moodcat.train`` and writes
``models/<benchmark>/moodcat.pt`` (``diffusion.pt`` for DiffGuard). The training stage of every
method (``notebooks/train.ipynb``) calls :func:`stage`: :func:`run`, which starts
``train.processes`` workers with torchrun when that is above 1 and then loads what they wrote, and
the training report. On several machines, start the workers yourself on each::

    torchrun --nnodes 2 --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint HOST:29500 -m ood.pipeline.fit moodcat

Each process trains on its shard of every epoch, on its own GPU (``cuda:LOCAL_RANK``; gloo on
CPUs), with the gradient averaged over the processes before every step (:func:`ood.train.fit`);
``batch_size`` is per process. Rank 0 writes the checkpoint.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from . import params as Pm
from ..io import atomic_write
from .launch import checkpoint, device_for_rank, distributed_main, torchrun, training_report

__all__ = ["Training", "inputs", "fit", "run", "stage", "main"]


@dataclass
class Training:
    """A trained (or loaded) detector with what its stage needs next: the benchmark, the data given
    to ``fit`` and the wall time of the training."""
    detector: Any
    bench: Any
    data: dict[str, Any]
    fit_s: float


def inputs(name: str, P: Mapping[str, Any], root: Path) -> tuple[Any, Any, dict[str, Any]]:
    """The untrained detector built from params.yaml, its benchmark and the keyword data of its
    ``fit`` (ID validation; auxiliary outliers where the method trains on them)."""
    import ood.data
    import ood.detectors
    import ood.models
    from torch.utils.data import Subset

    from ..data import auxiliary

    T, method = P[name]["train"], ood.detectors.trained(name).method
    bench = ood.data.load_benchmark(**Pm.benchmark_args(P, method.benchmark, root))
    base = root / "models" / P[method.benchmark]["name"] / f"{method.model}.pt"
    model = ood.models.load(base, map_location=device_for_rank(T["device"]))
    detector = ood.detectors.build(name, model=model, train=T, seed=P["seed"], **({"dense": True} if method.dense else {}))
    data: dict[str, Any] = {"val": bench.val}
    if method.fit_val is not None:
        import ood.evaluation.image

        stem = method.checkpoint_stem(name)  # the subset's key, e.g. "diffusion-val"
        keep = ood.evaluation.image.subset_indices(len(bench.val), method.fit_val, P["data_seed"], f"{stem}-val")
        data["val"] = Subset(bench.val, keep)
    if detector.needs_outliers:
        data["outliers"] = auxiliary.load_outliers(T["outliers"], seed=P["data_seed"], size=bench.image_size[0],
                                                   channels=bench.in_channels)
    return detector, bench, data


def fit(name: str, P: Mapping[str, Any], root: Path) -> Training:
    """Train ``name`` in this process (one of several under torch.distributed); rank 0 writes the
    checkpoint. An interrupted training resumes from ``checkpoints/<benchmark>/<stage>.ckpt``."""
    from ..train import is_main_process

    detector, bench, data = inputs(name, P, root)
    bench_name, stage = bench.name, detector.method.checkpoint_stem(name)
    start = time.perf_counter()
    detector.fit(bench.train, checkpoint=root / "checkpoints" / bench_name / f"{stage}.ckpt", **data)
    fit_s = time.perf_counter() - start
    if is_main_process():
        detector.save(checkpoint(root, bench_name, name))
    return Training(detector, bench, data, fit_s)


def run(name: str, P: Mapping[str, Any], root: Path, processes: int = 1) -> Training:
    """Train in this process, or in ``processes`` torchrun workers (then load their checkpoint)."""
    if processes <= 1:
        return fit(name, P, root)
    import ood.detectors

    start = time.perf_counter()
    torchrun("ood.pipeline.fit", name, processes, root, P)
    fit_s = time.perf_counter() - start  # includes the workers' start-up
    detector, bench, data = inputs(name, P, root)
    trained = ood.detectors.load(checkpoint(root, bench.name, name), model=detector.model)
    return Training(trained, bench, data, fit_s)


def stage(name: str, P: Mapping[str, Any], root: Path) -> tuple[Training, dict[str, Any]]:
    """The training stage of method ``name``: train (:func:`run`), then write its report
    ``reports/<benchmark>/<training stage>.json``: training seconds, parameters per network, ID
    images, the history, the mIoU of a segmenter it fine-tunes next to the baseline's, and the
    method's own fields (``training_summary``)."""
    trained = run(name, P, root, processes=P[name]["train"]["processes"])
    det, bench, method = trained.detector, trained.bench, trained.detector.method
    report: dict[str, Any] = {
        "fit_s": trained.fit_s, "parameters": {k: sum(p.numel() for p in net.parameters()) for k, net in det.networks.items()},
        "id_images": len(bench.train), "history": det.history}
    if method.fine_tunes:
        report.update(_own_model_quality(det.own_model, bench, P[method.model]["batch_size"], root))
    report.update(det.training_summary(bench, trained.data))
    path = training_report(root, bench.name, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(report, indent=2))
    return trained, report


def _own_model_quality(model: Any, bench: Any, batch_size: int, root: Path) -> dict[str, Any]:
    """A fine-tuned segmenter's mIoU on clean ID validation scenes (what a recipe is chosen on) and
    test scenes (what is reported), next to the frozen one's (its stage's report; summarize puts
    the test mIoU in metrics.json as ``miou_<method>``)."""
    import ood.metrics
    from ..evaluation.dense import segmentation_confusion

    n = len(bench.classes)
    val = ood.metrics.mean_iou(segmentation_confusion(model, bench.val, n, batch_size=batch_size))
    conf = segmentation_confusion(model, bench.test, n, batch_size=batch_size)
    baseline = json.loads((root / "reports" / bench.name / "segmenter.json").read_text())
    return {"miou": ood.metrics.mean_iou(conf), "miou_baseline": baseline["miou"],
            "val_miou": val, "val_miou_baseline": baseline.get("val_miou"),
            "iou": dict(zip(bench.classes, map(float, ood.metrics.iou_per_class(conf))))}


def main(argv: list[str] | None = None) -> int:
    return distributed_main(fit, "python -m ood.pipeline.fit METHOD   (e.g. moodcat; under torchrun: data-parallel)", "trained",
                            argv)


if __name__ == "__main__":
    sys.exit(main())
