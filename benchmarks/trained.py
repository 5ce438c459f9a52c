"""A trained detector's cost on this machine (Heatmap OOD, MoodCat, ...): training time, scoring
throughput, and scoring cost as a ratio to one classifier forward pass on the same batches.

    .venv/bin/python benchmarks/trained.py heatmap             # needs models/fmnist6/classifier.pt (dvc repro classifier)
    .venv/bin/python benchmarks/trained.py moodcat --no-train  # score models/fmnist6/moodcat.pt instead of training
    .venv/bin/python benchmarks/trained.py diffguard --no-train --batch-size 100  # models/fmnist6/diffusion.pt
    .venv/bin/python benchmarks/trained.py nflowjs --batch-size 32  # dense: needs models/scenes/segmenter.pt; ratio to a segmenter forward

Uses params.yaml's `<method>` section and the embedded benchmark; prints figures, asserts nothing.
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
import ood.pipeline.params  # noqa: E402
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
    parser.add_argument("method", choices=sorted({**ood.detectors.TRAINED, **ood.detectors.DENSE_TRAINED}),
                        help="the params.yaml section to use")
    parser.add_argument("--no-train", action="store_true", help="load models/<benchmark>/<method>.pt instead of training")
    parser.add_argument("--batch-size", type=int, default=None, help="scoring batch (default: evaluate.batch_size)")
    args = parser.parse_args()
    P = ood.pipeline.params.load(ROOT / "params.yaml")
    cls = ood.detectors.trained(args.method)
    dense, section = cls.method.dense, cls.method.benchmark
    name, H = P[section]["name"], P[args.method]
    bench = ood.data.load_benchmark(**ood.pipeline.params.benchmark_args(P, section, ROOT))
    clf = ood.models.load(ROOT / "models" / name / f"{cls.method.model}.pt")
    outliers = (load_outliers(H["train"]["outliers"], seed=P["seed"], size=bench.image_size[0], channels=bench.in_channels)
                if cls.needs_outliers else None)
    print(f"{torch.get_num_threads()} threads, device cpu, {len(bench.train)} ID training {'scenes' if dense else 'images'}"
          + (f", {len(outliers)} auxiliary outliers" if outliers is not None else ""))
    scoring = cls.split_score(H["score"])[0]  # without evaluation keys (e.g. DiffGuard's subset)
    if args.no_train:
        from ood.pipeline.launch import checkpoint

        det = ood.detectors.load(checkpoint(ROOT, name, args.method), model=clf, **scoring)
    else:
        det = ood.detectors.build(args.method, model=clf, dense=dense, train={**H["train"], "device": "cpu"},
                                  seed=P["seed"], **scoring)
        start = time.perf_counter()
        det.fit(bench.train, val=bench.val, outliers=outliers, progress=False)
        print(f"training: {time.perf_counter() - start:.1f} s (everything fit() does: every network and phase, "
              "features, prototypes or calibration)")
    batch = args.batch_size or P["evaluate"]["batch_size"]
    det.prepare_scoring(bench.val, P["evaluate"]["batch_size"])  # as the scoring stage does (MoodCat's cascade gate)
    x = bench.test.tensors[0][:batch]
    with torch.no_grad():
        forward = best_of(lambda: clf(x))
    score = best_of(lambda: det.score_map(x) if dense else det.score(x))
    network = "segmenter" if dense else "classifier"
    print(f"scoring: {batch / score:,.0f} images/s (batch {batch}); {network} forward: {batch / forward:,.0f} images/s")
    print(f"cost ratio ({args.method} score / {network} forward): {score / forward:.2f}")
    if hasattr(det, "network_evaluations"):
        evals = det.network_evaluations()
        print("network evaluations per image: " + ", ".join(f"{k} {v}" for k, v in evals.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
