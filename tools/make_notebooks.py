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
classifier = None
detectors = None
evaluate = None"""

SETUP = """\
import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import Markdown, display

import ood.data
import ood.params
from ood.report import figures

P = ood.params.from_notebook(seed=seed, data=data, benchmark=benchmark, classifier=classifier,
                             detectors=detectors, evaluate=evaluate)
ROOT = ood.params.project_root()
NAME = P["benchmark"]["name"]
OUT = ROOT / "reports" / NAME
OUT.mkdir(parents=True, exist_ok=True)
torch.set_num_threads(max(1, torch.get_num_threads()))
%matplotlib inline"""


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
    ("code", SETUP),
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
]

CLASSIFIER = [
    ("md", "# 2 · Classifier\nTrains the ID classifier every detector shares (one training loop: seeded, checkpointed, resumable)."),
    ("parameters", PARAMETERS),
    ("code", SETUP),
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
    device=C["device"], amp=C["amp"], checkpoint=ROOT / "checkpoints" / NAME / "classifier.ckpt",
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
    ("code", SETUP),
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

REPORT = [
    ("md", "# OOD detection study: report"),
    ("parameters", PARAMETERS),
    ("code", SETUP.replace("OUT.mkdir(parents=True, exist_ok=True)\n", "")),
    ("code", """\
import ood.metrics
from ood.report import tables

BENCHMARKS = [NAME]
metrics, summaries, scores_by = {}, {}, {}
for b in BENCHMARKS:
    clf = json.loads((ROOT / "reports" / b / "classifier.json").read_text())
    summaries[b] = pd.read_csv(ROOT / "reports" / b / "summary.csv")
    scores_by[b] = pd.read_csv(ROOT / "reports" / "scores" / f"{b}.csv")
    metrics[b] = {"model": {"accuracy": round(clf["accuracy"], 6)},
                  "detectors": ood.metrics.to_metrics_json(summaries[b])}
tmp = ROOT / "reports" / "metrics.json.tmp"
tmp.write_text(json.dumps(metrics, indent=2))
tmp.replace(ROOT / "reports" / "metrics.json")
level = int(P["evaluate"]["ci_level"] * 100)
display(Markdown(f\"\"\"
**How to read the numbers.** OOD is the positive class and every detector's score is *higher = more OOD*.
AUROC and FPR@95TPR are in %; FPR@95TPR is the fraction of ID test images scored above the threshold at which
95 % of the OOD images are detected (OpenOOD v1.5 convention). Brackets: {level} % bootstrap confidence interval
({P['evaluate']['bootstrap']} resamples, ID and OOD resampled separately). *near* and *far* are unweighted means over
the sets of each group. Best per column in **bold** (highest AUROC, lowest FPR95).
Every number comes from `reports/scores/`, the per-image scores written by this run.
\"\"\"))"""),
    ("code", """\
for b in BENCHMARKS:
    groups = json.loads((ROOT / "reports" / b / "data.json").read_text())["groups"]
    display(Markdown(f"## {b}\\nClassifier ID test accuracy: **{metrics[b]['model']['accuracy'] * 100:.1f} %**. "
                     f"Near-OOD: {', '.join(groups['near'])}. Far-OOD: {', '.join(groups['far'])}."))
    for metric, label in (("auroc", "AUROC (%, higher is better)"), ("fpr95", "FPR@95TPR (%, lower is better)")):
        display(Markdown(f"**{label}**"))
        display(tables.results_table(summaries[b], metric_pairs=(metric,)))"""),
    ("md", "## ROC curves\nOne panel per group; every OOD set of the group pooled against the ID test set."),
    ("code", """\
for b in BENCHMARKS:
    groups = json.loads((ROOT / "reports" / b / "data.json").read_text())["groups"]
    fig, axes = plt.subplots(1, len(groups), figsize=(5.2 * len(groups), 4.8))
    for ax, (g, names) in zip(axes, groups.items()):
        figures.roc_curves(scores_by[b], names, title=f"{b}: {g}-OOD", ax=ax)
    fig.tight_layout()
    plt.show()"""),
    ("md", "## Score distributions\nID test vs each OOD set, for every detector."),
    ("code", """\
for b in BENCHMARKS:
    for name in P["detectors"]["names"]:
        fig = figures.score_histograms(scores_by[b], name)
        plt.show()"""),
    ("md", "## Cost per detector\nScoring time as a multiple of one classifier forward pass over the same images (this machine)."),
    ("code", """\
pd.concat({b: pd.read_csv(ROOT / "reports" / b / "timings.csv") for b in BENCHMARKS}).round(3)"""),
]


def main():
    HERE.mkdir(exist_ok=True)
    for name, cells in {"01_data": DATA, "02_classifier": CLASSIFIER, "03_evaluate": EVALUATE, "04_report": REPORT}.items():
        nbformat.write(notebook(cells), HERE / f"{name}.ipynb")


if __name__ == "__main__":
    main()
