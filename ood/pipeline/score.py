"""Score a trained detector over the benchmark into its scores files, in one process or sharded
over several (``torch.distributed``), with identical results.

``python -m ood.pipeline.score diffguard`` scores with the parameters of params.yaml (``diffguard.score``)
and writes ``reports/scores/<benchmark>/diffguard.csv`` (the headline), the other scores to
``reports/scores/<benchmark>/ablations/diffguard.csv`` and the cost to
``reports/<benchmark>/diffguard_costs.csv``. The scoring stage calls :func:`run`, which starts
``processes`` workers with torchrun when that parameter is above 1. On several machines, start the
workers yourself on each (the files are written by rank 0)::

    torchrun --nnodes 2 --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint HOST:29500 -m ood.pipeline.score diffguard

Each process scores every ``world``-th image of each set on its own GPU (``cuda:LOCAL_RANK``; gloo
on CPUs); random draws depend on an image's key only, so the merged file equals a one-process run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from ..io import atomic_write
from . import params as Pm
from .launch import checkpoint, device_for_rank, distributed_main, torchrun, training_report

__all__ = ["run", "score", "main"]


def score(name: str, P: Mapping[str, Any], root: Path) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Score ``name``'s trained checkpoint; on rank 0 write the three files and return the rows
    (headline and variants) and the cost table; other ranks return ``None``."""
    import ood.data
    import ood.detectors
    import ood.evaluation.image
    import ood.models

    E, bench_name = P["evaluate"], P["benchmark"]["name"]
    cls = ood.detectors.trained(name)
    det_params, evaluation = cls.split_score(P[name]["score"])
    bench = ood.data.load_benchmark(**Pm.benchmark_args(P, root=root))
    model = ood.models.load(root / "models" / bench_name / "classifier.pt", map_location=device_for_rank(E["device"]))
    detector = ood.detectors.load(checkpoint(root, bench_name, name), model=model, **det_params)
    train_json = training_report(root, bench_name, name)
    fit_s = json.loads(train_json.read_text())["fit_s"] if train_json.exists() else 0.0
    rows, costs = ood.evaluation.image.score_detector(detector, bench, batch_size=E["batch_size"], fit_s=fit_s,
                                              variants=detector.scores, subset=evaluation.get("subset"),
                                              seed=P["seed"])
    if ood.evaluation.image.shard()[0] != 0:
        return None
    headline = rows[rows["detector"] == f"{name}[{detector.hparams[cls.headline]}]"].assign(detector=name)
    scores = root / "reports" / "scores" / bench_name
    (scores / "ablations").mkdir(parents=True, exist_ok=True)
    for frame, path in ((headline, scores / f"{name}.csv"), (rows, scores / "ablations" / f"{name}.csv"),
                        (costs, root / "reports" / bench_name / f"{name}_costs.csv")):
        atomic_write(path, frame.to_csv(index=False))
    return pd.concat([headline, rows], ignore_index=True), costs


def run(name: str, P: Mapping[str, Any], root: Path, processes: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score in this process, or in ``processes`` torchrun workers; returns what was written."""
    if processes > 1:
        torchrun("ood.pipeline.score", name, processes, root, P)
        bench_name, scores = P["benchmark"]["name"], root / "reports" / "scores" / P["benchmark"]["name"]
        rows = pd.concat([pd.read_csv(scores / f"{name}.csv"), pd.read_csv(scores / "ablations" / f"{name}.csv")],
                         ignore_index=True)
        return rows, pd.read_csv(root / "reports" / bench_name / f"{name}_costs.csv")
    out = score(name, P, root)
    assert out is not None
    return out


def main(argv: list[str] | None = None) -> int:
    return distributed_main(score, "python -m ood.pipeline.score METHOD   (e.g. diffguard; under torchrun: sharded)", "scored",
                            argv)


if __name__ == "__main__":
    sys.exit(main())
