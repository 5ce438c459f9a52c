"""End to end: the real DVC pipeline (every notebook, papermill, nbconvert) on tiny fake data.

Runs in a throw-away copy of the repository with fake Fashion-MNIST files in the official IDX
format, a tiny subset and one epoch, then checks the contracts other people rely on: the shape of
reports/metrics.json, the tidy scores, the HTML report, DVC caching and parameter validation.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import browser
import report_numbers
from fakes import write_fake_fashion_mnist
from ood.pipeline.notebook import IMPORTS_ENV
from workspace import REPO, copy_repo, run, tiny

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """A copy of the repository that has run `dvc repro` once on tiny data."""
    work = tmp_path_factory.mktemp("study")
    copy_repo(work)
    params = tiny(yaml.safe_load((work / "params.yaml").read_text()))
    params["classifier"]["weights"] = "weights/fmnist6/classifier"  # the stage loads it (the segmenter's trains)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    write_fake_fashion_mnist(work / "data" / "fashion-mnist", n_train=1200, n_test=400, gz=False)
    shutil.rmtree(work / "weights" / "fmnist6" / "classifier", ignore_errors=True)
    run(["python", "-m", "ood.pipeline.recipe", "train", "classifier", "--seeds", "0"], work)  # ships the tiny recipe
    run(["git", "init", "-q"], work)
    run(["dvc", "add", "-q", "data"], work)  # the fake data replaces the real data.dvc entry
    run(["git", "add", "-A"], work)
    run(["git", "commit", "-qm", "fixture"], work)
    run(["dvc", "repro"], work, env={IMPORTS_ENV: str(imports_record(work))})  # each stage records what it imported
    run(["git", "add", "-A"], work)
    run(["git", "commit", "-qm", "baseline results"], work)  # what experiments are compared against
    return work


def imports_record(work: Path) -> Path:
    """Where the stages of the study fixture record the project modules they imported."""
    return work.with_name(f"{work.name}-imports.jsonl")


def test_metrics_json_has_every_detector_in_the_documented_shape(study: Path) -> None:
    params = yaml.safe_load((study / "params.yaml").read_text())
    metrics = json.loads((study / "reports" / "metrics.json").read_text())
    assert set(metrics) == {"fmnist6", "scenes", "fmnist6_loc"}
    entry = metrics["fmnist6"]
    assert 0.0 <= entry["model"]["accuracy"] <= 1.0
    assert list(entry["detectors"]) == [*params["detectors"]["names"], "diffguard", "heatmap", "moodcat",
                                      *params["combine"]["names"]]
    sets = {"shirt", "sneaker", "bag", "ankle_boot", "digits", "natural", "noise", "near", "far"}
    for det, per_set in entry["detectors"].items():
        assert set(per_set) == sets, det
        for s, vals in per_set.items():
            assert set(vals) == {"auroc", "fpr95", "aupr_in", "aupr_out"}, (det, s)
            assert all(0.0 <= v <= 1.0 for v in vals.values()), (det, s, vals)
    dense = metrics["scenes"]
    assert 0.0 <= dense["model"]["miou"] <= 1.0
    assert list(dense["detectors"]) == [*params["dense_detectors"]["names"], "nflowjs"]
    assert 0.0 <= dense["model"]["miou_nflowjs"] <= 1.0
    loc = metrics["fmnist6_loc"]["detectors"]
    assert set(loc) == {"heatmap", "class_mean_diff"}
    for per_set in [*dense["detectors"].values(), *loc.values()]:
        assert set(per_set) == {"near", "far", "all"}
        for s, vals in per_set.items():
            assert set(vals) == {"ap", "fpr95", "auroc", "siou", "ppv", "mean_f1"}, s
            assert all(0.0 <= v <= 1.0 for v in vals.values()), (s, vals)


def test_ablations_never_enter_the_metrics(study: Path) -> None:
    metrics = json.loads((study / "reports" / "metrics.json").read_text())["fmnist6"]["detectors"]
    ablations = json.loads((study / "reports" / "ablations.json").read_text())["fmnist6"]["detectors"]
    assert "moodcat[oracle]" in ablations and {f"moodcat[{d}]" for d in ("pair", "perceptual", "logit", "ssim", "pixel")} <= set(ablations)
    assert not [d for d in metrics if "[" in d or "oracle" in d]
    # the headline row is the ablation row of the distance fixed in params.yaml, not a different score
    params = yaml.safe_load((study / "params.yaml").read_text())
    assert metrics["moodcat"] == ablations[f"moodcat[{params['moodcat']['score']['distance']}]"]


def test_scores_are_tidy_and_reproduce_the_metrics(study: Path) -> None:
    from ood.metrics import auroc

    scores = pd.read_csv(study / "reports" / "scores" / "fmnist6" / "posthoc.csv")
    assert list(scores.columns) == ["benchmark", "detector", "set", "index", "score", "is_ood"]
    metrics = json.loads((study / "reports" / "metrics.json").read_text())["fmnist6"]["detectors"]
    msp = scores[scores.detector == "msp"]
    ids, digits = msp[msp.set == "id"].score, msp[msp.set == "digits"].score
    assert not msp[msp.set == "id"].is_ood.any() and msp[msp.set == "digits"].is_ood.all()
    assert auroc(ids.to_numpy(), digits.to_numpy()) == pytest.approx(metrics["msp"]["digits"]["auroc"], abs=1e-6)
    assert (scores[scores.set == "val"].is_ood == False).all()  # noqa: E712 - ID validation rows, never in metrics


def test_combination_is_fitted_on_id_validation_only(study: Path) -> None:
    from ood.metrics import auroc

    files = ("posthoc", "heatmap")
    scores = pd.concat([pd.read_csv(study / "reports" / "scores" / "fmnist6" / f"{f}.csv") for f in files])
    z = {}
    for det in ("heatmap", "msp"):
        rows = scores[scores.detector == det].set_index(["set", "index"])["score"]
        val = rows.loc["val"]
        z[det] = (rows - val.mean()) / val.std(ddof=1)
    combined = (z["heatmap"] + z["msp"]) / 2
    metric = json.loads((study / "reports" / "metrics.json").read_text())["fmnist6"]["detectors"]["heatmap+msp"]
    assert auroc(combined.loc["id"].to_numpy(), combined.loc["bag"].to_numpy()) == pytest.approx(metric["bag"]["auroc"], abs=1e-6)


def test_dense_pixel_scores_reproduce_the_dense_metrics(study: Path) -> None:
    from sklearn.metrics import average_precision_score

    dense = json.loads((study / "reports" / "metrics.json").read_text())["scenes"]["detectors"]
    from ood.evaluation.scoremaps import ScoreMaps

    maps = ScoreMaps(study / "reports" / "scores" / "scenes" / "dense_posthoc.npz")
    label, score = maps.load("near", "label").ravel(), maps.load("near", "entropy").ravel()
    valid = label != 255
    assert set(np.unique(label)) <= {0, 1, 255}
    ap = average_precision_score(label[valid], score[valid])
    assert ap == pytest.approx(dense["entropy"]["near"]["ap"], abs=1e-3)  # binned metric, bounded error
    ours = ScoreMaps(study / "reports" / "scores" / "scenes" / "nflowjs.npz")  # NFlowJS writes its own store
    assert (ours.load("near", "label") == maps.load("near", "label")).all()
    score = ours.load("near", "nflowjs").ravel()
    assert average_precision_score(label[valid], score[valid]) == pytest.approx(dense["nflowjs"]["near"]["ap"], abs=1e-3)


def test_report_is_self_contained_html_without_code(study: Path) -> None:
    html = (study / "reports" / "report.html").read_text()
    assert "<img" in html and "data:image/png;base64" in html  # figures embedded
    assert "OpenOOD v1.5" in html and "fmnist6" in html
    assert "from ood.pipeline.notebook import setup" not in html  # code cells are not exported
    assert "Pixel AP" in html and "scenes" in html  # the dense section
    assert "auxiliary outliers" in html and "heatmap †" in html  # outlier exposure is marked
    stages = yaml.safe_load((study / "dvc.yaml").read_text())["stages"]
    for stage, spec in stages.items():
        if "ood.pipeline.notebook" in spec["cmd"]:
            assert (study / "reports" / "notebooks" / f"{stage}.ipynb").exists(), stage
    assert (study / "models" / "fmnist6" / "classifier.pt").exists()
    assert (study / "models" / "fmnist6" / "heatmap.pt").exists()
    assert (study / "models" / "fmnist6" / "moodcat.pt").exists()
    assert (study / "models" / "fmnist6" / "diffusion.pt").exists()
    assert "DiffGuard: reconstructions and ablations" in html and "Paired tests" in html and "Holm" in html
    assert "<details>" in html and "Provenance" in html and 'href="notebooks/posthoc.html"' in html
    assert "MoodCat: syntheses and ablations" in html and "never a result" in html
    assert (study / "models" / "scenes" / "segmenter.pt").exists()
    assert (study / "models" / "scenes" / "nflowjs.pt").exists()
    assert "NFlowJS: its segmenter and anomaly maps" in html


def test_every_number_in_the_report_equals_its_source(study: Path) -> None:
    assert report_numbers.problems(study) == []


def test_report_opens_in_a_headless_browser_without_errors_or_requests(study: Path) -> None:
    browser.require_chromium()
    shot = study / "reports" / "report.png"
    page = browser.check_page(study / "reports" / "report.html", shot, expect_visible="table.glance")
    print(f"screenshot: {shot}")
    assert page.problems() == [] and page.visible  # the at-a-glance table is on the first screen
    assert page.title == "OOD detection study: report" and shot.stat().st_size > 10_000


def test_rerun_with_nothing_changed_does_nothing(study: Path) -> None:
    before = (study / "reports" / "metrics.json").stat().st_mtime_ns
    out = run(["dvc", "repro"], study).stdout
    assert "didn't change, skipping" in out and "Running stage" not in out
    assert (study / "reports" / "metrics.json").stat().st_mtime_ns == before


def _ran(out: str) -> set[str]:
    import re

    return set(re.findall(r"Running stage '([^']+)'", out))


def test_ablation_of_a_scoring_parameter_reruns_only_that_scoring_stage(study: Path) -> None:
    # Four trained methods' scoring parameters and a post-hoc one at once (one experiment, to keep
    # the suite short): each scoring stage re-runs, nothing retrains, nothing else runs. DiffGuard
    # re-scores with two torchrun (gloo) processes, which must write exactly the scores one process wrote.
    scores = study / "reports" / "scores" / "fmnist6" / "diffguard.csv"
    single = pd.read_csv(scores)
    out = run(["dvc", "exp", "run", "-S", "heatmap.score.reduce=max", "-S", "moodcat.score.k=2",
               "-S", "diffguard.score.processes=2", "-S", "detectors.knn.k=3", "-S", "nflowjs.score.criterion=entropy"],
              study).stdout
    assert _ran(out) == {"heatmap", "moodcat", "diffguard", "posthoc", "nflowjs", "summarize", "report"}, out[-3000:]
    params = yaml.safe_load((study / "params.yaml").read_text())
    assert params["heatmap"]["score"]["reduce"] == "max" and params["moodcat"]["score"]["k"] == 2
    sharded = pd.read_csv(scores)
    pd.testing.assert_frame_equal(sharded.drop(columns="score"), single.drop(columns="score"))
    assert (sharded["score"] - single["score"]).abs().max() < 1e-4


def test_experiments_compare_side_by_side_and_as_dvc_plots(study: Path) -> None:
    """After the ablation above: `python -m ood.pipeline.compare` renders the experiment next to the
    committed baseline (differing parameters, each value as in its metrics.json), and
    `dvc plots diff` overlays their ROC curves."""
    exps = json.loads(run(["dvc", "exp", "show", "--json"], study).stdout)[1]["experiments"]
    assert len(exps) == 1
    exp = exps[0]["revs"][0]
    out = run([sys.executable, "-m", "ood.pipeline.compare", "-o", "reports/compare.html"], study).stdout
    assert "1 run(s) vs" in out
    page = (study / "reports" / "compare.html").read_text()
    assert "heatmap.score.reduce" in page and "detectors.knn.k" in page and "<script" not in page
    ours = exp["data"]["metrics"]["reports/metrics.json"]["data"]["fmnist6"]["detectors"]
    theirs = json.loads(run(["git", "show", "HEAD:reports/metrics.json"], study).stdout)["fmnist6"]["detectors"]
    for values in (ours, theirs):
        assert f"{100 * values['knn']['near']['auroc']:.1f} [" in page
    plots = run(["dvc", "plots", "diff", "HEAD", exp["rev"], "-o", "plots"], study).stdout
    assert (study / "plots" / "index.html").exists(), plots


def test_scoring_parameters_are_read_by_their_scoring_stage_only() -> None:
    """What each -S above could trigger, per parameter: a method's `score` section is a dependency
    of its scoring stage alone (and summarize/report never read it)."""
    import ood.detectors as D

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for method in [*D.TRAINED, *D.DENSE_TRAINED]:
        readers = {name for name, spec in stages.items()
                   if any(p in (method, f"{method}.score") for p in spec.get("params", []))}
        assert readers == {method}, (method, readers)


def test_every_parameter_is_a_dependency_of_some_stage() -> None:
    """DVC must track every key of params.yaml: a key no stage declares would change results unseen."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    declared = {p for spec in stages.values() for p in spec.get("params", [])}

    def leaves(d: dict, prefix: str = ""):
        for k, v in d.items():
            key = f"{prefix}{k}"
            if isinstance(v, dict):
                yield from leaves(v, key + ".")
            else:
                yield key

    untracked = [k for k in leaves(params) if not any(k == d or k.startswith(d + ".") for d in declared)]
    assert not untracked, f"params.yaml keys no stage depends on: {untracked}"


def test_dvc_yaml_is_current() -> None:
    """dvc.yaml is written by ``python -m ood.pipeline.stages`` from the stage list and the methods'
    descriptors; an edit by hand, or a new method without regenerating, fails here."""
    from ood.pipeline import stages

    assert (REPO / "dvc.yaml").read_text() == stages.dvc_yaml(), "run `python -m ood.pipeline.stages`"


def _module_files(root: Path, modules: list[str]) -> set[str]:
    files = set()
    for m in modules:
        path = root.joinpath(*m.split("."))
        files.add(str((path.with_suffix(".py") if path.with_suffix(".py").exists() else path / "__init__.py").relative_to(root)))
    return files


def test_every_stage_depends_on_every_project_module_it_runs(study: Path) -> None:
    """Each notebook stage of the fixture's run recorded the ``ood`` modules its kernel had imported
    at the end (``OOD_RECORD_IMPORTS``); the summary runs here the same way. Every one must be a
    declared dependency of that stage, so a change to it re-runs the stage (deleting a dep fails)."""
    stages = yaml.safe_load((study / "dvc.yaml").read_text())["stages"]
    records = [json.loads(line) for line in imports_record(study).read_text().splitlines()]
    probe = ("import json, runpy, sys\ntry:\n    runpy.run_module('ood.pipeline.summarize', run_name='__main__')\n"
             "except SystemExit:\n    pass\nprint(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'ood')))")
    records.append(["summarize", json.loads(run([sys.executable, "-c", probe], study).stdout.splitlines()[-1])])
    assert {name for name, _ in records} == set(stages), "every stage was recorded"
    for name, modules in records:
        missing = sorted(_module_files(study, modules) - set(stages[name]["deps"]))
        assert not missing, f"stage {name} imported {missing}, which dvc.yaml does not list as its deps"


def test_editing_one_method_marks_only_its_own_stages_stale(study: Path, tmp_path: Path) -> None:
    """In a scratch copy of the run study, a change to one method's module makes `dvc status`
    report that method's training and scoring stages, and no other stage."""

    import ood.detectors as D

    work = tmp_path / "scratch"
    shutil.copytree(study, work, symlinks=True)
    assert json.loads(run(["dvc", "status", "--json"], work).stdout) == {}
    for name in [*D.TRAINED, *D.DENSE_TRAINED]:
        module = work.joinpath(*D.trained(name).__module__.split(".")).with_suffix(".py")
        source = module.read_text()
        module.write_text(source + "\n# an edit\n")
        stale = set(json.loads(run(["dvc", "status", "--json"], work).stdout))
        module.write_text(source)
        assert stale == set(D.trained(name).method.stages(name)), (name, stale)
    assert json.loads(run(["dvc", "status", "--json"], work).stdout) == {}


def test_invalid_parameter_stops_before_any_work(study: Path) -> None:
    params = (study / "params.yaml").read_text()
    try:
        (study / "params.yaml").write_text(params.replace("epochs: 1", "epochs: -1"))
        proc = run(["dvc", "repro", "classifier"], study, check=False)
        assert proc.returncode != 0
        assert "classifier.epochs: must be an integer in [0, 1000], got -1" in proc.stdout + proc.stderr
        assert "epoch 1/" not in proc.stdout + proc.stderr  # training never started
    finally:
        (study / "params.yaml").write_text(params)
        run(["dvc", "checkout", "-q", "classifier"], study)  # dvc removed the stage's outputs before running it


def test_training_runs_data_parallel_under_torchrun(study: Path, tmp_path: Path) -> None:
    """``train.processes: 2`` trains in two torchrun workers (gloo on the CPU) through ``ood.pipeline.fit``:
    rank 0 writes the checkpoint, the stage loads it, and it scores. The workers train with the
    parameters the stage was given, not params.yaml's (a notebook's injected values). (That the
    workers' weights equal one process on the union of their batches is tests/test_ddp.py's.)"""

    import ood.pipeline.fit

    work = tmp_path / "ddp"
    shutil.copytree(study, work, ignore=shutil.ignore_patterns(".git", ".dvc", "reports"))
    P = yaml.safe_load((work / "params.yaml").read_text())
    P["heatmap"]["train"].update(processes=2, epochs=P["heatmap"]["train"]["epochs"] + 1)  # not in params.yaml
    (work / "models" / "fmnist6" / "heatmap.pt").unlink()
    trained = ood.pipeline.fit.run("heatmap", P, work, processes=2)
    assert (work / "models" / "fmnist6" / "heatmap.pt").exists()
    assert len(trained.detector.history) == P["heatmap"]["train"]["epochs"] and trained.fit_s > 0
    x = trained.bench.test[0][0][None]
    assert torch.isfinite(trained.detector.score(x)).all()


TOY_DETECTOR = '''"""Toy: a feature autoencoder of the frozen classifier's penultimate features; the score is its
reconstruction error (the add-a-method checklist's example, ARCHITECTURE.md)."""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from ..train import Task, fit
from .base import TRAINING, Param, TrainedDetector, as_loader, extract_features
from .method import Method


class _Reconstruction(Task):
    def __init__(self, net: nn.Module, lr: float):
        self.networks, self.lr = {"autoencoder": net}, lr

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"autoencoder": torch.optim.Adam(self.networks["autoencoder"].parameters(), lr=self.lr)}

    def training_step(self, batch: Any, step: Any) -> dict[str, float]:
        loss = ((self.networks["autoencoder"](batch[0]) - batch[0]) ** 2).mean()
        step.update(loss, "autoencoder")
        return {"train_loss": loss.item()}


class Toy(TrainedDetector):
    name: ClassVar[str] = "toy"
    method: ClassVar[Method] = Method(title="Toy: a feature autoencoder")
    train_params: ClassVar[dict[str, Param]] = {"epochs": Param(1, int, 1, 100), "code": Param(8, int, 1, 4096),
                                                "lr": Param(1e-3, float, 0.0, 1.0, low_open=True), **TRAINING}

    def _build_networks(self, configs: Mapping[str, dict[str, Any]]) -> dict[str, nn.Module]:
        c = configs["autoencoder"]
        return {"autoencoder": nn.Sequential(nn.Linear(c["dim"], c["code"]), nn.Linear(c["code"], c["dim"]))}

    def _fit(self, train: Any, *, val: Any, outliers: Any, checkpoint: Any, progress: bool) -> None:
        T = self.train_hparams
        z, _ = extract_features(self.model, as_loader(train))
        self.configs = {"autoencoder": {"dim": z.shape[1], "code": T["code"]}}
        torch.manual_seed(self.seed)
        self.networks = self._build_networks(self.configs)
        self.history = fit(_Reconstruction(self.networks["autoencoder"], T["lr"]), TensorDataset(z), epochs=T["epochs"],
                           batch_size=64, seed=self.seed, device=T["device"], amp=T["amp"], checkpoint=checkpoint,
                           progress=progress)

    def _score(self, x: Tensor) -> Tensor:
        z = self.model.features(x)
        return ((self.networks["autoencoder"](z) - z) ** 2).mean(dim=1)
'''


def test_a_new_method_is_its_detector_a_params_section_and_one_registration(study: Path, tmp_path: Path) -> None:
    """ARCHITECTURE.md's add-a-method checklist, followed for a toy fifth method in a copy of the run
    study: its detector module, its params.yaml section and one line in the registry (and this test)
    are all it takes; `python -m ood.pipeline.stages` writes its two stages from the generic notebooks,
    and its stages train, score, summarise and report it."""

    work = tmp_path / "toy"
    shutil.copytree(study, work, symlinks=True)
    (work / "ood" / "detectors" / "toy.py").write_text(TOY_DETECTOR)
    init = work / "ood" / "detectors" / "__init__.py"
    registry = '    "diffguard": "ood.detectors.diffguard:DiffGuard",\n'
    assert registry in init.read_text()
    init.write_text(init.read_text().replace(registry, registry + '    "toy": "ood.detectors.toy:Toy",\n'))
    with (work / "params.yaml").open("a") as f:
        f.write("toy:\n  train:\n    epochs: 1\n    code: 8\n    lr: 0.001\n    device: auto\n    amp: true\n"
                "    processes: 1\n  score: {}\n")
    run([sys.executable, "-m", "ood.pipeline.stages"], work)  # dvc.yaml: the toy's training and scoring stages
    # Only these four stages (the others are stale too: each checks params.yaml against the registry)
    out = run(["dvc", "repro", "--single-item", "toy_train", "toy", "summarize", "report"], work).stdout
    assert _ran(out) == {"toy_train", "toy", "summarize", "report"}, out[-3000:]
    metrics = json.loads((work / "reports" / "metrics.json").read_text())
    assert 0 <= metrics["fmnist6"]["detectors"]["toy"]["near"]["auroc"] <= 1
    html = (work / "reports" / "report.html").read_text()
    assert "Toy: a feature autoencoder" in html and report_numbers.problems(work) == []
    files = run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], work).stdout.split()
    naming = sorted(f for f in files if not f.startswith(("tests/", "reports/", "models/")) and (work / f).is_file()
                    and "toy" in (work / f).read_text(errors="ignore").lower())
    assert naming == ["dvc.lock", "dvc.yaml", "ood/detectors/__init__.py", "ood/detectors/toy.py", "params.yaml"], naming
