"""MoodCat's training budget against what it buys: train on a seeded fraction of one epoch, then the
ID-validation checks (label agreement, pair AUROC) and near/far AUROC next to MSP on the same images.

    .venv/bin/python benchmarks/moodcat_budget.py 0.25 0.5   # needs models/fmnist6/classifier.pt

The trade-off ARCHITECTURE.md ("Budgets") asks for where a method spends more than its share of the study budget.
The default (one epoch) is fixed by the ID-validation check it must pass (label agreement >= 80 %),
never by the test columns printed here. Uses params.yaml's `moodcat` section; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Subset

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ood.data  # noqa: E402
import ood.detectors  # noqa: E402
import ood.evaluation.image  # noqa: E402
import ood.metrics  # noqa: E402
import ood.models  # noqa: E402
import ood.pipeline.params  # noqa: E402
from ood.sets import ID_SET  # noqa: E402


def group_aurocs(scores, groups) -> dict[str, float]:
    """Mean AUROC (ID test vs each OOD set) per group of sets."""
    ids = scores.loc[scores["set"] == ID_SET, "score"].to_numpy()
    return {g: float(np.mean([ood.metrics.auroc(ids, scores.loc[scores["set"] == s, "score"].to_numpy()) for s in sets]))
            for g, sets in groups.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fractions", nargs="+", type=float, help="fractions of the ID training set (one epoch = 1)")
    args = parser.parse_args()
    P = ood.pipeline.params.load(ROOT / "params.yaml")
    M, E = P["moodcat"], P["evaluate"]
    bench = ood.data.load_benchmark(**ood.pipeline.params.benchmark_args(P))
    model = ood.models.load(ROOT / "models" / bench.name / "classifier.pt")
    scoring, _ = ood.detectors.MoodCat.split_score(M["score"])
    msp, _ = ood.evaluation.image.score_detector(ood.detectors.build("msp", model=model), bench, batch_size=E["batch_size"])
    base = group_aurocs(msp, bench.groups)
    print(f"{torch.get_num_threads()} threads; MSP AUROC " + ", ".join(f"{g} {v:.3f}" for g, v in base.items()))
    print(f"{'fraction':>8s} {'images':>7s} {'fit s':>6s} {'label agr.':>10s} {'pair AUROC':>10s} "
          + " ".join(f"{g + ' AUROC':>10s}" for g in bench.groups))
    order = torch.randperm(len(bench.train), generator=torch.Generator().manual_seed(P["seed"])).tolist()
    for frac in args.fractions:
        train = Subset(bench.train, sorted(order[:int(len(bench.train) * frac)]))
        det = ood.detectors.build("moodcat", model=model, train=M["train"], seed=P["seed"])
        start = time.perf_counter()
        det.fit(train, val=bench.val, progress=False)
        fit_s = time.perf_counter() - start
        checks = det.diagnostics(bench.val)
        with tempfile.TemporaryDirectory() as tmp:  # reload with the scoring parameters, as the moodcat stage does
            det.save(Path(tmp) / "moodcat.pt")
            det = ood.detectors.load(Path(tmp) / "moodcat.pt", model=model, **scoring)
        det.calibrate(bench.val, batch_size=E["batch_size"])
        scores, _ = ood.evaluation.image.score_detector(det, bench, batch_size=E["batch_size"])
        print(f"{frac:8.2f} {len(train):7d} {fit_s:6.0f} {checks['label_agreement'] * 100:9.1f}% {checks['pair_auroc']:10.3f} "
              + " ".join(f"{v:10.3f}" for v in group_aurocs(scores, bench.groups).values()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
