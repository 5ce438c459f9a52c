"""Write the pipeline notebooks from the cell sources below (run after editing them here).

Keeping the sources in one reviewed Python file makes notebook diffs readable; the .ipynb files
are committed clean (no outputs) with a cell tagged ``parameters`` for papermill.
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent.parent / "notebooks"

PARAMETERS = """\
# Parameters: papermill injects params.yaml's values below this cell (`-f params.yaml`).
# Run by hand (e.g. in JupyterLab), whatever stays None is read from params.yaml.
seed = None
data = None
benchmark = None
dense_benchmark = None
classifier = None
segmenter = None
detectors = None
dense_detectors = None
dense_evaluate = None
evaluate = None"""

SETUP = """\
import json
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import Markdown, display

import ood.data
import ood.params
from ood.report import figures

P = ood.params.from_notebook(seed=seed, data=data, benchmark=benchmark, dense_benchmark=dense_benchmark,
                             classifier=classifier, segmenter=segmenter, detectors=detectors,
                             dense_detectors=dense_detectors, dense_evaluate=dense_evaluate, evaluate=evaluate)
ROOT = ood.params.project_root()
NAME = P["SECTION"]["name"]
OUT = ROOT / "reports" / NAME
OUT.mkdir(parents=True, exist_ok=True)
torch.set_num_threads(max(1, torch.get_num_threads()))
%matplotlib inline"""


def setup(section="benchmark"):
    return SETUP.replace("SECTION", section)


def notebook(cells):
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    out = []
    for kind, src in cells:
        if kind == "md":
            out.append(new_markdown_cell(src))
        else:
            cell = new_code_cell(src)
            if kind == "parameters":
                cell.metadata["tags"] = ["parameters"]
            out.append(cell)
    nb.cells = out
    return nb


DATA = [
    ("md", "# 1 · Data\nBuilds the image benchmark from the checksum-verified raw data and shows every split and OOD set."),
    ("parameters", PARAMETERS),
    ("code", setup()),
    ("code", """\
bench = ood.data.load_benchmark(**ood.params.benchmark_args(P))
sizes = pd.DataFrame(
    [{"split / set": s, "role": "ID", "images": len(ds)} for s, ds in
     (("train", bench.train), ("val", bench.val), ("test", bench.test))]
    + [{"split / set": s, "role": f"OOD ({g})", "images": len(bench.ood[s])}
       for g, names in bench.groups.items() for s in names])
(OUT / "data.json").write_text(json.dumps({"classes": bench.classes, "groups": bench.groups,
                                           "sizes": dict(zip(sizes["split / set"], sizes["images"].tolist()))}, indent=2))
display(Markdown(f"**{NAME}**: ID classes {', '.join(bench.classes)}."))
sizes"""),
    ("md", "## Samples of every set\nTop rows: ID test images; then the near-OOD (held-out classes) and far-OOD sets."),
    ("code", """\
fig = figures.sample_grid({"id (test)": bench.test, **bench.ood}, n=10)
plt.show()"""),
    ("md", "## Intensity statistics\nMean pixel intensity per image: far-OOD sets that differ grossly here are easy for any detector."),
    ("code", """\
rows = []
for s, ds in {"id": bench.test, **bench.ood}.items():
    x = torch.stack([ds[i][0] for i in range(min(len(ds), 1000))])
    rows += [{"set": s, "mean intensity": float(v)} for v in x.mean(dim=(1, 2, 3))]
import seaborn as sns
fig, ax = plt.subplots(figsize=(8, 3.5))
sns.boxplot(pd.DataFrame(rows), x="set", y="mean intensity", ax=ax)
ax.set_title("Mean pixel intensity per set (first 1000 images)")
plt.show()"""),
    ("md", "## Dense benchmark: scenes\nTraining scenes hold ID objects only; test scenes come clean (for the segmenter's mIoU) and with "
           "pasted anomalies, near (held-out Fashion-MNIST classes) and far (digits, natural-image crops). "
           "OOD ground truth: orange = anomaly, grey = void (blended border), black = ID."),
    ("code", """\
dense = ood.data.load_benchmark(**ood.params.benchmark_args(P, "dense_benchmark"))
DENSE = dense.name
(ROOT / "reports" / DENSE).mkdir(parents=True, exist_ok=True)
dense_sizes = {"train": len(dense.train), "val": len(dense.val), "test": len(dense.test), **{s: len(d) for s, d in dense.ood.items()}}
(ROOT / "reports" / DENSE / "data.json").write_text(json.dumps({"classes": dense.classes, "sets": list(dense.ood), "sizes": dense_sizes}, indent=2))
display(Markdown(f"**{DENSE}**: classes {', '.join(dense.classes)}; scenes per split/set: {dense_sizes}."))
train_x = [dense.train[i] for i in range(6)]
fig = figures.label_maps([x for x, _ in train_x], [y for _, y in train_x], [y for _, y in train_x], dense.classes)
fig.suptitle("Training scenes and their semantic labels (rows 2 and 3 identical here)")
plt.show()
for s, ds in dense.ood.items():
    items = [ds[i] for i in range(6)]
    fig = figures.dense_gallery([x for x, _ in items], [y for _, y in items], {}, title=f"{s}-OOD scenes")
    plt.show()"""),
]

CLASSIFIER = [
    ("md", "# 2 · Classifier\nTrains the ID classifier every detector shares (one training loop: seeded, checkpointed, resumable)."),
    ("parameters", PARAMETERS),
    ("code", setup()),
    ("code", """\
import ood.models
import ood.train
from ood.train import predict

C = P["classifier"]
ood.train.seed_everything(P["seed"])
bench = ood.data.load_benchmark(**ood.params.benchmark_args(P))
config = {"num_classes": len(bench.classes), "in_channels": bench.in_channels, "image_size": bench.image_size[0]}
model = ood.models.build(C["arch"], **config)
history = ood.train.train(
    model, bench.train, bench.val, epochs=C["epochs"], batch_size=C["batch_size"], lr=C["lr"],
    weight_decay=C["weight_decay"], optimizer=C["optimizer"], scheduler=C["scheduler"], seed=P["seed"],
    device=C["device"], amp=C["amp"], hflip=C["hflip"], checkpoint=ROOT / "checkpoints" / NAME / "classifier.ckpt",
    run_id=json.dumps([P["benchmark"], C["arch"], config]))
model.eval()"""),
    ("code", """\
logits, labels = predict(model, bench.test, batch_size=P["evaluate"]["batch_size"])
pred = logits.argmax(1)
accuracy = float((pred == labels).float().mean())
ood.models.save(model, ROOT / "models" / NAME / "classifier.pt", arch=C["arch"], config=config,
                classes=bench.classes)
(OUT / "classifier.json").write_text(json.dumps({"accuracy": accuracy, "history": history}, indent=2))
display(Markdown(f"**ID test accuracy: {accuracy:.4f}** on {len(labels)} images "
                 f"({C['arch']}, {C['epochs']} epochs, device {ood.train.resolve_device(C['device'])})."))"""),
    ("md", "## Training curves"),
    ("code", """\
fig = figures.training_curves(pd.DataFrame(history))
plt.show()"""),
    ("md", "## Confusion matrix (ID test)"),
    ("code", """\
fig = figures.confusion_matrix(labels.numpy(), pred.numpy(), bench.classes)
plt.show()"""),
]

EVALUATE = [
    ("md", "# 3 · Evaluate\nFits every detector on ID training data, scores ID test and every OOD set, and summarises the metrics "
           "with bootstrap confidence intervals. OOD is the positive class; higher score = more OOD."),
    ("parameters", PARAMETERS),
    ("code", setup()),
    ("code", """\
import ood.evaluate
import ood.metrics
import ood.models
from ood.train import resolve_device

E = P["evaluate"]
bench = ood.data.load_benchmark(**ood.params.benchmark_args(P))
model = ood.models.load(ROOT / "models" / NAME / "classifier.pt", map_location=resolve_device(E["device"]))
scores, timings = ood.evaluate.score_benchmark(model, bench, P["detectors"]["names"], P["detectors"],
                                               batch_size=E["batch_size"])
(ROOT / "reports" / "scores").mkdir(parents=True, exist_ok=True)
scores.to_csv(ROOT / "reports" / "scores" / f"{NAME}.csv", index=False)
timings.to_csv(OUT / "timings.csv", index=False)
summary = ood.metrics.summarize(scores, bench.groups, n_boot=E["bootstrap"], level=E["ci_level"], seed=P["seed"])
summary.to_csv(OUT / "summary.csv", index=False)
display(Markdown(f"{scores['detector'].nunique()} detectors × {scores['set'].nunique()} sets, {len(scores):,} scores."))"""),
    ("md", "## AUROC per set (%)"),
    ("code", """\
(summary.query("metric == 'auroc'").pivot(index="detector", columns="set", values="value")
 .reindex(index=P["detectors"]["names"], columns=[*bench.ood, "near", "far"]) * 100).round(1)"""),
    ("md", "## Score distributions"),
    ("code", """\
for name in P["detectors"]["names"]:
    fig = figures.score_histograms(scores, name)
    plt.show()"""),
    ("md", "## Cost\nScoring time as a multiple of one plain forward pass of the classifier over the same images."),
    ("code", "timings.round(3)"),
]


SEGMENTER = [
    ("md", "# 4 · Segmenter\nTrains the segmenter of the dense benchmark on clean scenes (same training loop as the classifier) "
           "and measures its mIoU on clean test scenes."),
    ("parameters", PARAMETERS),
    ("code", setup("dense_benchmark")),
    ("code", """\
import numpy as np
import ood.metrics
import ood.models
import ood.train

S = P["segmenter"]
ood.train.seed_everything(P["seed"])
bench = ood.data.load_benchmark(**ood.params.benchmark_args(P, "dense_benchmark"))
config = {"num_classes": len(bench.classes), "in_channels": bench.in_channels}
model = ood.models.build(S["arch"], **config)
history = ood.train.train(
    model, bench.train, bench.val, epochs=S["epochs"], batch_size=S["batch_size"], lr=S["lr"],
    weight_decay=S["weight_decay"], optimizer=S["optimizer"], scheduler=S["scheduler"], seed=P["seed"],
    device=S["device"], amp=S["amp"], hflip=S["hflip"], checkpoint=ROOT / "checkpoints" / NAME / "segmenter.ckpt",
    run_id=json.dumps([P["dense_benchmark"], S["arch"], config]))
model.eval()"""),
    ("code", """\
logits, labels = ood.train.predict(model, bench.test, batch_size=S["batch_size"])
pred = logits.argmax(1)
conf = ood.metrics.pixel_confusion(pred.numpy(), labels.numpy(), len(bench.classes))
iou = ood.metrics.iou_per_class(conf)
miou = ood.metrics.mean_iou(conf)
ood.models.save(model, ROOT / "models" / NAME / "segmenter.pt", arch=S["arch"], config=config, classes=bench.classes)
(OUT / "segmenter.json").write_text(json.dumps(
    {"miou": miou, "iou": dict(zip(bench.classes, map(float, iou))), "history": history}, indent=2))
display(Markdown(f"**mIoU on clean test scenes: {miou:.4f}** ({len(labels)} scenes; {S['arch']}, {S['epochs']} epochs)."))
pd.DataFrame({"class": bench.classes, "IoU (%)": (iou * 100).round(1)})"""),
    ("md", "## Training curves"),
    ("code", """\
fig = figures.training_curves(pd.DataFrame(history))
plt.show()"""),
    ("md", "## Predictions on clean test scenes"),
    ("code", """\
x = torch.stack([bench.test[i][0] for i in range(6)])
fig = figures.label_maps(x, labels[:6].numpy(), pred[:6].numpy(), bench.classes)
plt.show()"""),
]

EVALUATE_DENSE = [
    ("md", "# 5 · Evaluate (dense)\nScores every pixel of the anomaly scenes with every dense detector and computes the pixel metrics "
           "(AP, FPR@95TPR, AUROC over all valid pixels) and the SegmentMeIfYouCan component metrics (sIoU, PPV, mean F1), "
           "with bootstrap confidence intervals over scenes. *all* pools the pixels of every set."),
    ("parameters", PARAMETERS),
    ("code", setup("dense_benchmark")),
    ("code", """\
import numpy as np
import ood.evaluate
import ood.metrics
import ood.models
from ood.train import resolve_device

E, DE = P["evaluate"], P["dense_evaluate"]
bench = ood.data.load_benchmark(**ood.params.benchmark_args(P, "dense_benchmark"))
model = ood.models.load(ROOT / "models" / NAME / "segmenter.pt", map_location=resolve_device(E["device"]))
accumulators, maps, timings = ood.evaluate.score_dense_benchmark(
    model, bench, P["dense_detectors"]["names"], P["dense_detectors"], batch_size=P["segmenter"]["batch_size"],
    bins=DE["bins"], component_threshold=DE["component_threshold"], min_size=DE["min_size"], min_gt_size=DE["min_gt_size"])
summary = ood.metrics.summarize_dense(accumulators, n_boot=E["bootstrap"], level=E["ci_level"], seed=P["seed"])
summary.to_csv(OUT / "summary.csv", index=False)
timings.to_csv(OUT / "timings.csv", index=False)
(ROOT / "reports" / "scores").mkdir(parents=True, exist_ok=True)
np.savez_compressed(ROOT / "reports" / "scores" / f"{NAME}.npz",
                    **{f"{s}/{k}": v for s, per in maps.items() for k, v in per.items()})
thresholds = {d: {s: acc[1].threshold for s, acc in per.items()} for d, per in accumulators.items()}
display(Markdown(f"Per-pixel scores of {len(maps)} sets saved to `reports/scores/{NAME}.npz` "
                 "(keys `<set>/label` with 0 = ID, 1 = OOD, 255 = void, and `<set>/<detector>`)."))
(summary.pivot_table(index="detector", columns=["set", "metric"], values="value", sort=False) * 100).round(1)"""),
    ("md", "## Anomaly maps"),
    ("code", """\
n = P["dense_evaluate"]["gallery"]
for s, ds in bench.ood.items():
    fig = figures.dense_gallery([ds[i][0] for i in range(n)], maps[s]["label"][:n],
                                {d: maps[s][d] for d in P["dense_detectors"]["names"]}, n=n, title=f"{NAME}: {s}-OOD scenes")
    (OUT / "gallery").mkdir(exist_ok=True)
    fig.savefig(OUT / "gallery" / f"{s}.png", dpi=90)
    plt.show()"""),
    ("md", "## Component thresholds\nScore threshold used to segment anomalies for the component metrics (SMIYC: best pixel F1)."),
    ("code", "pd.DataFrame(thresholds).T.round(4)"),
]

REPORT = [
    ("md", "# OOD detection study: report"),
    ("parameters", PARAMETERS),
    ("code", setup().replace("OUT.mkdir(parents=True, exist_ok=True)\n", "")),
    ("code", """\
import ood.metrics
from IPython.display import Image
from ood.report import tables

DENSE = P["dense_benchmark"]["name"]
clf = json.loads((ROOT / "reports" / NAME / "classifier.json").read_text())
seg = json.loads((ROOT / "reports" / DENSE / "segmenter.json").read_text())
summary = pd.read_csv(ROOT / "reports" / NAME / "summary.csv")
dense_summary = pd.read_csv(ROOT / "reports" / DENSE / "summary.csv")
scores = pd.read_csv(ROOT / "reports" / "scores" / f"{NAME}.csv")
groups = json.loads((ROOT / "reports" / NAME / "data.json").read_text())["groups"]
metrics = {
    NAME: {"model": {"accuracy": round(clf["accuracy"], 6)}, "detectors": ood.metrics.to_metrics_json(summary)},
    DENSE: {"model": {"miou": round(seg["miou"], 6)}, "detectors": ood.metrics.to_metrics_json(dense_summary)},
}
tmp = ROOT / "reports" / "metrics.json.tmp"
tmp.write_text(json.dumps(metrics, indent=2))
tmp.replace(ROOT / "reports" / "metrics.json")
level = int(P["evaluate"]["ci_level"] * 100)
display(Markdown(f\"\"\"
**How to read the numbers.** OOD is the positive class and every detector's score is *higher = more OOD*.
All metrics are in %. FPR@95TPR is the fraction of ID samples (images, or pixels for dense benchmarks) scored above the
threshold at which 95 % of the OOD samples are detected (OpenOOD v1.5 convention). In parentheses: {level} % bootstrap
confidence interval ({P['evaluate']['bootstrap']} resamples; images: ID and OOD resampled separately; dense: scenes
resampled). *near* and *far* of image benchmarks are unweighted means over the sets of each group; *all* of dense
benchmarks pools the pixels of every scene. Best per column in **bold**. Every number comes from the per-sample scores
in `reports/scores/` written by this run.
\"\"\"))"""),
    ("code", """\
display(Markdown(f"## {NAME} (image OOD detection)\\nClassifier ID test accuracy: **{clf['accuracy'] * 100:.1f} %**. "
                 f"Near-OOD: {', '.join(groups['near'])}. Far-OOD: {', '.join(groups['far'])}."))
for metric, label in (("auroc", "AUROC (higher is better)"), ("fpr95", "FPR@95TPR (lower is better)")):
    display(Markdown(f"**{label}**"))
    display(tables.results_table(summary, metric_pairs=(metric,)))"""),
    ("md", "### ROC curves\nOne panel per group; every OOD set of the group pooled against the ID test set."),
    ("code", """\
fig, axes = plt.subplots(1, len(groups), figsize=(5.2 * len(groups), 4.8))
for ax, (g, names) in zip(axes, groups.items()):
    figures.roc_curves(scores, names, title=f"{NAME}: {g}-OOD", ax=ax)
fig.tight_layout()
plt.show()"""),
    ("md", "### Score distributions\nID test vs each OOD set, for every detector."),
    ("code", """\
for name in P["detectors"]["names"]:
    fig = figures.score_histograms(scores, name)
    plt.show()"""),
    ("code", """\
display(Markdown(f"## {DENSE} (dense OOD detection)\\nSegmenter mIoU on clean test scenes: **{seg['miou'] * 100:.1f} %**. "
                 "Pixel metrics over all valid pixels (void ignored); component metrics as SegmentMeIfYouCan, with the "
                 "segmentation threshold chosen as the best pixel F1 on the evaluated scenes (the official protocol)."))
for metric, label in (("ap", "Pixel AP (higher is better)"), ("fpr95", "Pixel FPR@95TPR (lower is better)"),
                      ("siou", "sIoU (higher is better)"), ("ppv", "PPV (higher is better)"),
                      ("mean_f1", "mean F1 over τ = 0.25…0.75 (higher is better)")):
    display(Markdown(f"**{label}**"))
    display(tables.results_table(dense_summary, metric_pairs=(metric,)))"""),
    ("md", "### Anomaly maps\nScenes, OOD ground truth (orange = anomaly, grey = void) and every detector's map."),
    ("code", """\
for path in sorted((ROOT / "reports" / DENSE / "gallery").glob("*.png")):
    display(Image(filename=str(path)))"""),
    ("md", "## Cost per detector\nScoring time as a multiple of one network forward pass over the same images (this machine)."),
    ("code", """\
pd.concat({b: pd.read_csv(ROOT / "reports" / b / "timings.csv") for b in (NAME, DENSE)}).round(3)"""),
]


def main():
    HERE.mkdir(exist_ok=True)
    notebooks = {"01_data": DATA, "02_classifier": CLASSIFIER, "03_evaluate": EVALUATE, "04_segmenter": SEGMENTER,
                 "05_evaluate_dense": EVALUATE_DENSE, "06_report": REPORT}
    for old in HERE.glob("*.ipynb"):
        if old.stem not in notebooks:
            old.unlink()
    for name, cells in notebooks.items():
        nbformat.write(notebook(cells), HERE / f"{name}.ipynb")


if __name__ == "__main__":
    main()
