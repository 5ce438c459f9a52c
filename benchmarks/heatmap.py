"""Heatmap OOD's cost on this machine: training time, scoring throughput, and scoring cost as a
ratio to one classifier forward pass on the same batches.

    .venv/bin/python benchmarks/heatmap.py            # needs models/fmnist6/classifier.pt (dvc repro classifier)
    .venv/bin/python benchmarks/heatmap.py --no-train # score with models/fmnist6/heatmap.pt instead of training

Uses params.yaml's `heatmap` section and the embedded benchmark; prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ood.data  # noqa: E402
import ood.detectors  # noqa: E402
import ood.models  # noqa: E402
import ood.params  # noqa: E402
from ood.data.auxiliary import load_outliers  # noqa: E402


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-train", action="store_true", help="load models/<benchmark>/heatmap.pt instead of training")
    parser.add_argument("--batch-size", type=int, default=None, help="scoring batch (default: evaluate.batch_size)")
    args = parser.parse_args()
    P = ood.params.load(ROOT / "params.yaml")
    name, H = P["benchmark"]["name"], P["heatmap"]
    bench = ood.data.load_benchmark(**{**ood.params.benchmark_args(P), "root": str(ROOT / P["data"]["root"])})
    clf = ood.models.load(ROOT / "models" / name / "classifier.pt")
    print(f"{torch.get_num_threads()} threads, device cpu, {len(bench.train)} ID training images, {H['train']['outliers']} outliers")
    if args.no_train:
        det = ood.detectors.load(ROOT / "models" / name / "heatmap.pt", model=clf)
    else:
        det = ood.detectors.build("heatmap", model=clf, train={**H["train"], "device": "cpu"}, seed=P["seed"], **H["score"])
        start = time.perf_counter()
        det.fit(bench.train, val=bench.val, outliers=load_outliers(H["train"]["outliers"], seed=P["seed"]), progress=False)
        fit_s = time.perf_counter() - start
        print(f"training: {fit_s:.1f} s for {H['train']['epochs']} epochs "
              f"({fit_s / H['train']['epochs']:.1f} s/epoch incl. features and prototypes)")
    batch = args.batch_size or P["evaluate"]["batch_size"]
    x = bench.test.tensors[0][:batch]
    with torch.no_grad():
        forward = best_of(lambda: clf(x))
    score = best_of(lambda: det.score(x))
    print(f"scoring: {batch / score:,.0f} images/s (batch {batch}); classifier forward: {batch / forward:,.0f} images/s")
    print(f"cost ratio (Heatmap score / classifier forward): {score / forward:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
