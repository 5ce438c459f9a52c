"""Every combination of params.yaml's `combine.names` under every rule, next to its post-hoc part on
the same images (near / far average AUROC), from the study's scores files.

    .venv/bin/python benchmarks/combination_rules.py          # after `make study`

For information only: the rule each combination reports (`combine.rule`, `combine.rules`) is fixed
in params.yaml before any result and never chosen from this table, which reads test sets.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ood.data  # noqa: E402
import ood.metrics  # noqa: E402
import ood.pipeline.params  # noqa: E402
from ood.sets import ID_SET  # noqa: E402
from ood.pipeline.summarize import combine, image_scores  # noqa: E402

RULES = ("zmean", "zmax", "trust")


def group_aurocs(scores, detector: str, groups) -> list[float]:
    d = scores[scores["detector"] == detector]
    ids = d.loc[d["set"] == ID_SET, "score"].to_numpy()
    return [float(np.mean([ood.metrics.auroc(ids, d.loc[d["set"] == s, "score"].to_numpy()) for s in sets]))
            for sets in groups.values()]


def main() -> int:
    P = ood.pipeline.params.load(ROOT / "params.yaml")
    C, name = P["combine"], P["benchmark"]["name"]
    groups = ood.data.load_benchmark(**ood.pipeline.params.benchmark_args(P)).groups
    scores = image_scores(ROOT, name)
    cols = " ".join(f"{g:>6s}" for g in groups)
    print(f"{name}: average AUROC per group ({', '.join(groups)}); * = the rule params.yaml reports")
    print(f"{'combination':24s} {'rule':6s} {cols}   {'part b alone':>12s}")
    for combo in C["names"]:
        a, b = combo.split("+")
        chosen = C["rules"].get(a, C["rule"])
        for rule in RULES:
            c = combine(scores, combo, rule, band=C["band"])
            on = c.set_index(["set", "index"]).index  # part b on the images the combination covers
            part = scores[scores["detector"] == b].set_index(["set", "index"]).loc[on].reset_index()
            mine, alone = group_aurocs(c, combo, groups), group_aurocs(part, b, groups)
            print(f"{combo:24s} {rule + ('*' if rule == chosen else ''):6s} " + " ".join(f"{v:6.3f}" for v in mine)
                  + "   " + " ".join(f"{v:6.3f}" for v in alone))
    return 0


if __name__ == "__main__":
    sys.exit(main())
