"""params.yaml validation: every problem named with its key and what the key accepts."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from ood.pipeline import params as P

REPO = Path(__file__).resolve().parent.parent
COMMITTED = yaml.safe_load((REPO / "params.yaml").read_text())


def problems(**changes) -> list[str]:
    params = copy.deepcopy(COMMITTED)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = params
        for key in parents:
            node = node[key]
        if value is KeyError:
            del node[leaf]
        else:
            node[leaf] = value
    return P.validate(params)


def test_committed_params_are_valid() -> None:
    assert P.validate(COMMITTED) == []
    assert P.main([str(REPO / "params.yaml")]) == 0


@pytest.mark.parametrize("change,message", [
    ({"classifier__epochs": 0}, "classifier.epochs: 0 (no training) needs classifier.pretrained: true"),
    ({"classifier__epochs": -1}, "classifier.epochs: must be an integer in [0, 1000], got -1"),
    ({"classifier__epochs": 2.5}, "classifier.epochs: must be an integer in [0, 1000], got 2.5"),
    ({"classifier__lr": "fast"}, "classifier.lr: must be a number in (0.0, 10.0], got 'fast'"),
    ({"classifier__arch": "vgg"}, "classifier.arch: must be one of 'cnn', 'resnet18', 'resnet50'; got 'vgg'"),
    ({"classifier__amp": "yes"}, "classifier.amp: must be true or false, got 'yes'"),
    ({"classifier__device": "gpu"}, "classifier.device: must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got 'gpu'"),
    ({"benchmark__val_fraction": 0.0}, "benchmark.val_fraction: must be a number in (0.0, 0.5], got 0.0"),
    ({"benchmark__name": "cifar"}, "benchmark.name: must be one of 'fmnist6', 'cifar10', 'cifar100', 'imagenet'; got 'cifar'"),
    ({"evaluate__ci_level": 1.5}, "evaluate.ci_level: must be a number in [0.5, 0.999], got 1.5"),
    ({"detectors__names": ["msp", "msp"]}, "detectors.names: must not repeat items"),
    ({"detectors__names": ["msp", "gram"]}, "detectors.names: item 'gram': must be one of 'msp'"),
    ({"detectors__knn__k": 0}, "detectors.knn.k: must be a int in [1, inf), got 0"),
    ({"detectors__react__percentile": 150}, "detectors.react.percentile: must be a float in (0.0, 100.0], got 150"),
    ({"detectors__react__percentile": float("nan")}, "detectors.react.percentile: must be a float in (0.0, 100.0], got nan"),
    ({"classifier__lr": float("nan")}, "classifier.lr: must be a finite number in (0.0, 10.0], got nan"),
    ({"evaluate__ci_level": float("inf")}, "evaluate.ci_level: must be a finite number"),
    ({"evaluate__bootstrap": 0}, "evaluate.bootstrap: must be an integer in [10, 100000], got 0"),
    ({"heatmap__score__reduce": "median"}, "heatmap.score.reduce: must be one of 'mean', 'max', got 'median'"),
    ({"heatmap__train__amp": 1}, "heatmap.train.amp: must be a bool (true or false), got int 1"),
    ({"heatmap__train__device": "gpu"}, "heatmap.train.device: must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"),
    ({"heatmap__train__epochs": 0}, "heatmap.train.epochs: must be a int in [1, 10000], got 0"),
    ({"combine__names": ["heatmap+gram"]}, "combine.names: item 'heatmap+gram': must be 'a+b' with two different detectors"),
    ({"combine__rule": "sum"}, "combine.rule: must be one of 'zmean', 'zmax', 'trust'; got 'sum'"),
    ({"classifier__epoch": 3}, "classifier.epoch: unknown key (did you mean classifier.epochs?)"),
    ({"evaluate__bootstrap": KeyError}, "evaluate.bootstrap: missing"),
    ({"data_seed": -1}, "data_seed: must be an integer in [0, 2147483647], got -1"),
    ({"data_seed": KeyError}, "data_seed: missing"),
])
def test_bad_values_are_named_with_what_is_allowed(change: dict, message: str) -> None:
    found = problems(**change)
    assert any(m.startswith(message) for m in found), found


def test_every_problem_is_reported_at_once(tmp_path, capsys) -> None:
    bad = copy.deepcopy(COMMITTED)
    bad["seed"] = -1
    bad["classifier"]["batch_size"] = 0
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(bad))
    assert P.main([str(path)]) == 2
    err = capsys.readouterr().err
    assert "2 problem(s)" in err and "seed:" in err and "classifier.batch_size:" in err


def test_invalid_yaml_is_reported(tmp_path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("seed: [1,\n")
    with pytest.raises(P.ParamsError, match="not valid YAML"):
        P.load(path)


def test_notebook_parameters_fall_back_to_params_yaml(monkeypatch) -> None:
    monkeypatch.chdir(REPO / "notebooks")  # as JupyterLab runs a notebook
    assert P.from_notebook(None) == COMMITTED  # run by hand: params.yaml
    injected = {**COMMITTED, "seed": 7}
    assert P.from_notebook(injected)["seed"] == 7  # papermill's parameters win
    with pytest.raises(P.ParamsError, match="seed: must be an integer"):
        P.from_notebook({**COMMITTED, "seed": "x"})


def test_a_stage_checks_the_sections_of_the_methods_it_runs_only() -> None:
    """A stage validates (and so imports) only the trained methods it runs: a bad value in another
    method's section is that method's stages' error; the whole file is checked up front by
    `python -m ood.pipeline.params` (make study)."""
    import copy
    import subprocess
    import sys

    bad = copy.deepcopy(COMMITTED)
    bad["moodcat"]["score"]["k"] = -1
    assert P.validate(bad, methods=["heatmap"]) == []
    assert P.validate(bad, methods=["moodcat"]) == ["moodcat.score.k: must be a int in [1, 256], got -1"]
    assert P.validate(bad) == P.validate(bad, methods=["moodcat"])
    bad["moodcat"] = {"train": {}}
    assert P.validate(bad, methods=[])[0].startswith("moodcat: must be a mapping with 'train' and 'score' sections")
    probe = ("import sys; from ood.pipeline import params as P; P.load(methods=['heatmap']); "
             "print(sorted(m for m in sys.modules if m.startswith('ood.detectors.')))")
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "ood.detectors.heatmap" in loaded and "ood.detectors.moodcat" not in loaded, loaded


def test_benchmark_args_read_data_from_the_given_project(tmp_path, monkeypatch) -> None:
    """A caller whose working directory is another project (the CI failure of stop 19: a test in the
    repository trained a copied workspace) still reads that workspace's data and cache."""
    params = yaml.safe_load((P.project_root() / P.PARAMS_FILE).read_text())
    work = tmp_path / "work"
    args = P.benchmark_args(params, root=work)
    assert args["root"] == str(work / params["data"]["root"])
    assert args["cache"] == str(work / ".cache" / "benchmarks")
    monkeypatch.chdir(work.parent)  # no params.yaml here or above: data.root as given, no cache
    outside = P.benchmark_args({**params, "data": {"root": "/abs/data"}})
    assert (outside["root"], outside["cache"]) == ("/abs/data", None)


def test_the_training_seed_leaves_the_data_alone() -> None:
    """``seed`` moves training only: the benchmarks are drawn from ``data_seed``, and the stages
    without training (data, post-hoc, summary, report) do not read ``seed``, so DVC's run cache
    shares them across training seeds."""
    other = {**copy.deepcopy(COMMITTED), "seed": 5}
    for section in ("benchmark", "dense_benchmark"):
        assert P.benchmark_args(other, section) == P.benchmark_args(COMMITTED, section)
        assert P.benchmark_args({**other, "data_seed": 5}, section)["seed"] == 5
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    reads_seed = {name for name, stage in stages.items() if "seed" in stage.get("params", [])}
    import ood.detectors as D
    methods = {**D.TRAINED, **D.DENSE_TRAINED}  # training and scoring stages (per-sample noise: the training seed)
    trained = {stage for name in methods for stage in D.trained(name).method.stages(name)}
    assert reads_seed == {"classifier", "segmenter", *trained}
    assert all("data_seed" in stage.get("params", []) for name, stage in stages.items() if name != "report")
