"""Score a trained detector over the benchmark into its scores files, in one process or sharded
over several (``torch.distributed``), with identical results; and the scoring stage around it.

``python -m ood.pipeline.score diffguard`` scores with the parameters of params.yaml
(``diffguard.score``) and writes ``reports/scores/<benchmark>/diffguard.csv`` (the headline), the
other scores to ``reports/scores/<benchmark>/ablations/diffguard.csv`` and the cost to
``reports/<benchmark>/diffguard_costs.csv``. The scoring stage of every method
(``notebooks/score.ipynb``) calls :func:`stage`: :func:`run`, which starts ``processes`` workers
with torchrun when that parameter is above 1, then the method's checks, the localisation set
where the method localises, its galleries and its report section. On several machines, start the
workers yourself on each (the files are written by rank 0)::

    torchrun --nnodes 2 --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint HOST:29500 -m ood.pipeline.score diffguard

Each process scores every ``world``-th image of each set on its own GPU (``cuda:LOCAL_RANK``; gloo
on CPUs); random draws depend on an image's key only, so the merged file equals a one-process run.
Dense methods (on a segmenter) score per pixel in one process: ``reports/scores/<dense>/<name>.npz``
and ``reports/<dense>/<name>_summary.csv``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from ..io import atomic_write
from ..sets import ID_SET, VAL_SET
from . import params as Pm
from .launch import checkpoint, device_for_rank, distributed_main, torchrun, training_report

__all__ = ["Scoring", "run", "score", "stage", "main"]


def _load(name: str, P: Mapping[str, Any], root: Path, device: str) -> tuple[Any, Any, dict[str, Any]]:
    """The trained detector (with the ``score`` section's parameters) on its model, its benchmark and
    the evaluation's own keys of the section (e.g. a seeded subset)."""
    import ood.data
    import ood.detectors
    import ood.models

    cls = ood.detectors.trained(name)
    method, (det_params, evaluation) = cls.method, cls.split_score(P[name]["score"])
    bench = ood.data.load_benchmark(**Pm.benchmark_args(P, method.benchmark, root))
    model = ood.models.load(root / "models" / bench.name / f"{method.model}.pt", map_location=device_for_rank(device))
    return ood.detectors.load(checkpoint(root, bench.name, name), model=model, **det_params), bench, evaluation


def score(name: str, P: Mapping[str, Any], root: Path) -> tuple[pd.DataFrame, pd.DataFrame, Any, Any] | None:
    """Score image method ``name``'s trained checkpoint; on rank 0 write the scores (headline, and
    the variants and labelled ablations where there are any) and the cost table, and return the
    rows (headline and variants), the costs, the detector and its benchmark; other ranks return
    ``None``."""
    import ood.evaluation.image as E

    Ev, bench_name = P["evaluate"], P["benchmark"]["name"]
    detector, bench, evaluation = _load(name, P, root, Ev["device"])
    report = training_report(root, bench_name, name)
    fit_s = json.loads(report.read_text())["fit_s"] if report.exists() else 0.0
    detector.prepare_scoring(bench.val, Ev["batch_size"])
    headline_param = detector.method.headline
    rows, costs = E.score_detector(detector, bench, batch_size=Ev["batch_size"], fit_s=fit_s,
                                   variants=detector.scores if headline_param else None,
                                   subset=evaluation.get("subset"), seed=P["data_seed"])
    ablations = [rows] if headline_param else []
    for ab in detector.ablations(evaluation):
        variant = detector.with_params(**ab.params)
        more, _ = E.score_detector(variant, bench, batch_size=Ev["batch_size"], variants=variant.scores, labels=ab.labels,
                                   sets=[ID_SET, *bench.ood], subset=ab.subset, seed=P["data_seed"])
        head = f"{name}[{detector.hparams[headline_param]}]"
        ablations.append(more[more["detector"] == head].assign(detector=f"{name}[{ab.name}]"))
    if E.shard()[0] != 0:
        return None
    headline = rows[rows["detector"] == f"{name}[{detector.hparams[headline_param]}]"].assign(detector=name) \
        if headline_param else rows
    costs = costs.assign(**detector.cost_details())
    scores = root / "reports" / "scores" / bench_name
    files = [(headline, scores / f"{name}.csv"), (costs, root / "reports" / bench_name / f"{name}_costs.csv")]
    if ablations:
        files.append((pd.concat(ablations), scores / "ablations" / f"{name}.csv"))
    for frame, path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, frame.to_csv(index=False))
    return (pd.concat([headline, rows], ignore_index=True) if headline_param else rows), costs, detector, bench


def run(name: str, P: Mapping[str, Any], root: Path, processes: int = 1) -> tuple[pd.DataFrame, pd.DataFrame, Any, Any]:
    """Score in this process, or in ``processes`` torchrun workers; returns what was written, and
    the detector ready to score (scoring prepared) with its benchmark."""
    if processes > 1:
        torchrun("ood.pipeline.score", name, processes, root, P)
        bench_name, scores = P["benchmark"]["name"], root / "reports" / "scores" / P["benchmark"]["name"]
        parts = [scores / f"{name}.csv", scores / "ablations" / f"{name}.csv"]
        rows = pd.concat([pd.read_csv(f) for f in parts if f.exists()], ignore_index=True)
        detector, bench, _ = _load(name, P, root, P["evaluate"]["device"])
        detector.prepare_scoring(bench.val, P["evaluate"]["batch_size"])
        return rows, pd.read_csv(root / "reports" / bench_name / f"{name}_costs.csv"), detector, bench
    out = score(name, P, root)
    assert out is not None
    return out


@dataclass
class Scoring:
    """What a scoring stage computed and shows: the detector, its benchmark, per-set results
    (image: AUROC per set of the headline and its variants; dense: pixel metrics), the cost row,
    the checks and the figures (title -> matplotlib Figure)."""
    detector: Any
    bench: Any
    table: pd.DataFrame
    costs: dict[str, Any]
    checks: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)


def stage(name: str, P: Mapping[str, Any], root: Path) -> Scoring:
    """The scoring stage of method ``name``: its scores files, the checks that can fail, the
    localisation set where the method localises, its galleries (saved to
    ``reports/<benchmark>/<name>_gallery/``) and its card for the report (``<name>_card.json``:
    title, section text, outlier exposure, own parameters, training seconds)."""
    import ood.detectors

    method = ood.detectors.trained(name).method
    _, evaluation = ood.detectors.trained(name).split_score(P[name]["score"])
    if method.dense:
        result = _dense(name, P, root)
    else:
        rows, costs, detector, bench = run(name, P, root, processes=evaluation.get("processes", 1))
        result = Scoring(detector, bench, _auroc_table(rows, bench), costs.iloc[0].to_dict())
    det, bench, out = result.detector, result.bench, root / "reports" / result.bench.name
    if type(det).checks is not ood.detectors.TrainedDetector.checks:
        result.checks = _checks(det, bench, P, evaluation)
        atomic_write(out / f"{name}_checks.json", json.dumps(result.checks, indent=2))
    if method.localises:
        result.figures.update(_localise(name, det, bench, P, root))
    import matplotlib.pyplot as plt

    from ..report import figures

    gallery = out / f"{name}_gallery"
    gallery.mkdir(parents=True, exist_ok=True)
    for g in det.score_galleries(bench):
        result.figures[g.title or g.file or g.kind] = fig = figures.gallery(g)
        if g.file:
            fig.savefig(gallery / f"{g.file}.png", dpi=g.dpi)
    training = json.loads(training_report(root, bench.name, name).read_text())
    order = [*ood.detectors.TRAINED, *ood.detectors.DENSE_TRAINED]
    card = {"name": name, "title": method.title or name, "rank": order.index(name), "dense": method.dense,
            "outlier_exposure": det.needs_outliers, "parameters": sum(training["parameters"].values()),
            "fit_s": training["fit_s"], "section": det.describe(P, training, result.checks, result.costs)}
    atomic_write(out / f"{name}_card.json", json.dumps(card, indent=2))  # what the report shows of the method
    plt.close("all")  # the figures stay displayable; the notebook shows them once, in its own cell
    return result


def _auroc_table(rows: pd.DataFrame, bench: Any) -> pd.DataFrame:
    """AUROC (%) of every detector row (headline, variants) per OOD set, from the scores."""
    import ood.metrics

    test = rows[rows["set"] != VAL_SET]
    ids = test[test["set"] == ID_SET]
    table = {d: {s: ood.metrics.auroc(ids.loc[ids["detector"] == d, "score"], g["score"])
                 for s, g in test[(test["detector"] == d) & test["is_ood"]].groupby("set")}
             for d in test["detector"].unique()}
    return (pd.DataFrame(table).T[list(bench.ood)] * 100).round(1)


def _checks(det: Any, bench: Any, P: Mapping[str, Any], evaluation: Mapping[str, Any]) -> dict[str, Any]:
    """The method's checks on 200 seeded ID validation images, with the scoring parameters."""
    import torch

    from ..evaluation.image import subset_indices

    idx = subset_indices(len(bench.val), 200, P["data_seed"], VAL_SET)
    x = torch.stack([bench.val[i][0] for i in idx])
    return {**det.checks(x, [(VAL_SET, i) for i in idx]), "n": len(idx), "params": {**det.hparams, **evaluation}}


def _dense(name: str, P: Mapping[str, Any], root: Path) -> Scoring:
    """Per-pixel scores of a dense method and its pixel metrics with bootstrap intervals; the
    galleries put its maps next to the per-pixel baselines' (MSP, entropy)."""
    import ood.metrics
    from ..evaluation.dense import score_dense_benchmark
    from ..evaluation.scoremaps import ScoreMaps
    from ..report import figures

    E, DE = P["evaluate"], P["dense_evaluate"]
    detector, bench, _ = _load(name, P, root, E["device"])
    out = root / "reports" / bench.name
    scores = root / "reports" / "scores" / bench.name / f"{name}.npz"
    scores.parent.mkdir(parents=True, exist_ok=True)
    accumulators, costs = score_dense_benchmark(
        detector.model, bench, [], {}, detectors={name: detector}, batch_size=P["segmenter"]["batch_size"],
        bins=DE["bins"], component_threshold=DE["component_threshold"], min_size=DE["min_size"],
        min_gt_size=DE["min_gt_size"], scores_path=scores)
    summary = ood.metrics.summarize_dense(accumulators, n_boot=E["bootstrap"], level=E["ci_level"], seed=P["data_seed"])
    summary.to_csv(out / f"{name}_summary.csv", index=False)
    costs.to_csv(out / f"{name}_costs.csv", index=False)
    both = pd.concat([pd.read_csv(out / "dense_posthoc_summary.csv"), summary])
    table = (both[both["metric"].isin(["ap", "fpr95", "auroc"])]
             .pivot_table(index="detector", columns=["set", "metric"], values="value", sort=False) * 100).round(1)
    result = Scoring(detector, bench, table, costs.iloc[0].to_dict())
    (out / f"{name}_gallery").mkdir(exist_ok=True)
    with ScoreMaps(root / "reports" / "scores" / bench.name / "dense_posthoc.npz") as base, ScoreMaps(scores) as ours:
        for s, ds in bench.ood.items():
            n = min(DE["gallery"], len(ds))
            maps = {d: base.head(s, d, n) for d in ("msp", "entropy") if d in base.keys(s)}
            maps[name] = ours.head(s, name, n)
            fig = figures.dense_gallery([ds[i][0] for i in range(n)], ours.head(s, "label", n), maps, n=n,
                                        title=f"{bench.name}: OOD set {s}")
            fig.savefig(out / f"{name}_gallery" / f"{s}.png", dpi=90)
            result.figures[f"OOD set {s}"] = fig
    return result


def _localise(name: str, det: Any, bench: Any, P: Mapping[str, Any], root: Path) -> dict[str, Any]:
    """Pixel metrics of the method's map on the localisation set (``<benchmark>_loc``: ID test images
    with a rectangle pasted from an OOD set) next to the naive map |x − mean ID image of the
    predicted class|; per-pixel scores to ``reports/scores/<benchmark>_loc/<name>.npz``."""
    import numpy as np
    import torch

    import ood.metrics
    from ..data.localisation import localisation_set
    from ..evaluation.image import class_means
    from ..evaluation.scoremaps import ScoreMapWriter
    from ..report import figures
    from ..train import predict

    E, L, DE = P["evaluate"], P["localisation"], P["dense_evaluate"]
    loc_name = f"{bench.name}_loc"
    loc = localisation_set(bench, L["n"], seed=P["data_seed"], side=tuple(L["side"]))
    x_loc, masks = loc.tensors[0], loc.tensors[1].numpy().astype(np.uint8)
    maps = {name: torch.cat([det.score_map(x_loc[i:i + 512]) for i in range(0, len(loc), 512)]).numpy()}
    means = class_means(det.model, bench.train, len(bench.classes), E["batch_size"])
    pred_loc = predict(det.model, loc, E["batch_size"])[0].argmax(1)
    maps["class_mean_diff"] = (x_loc - means[pred_loc]).abs().amax(1).numpy()
    group_of = {s: g for g, names in bench.groups.items() for s in names}
    subsets = {g: np.array([group_of[s] == g for s in loc.sources]) for g in bench.groups}
    subsets["all"] = np.ones(len(loc), dtype=bool)
    settings = dict(bins=DE["bins"], threshold=DE["component_threshold"], min_size=DE["min_size"],
                    min_gt_size=DE["min_gt_size"])
    accumulators = {d: {g: ood.metrics.dense_accumulators(m[keep], masks[keep], **settings) for g, keep in subsets.items()}
                    for d, m in maps.items()}
    summary = ood.metrics.summarize_dense(accumulators, n_boot=E["bootstrap"], level=E["ci_level"], seed=P["data_seed"])
    (root / "reports" / loc_name).mkdir(parents=True, exist_ok=True)
    summary.to_csv(root / "reports" / loc_name / f"{name}_summary.csv", index=False)
    (root / "reports" / "scores" / loc_name).mkdir(parents=True, exist_ok=True)
    with ScoreMapWriter(root / "reports" / "scores" / loc_name / f"{name}.npz") as store:  # np.load opens it
        store.write("all", "label", masks)
        for d, m in maps.items():
            store.write("all", d, m)
    fig = figures.dense_gallery(x_loc[:8], masks[:8], {d: m[:8] for d, m in maps.items()}, n=8, title=f"{loc_name}: localisation")
    gallery = root / "reports" / bench.name / f"{name}_gallery"
    gallery.mkdir(parents=True, exist_ok=True)
    fig.savefig(gallery / "localisation.png", dpi=80)
    table = summary[summary["metric"].isin(["auroc", "ap", "fpr95"])].copy()
    table["value"] = [f"{v * 100:.1f} ({lo * 100:.1f}–{hi * 100:.1f})" for v, lo, hi in zip(table["value"], table["lo"], table["hi"])]
    table = table.pivot_table(index="detector", columns=["set", "metric"], values="value", aggfunc="first")
    return {f"{loc_name}: pixel metrics (%, {E['ci_level'] * 100:g} % intervals over {len(loc)} images)": table,
            f"{loc_name}: localisation": fig}


def main(argv: list[str] | None = None) -> int:
    return distributed_main(score, "python -m ood.pipeline.score METHOD   (e.g. diffguard; under torchrun: sharded)", "scored",
                            argv)


if __name__ == "__main__":
    sys.exit(main())
