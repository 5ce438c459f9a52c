"""Where a trained method's spread over training seeds comes from: its own training, with the
classifier held fixed. Loads one shipped classifier (``--classifier-seed``), trains and scores the
method with each training seed in ``--seeds`` in a scratch folder, and prints near/far AUROC per
seed with their std. Compare that std with the seed study's (``reports/seeds/summary.csv``), where
the classifier changes with the seed too: the difference is the classifier's share.

    .venv/bin/python benchmarks/spread_sources.py heatmap --seeds 0 1 2   # needs the data (make data)

Uses params.yaml's values; writes nothing into the project. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import copy
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ood.pipeline.params as Pm  # noqa: E402
from ood.pipeline import fit, recipe, score  # noqa: E402
from ood.sets import ID_SET  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("method", help="a trained image method, e.g. heatmap")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--classifier-seed", type=int, default=0)
    args = parser.parse_args()
    P0 = Pm.load(ROOT / "params.yaml")
    bench_name = P0["benchmark"]["name"]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        for link in (P0["data"]["root"], ".cache", "weights"):
            (work / link).symlink_to(ROOT / link)
        (work / "models" / bench_name).mkdir(parents=True)
        shipped = ROOT / recipe.folder(P0, "classifier") / f"seed-{args.classifier_seed}" / "classifier.pt"
        shutil.copy(shipped, work / "models" / bench_name / "classifier.pt")
        for seed in args.seeds:
            P = {**copy.deepcopy(P0), "seed": seed}
            start = time.perf_counter()
            fit.fit(args.method, P, work)
            scored, _, _, bench = score.score(args.method, P, work)
            head = scored[scored["detector"] == args.method]
            ident = head[head["set"] == ID_SET]["score"].to_numpy()
            auroc = {}
            for s in bench.ood:
                ood_scores = head[head["set"] == s]["score"].to_numpy()
                auroc[s] = roc_auc_score(np.r_[np.zeros(len(ident)), np.ones(len(ood_scores))], np.r_[ident, ood_scores])
            near = np.mean([auroc[s] for s in bench.groups["near"]])
            far = np.mean([auroc[s] for s in bench.groups["far"]])
            rows.append((seed, near, far))
            print(f"{args.method} seed {seed} on classifier seed {args.classifier_seed}: near {near:.4f} far {far:.4f} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
            shutil.rmtree(work / "checkpoints", ignore_errors=True)
    near, far = np.array([r[1] for r in rows]), np.array([r[2] for r in rows])
    print(f"{args.method}, classifier fixed (seed {args.classifier_seed}), {len(rows)} training seeds: "
          f"near {near.mean():.4f} +- {near.std(ddof=1):.4f}, far {far.mean():.4f} +- {far.std(ddof=1):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
