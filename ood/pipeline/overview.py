"""The data stage (``notebooks/data.ipynb``): what each benchmark holds, shown and recorded.

The image benchmark's splits and OOD sets with samples and intensities, the auxiliary outliers
(detectors with outlier exposure train on them) and how close each test set lies to them, the
localisation set, then the dense benchmark; ``reports/<benchmark>/data.json`` records the sizes,
groups, auxiliary sources and closeness that the summary and the report read. Each function returns
the parts to display (``ood.report.study.show``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
from IPython.display import Markdown
from torch.utils.data import Subset

from ..data import auxiliary, load_benchmark
from ..data.localisation import localisation_set
from ..report import figures
from . import params as Pm

__all__ = ["dense", "image"]


def _nearest_rms(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """RMS pixel distance from every image of a to its nearest image of b."""
    a, b = a.flatten(1), b.flatten(1)
    return torch.cat([torch.cdist(a[i:i + 500], b).min(dim=1).values for i in range(0, len(a), 500)]) / a.shape[1] ** 0.5


def image(P: Mapping[str, Any], root: Path, out: Path) -> list[Any]:
    """The image benchmark; writes ``data.json`` into ``out``."""
    name = P["benchmark"]["name"]
    bench = load_benchmark(**Pm.benchmark_args(P))
    sizes = pd.DataFrame(
        [{"split / set": s, "role": "ID", "images": len(ds)} for s, ds in
         (("train", bench.train), ("val", bench.val), ("test", bench.test))]
        + [{"split / set": s, "role": f"OOD ({g})", "images": len(bench.ood[s])}
           for g, names in bench.groups.items() for s in names])
    parts: list[Any] = [Markdown(f"**{name}**: ID classes {', '.join(bench.classes)}."), sizes,
                        figures.sample_grid({"id (test)": bench.test, **bench.ood}, n=10)]

    rows = []
    for s, ds in {"id": bench.test, **bench.ood}.items():
        x = torch.stack([ds[i][0] for i in range(min(len(ds), 1000))])
        rows += [{"set": s, "mean intensity": float(v)} for v in x.mean(dim=(1, 2, 3))]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    sns.boxplot(pd.DataFrame(rows), x="set", y="mean intensity", ax=ax)
    ax.set_title("Mean pixel intensity per set (first 1000 images)")
    parts.append(fig)

    outliers = auxiliary.load_outliers(2000, seed=P["data_seed"], size=bench.image_size[0], channels=bench.in_channels)
    parts.append(pd.DataFrame({"source": list(auxiliary.SOURCES), "share": [auxiliary.SOURCE_MIX[s] for s in auxiliary.SOURCES],
                               "what": list(auxiliary.SOURCES.values())}))
    by_source = {s: Subset(outliers, [i for i, t in enumerate(outliers.sources) if t == s][:10]) for s in auxiliary.SOURCES}
    parts.append(figures.sample_grid(by_source, n=10))

    aux = outliers.tensors[0]
    id_ref = torch.stack([bench.train[i][0] for i in range(min(len(bench.train), 5000))])
    closeness = {}
    for s, ds in {"id": bench.test, **bench.ood}.items():
        x = torch.stack([ds[i][0] for i in range(min(len(ds), 500))])
        closeness[s] = {"to auxiliary": float(_nearest_rms(x, aux).median()), "to ID train": float(_nearest_rms(x, id_ref).median())}
    closeness = pd.DataFrame(closeness).T
    closeness["auxiliary / ID"] = closeness["to auxiliary"] / closeness["to ID train"]
    parts.append(closeness.round(3))

    L = P["localisation"]
    loc = localisation_set(bench, L["n"], seed=P["data_seed"], side=tuple(L["side"]))
    (out / "data.json").write_text(json.dumps({
        "classes": bench.classes, "groups": bench.groups, "sizes": dict(zip(sizes["split / set"], sizes["images"].tolist())),
        "auxiliary": {"sources": auxiliary.SOURCES, "mix": auxiliary.SOURCE_MIX, "closeness": closeness.round(4).to_dict(orient="index")},
        "localisation": {"n": len(loc), "sets": sorted(set(loc.sources))}}, indent=2))
    items = [loc[i] for i in range(8)]
    parts.append(figures.dense_gallery([x for x, _ in items], [m for _, m in items], {}, n=8, title=f"{name}_loc: localisation set"))
    return parts


def dense(P: Mapping[str, Any], root: Path) -> list[Any]:
    """The dense benchmark; writes its ``data.json``."""
    bench = load_benchmark(**Pm.benchmark_args(P, "dense_benchmark"))
    (root / "reports" / bench.name).mkdir(parents=True, exist_ok=True)
    sizes = {"train": len(bench.train), "val": len(bench.val), "test": len(bench.test), **{s: len(d) for s, d in bench.ood.items()}}
    (root / "reports" / bench.name / "data.json").write_text(
        json.dumps({"classes": bench.classes, "sets": list(bench.ood), "sizes": sizes}, indent=2))
    train_x = [bench.train[i] for i in range(6)]
    fig = figures.label_maps([x for x, _ in train_x], [y for _, y in train_x], [y for _, y in train_x], bench.classes)
    fig.suptitle("Training scenes and their semantic labels (rows 2 and 3 identical here)")
    parts: list[Any] = [Markdown(f"**{bench.name}**: classes {', '.join(bench.classes)}; scenes per split/set: {sizes}."), fig]
    for s, ds in bench.ood.items():
        items = [ds[i] for i in range(6)]
        parts.append(figures.dense_gallery([x for x, _ in items], [y for _, y in items], {}, title=f"{s}-OOD scenes"))
    return parts
