"""NFlowJS's joint-phase recipe, chosen on clean ID *validation* scenes: trains NFlowJS from the
shipped segmenter of each training seed with every variant below and prints the fine-tuned
segmenter's validation mIoU next to the frozen segmenter's. The rule, fixed before any run: the
variant with the highest mean validation mIoU over the seeds. Only validation figures are printed
or compared (the training stage's report also holds test mIoU; it is not looked at). Choosing on the
OOD side waits for validation OOD scenes (issue 22).

    .venv/bin/python benchmarks/nflowjs_recipe.py --seeds 0 1 2   # needs the data (make data)

Writes nothing under reports/ or models/ of the project: it works in a scratch folder.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ood.metrics  # noqa: E402
import ood.pipeline.params as Pm  # noqa: E402
from ood.evaluation.dense import segmentation_confusion  # noqa: E402
from ood.pipeline import fit, recipe  # noqa: E402

VARIANTS = [dict(schedule=s, bn=b) for s, b in itertools.product(("constant", "cosine"), ("train", "frozen"))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--schedules", nargs="+", default=["constant", "cosine"], help="a part of the grid (runs in parts)")
    args = parser.parse_args()
    P0 = Pm.load(ROOT / "params.yaml")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        (work / "data").symlink_to(ROOT / P0["data"]["root"])
        (work / ".cache").symlink_to(ROOT / ".cache")
        (work / "weights").symlink_to(ROOT / "weights")
        bench_name = P0["dense_benchmark"]["name"]
        for seed in args.seeds:
            P = {**copy.deepcopy(P0), "seed": seed}
            net = recipe.obtain("segmenter", P, ROOT)
            (work / "models" / bench_name).mkdir(parents=True, exist_ok=True)
            (work / "reports" / bench_name).mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / recipe.folder(P, "segmenter") / f"seed-{seed}" / "segmenter.pt", work / "models" / bench_name)
            conf = segmentation_confusion(net.model, net.bench.val, len(net.bench.classes), batch_size=32)
            base = ood.metrics.mean_iou(conf)
            (work / "reports" / bench_name / "segmenter.json").write_text(json.dumps({"miou": None, "val_miou": base}))
            for v in (v for v in VARIANTS if v["schedule"] in args.schedules):
                Q = copy.deepcopy(P)
                Q["nflowjs"]["train"].update(v)
                start = time.perf_counter()
                _, report = fit.stage("nflowjs", Q, work)
                rows.append({"seed": seed, **v, "val_miou": report["val_miou"], "baseline": base,
                             "s": time.perf_counter() - start})
                print(json.dumps(rows[-1]), flush=True)
                shutil.rmtree(work / "checkpoints", ignore_errors=True)
    import pandas as pd

    table = pd.DataFrame(rows)
    table["drop"] = table["baseline"] - table["val_miou"]
    print(table.groupby(["schedule", "bn"])[["val_miou", "drop", "s"]].agg(["mean", "std"]).round(4).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
