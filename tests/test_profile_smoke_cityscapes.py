"""Smoke run of the cityscapes paper profile: `python -m ood.pipeline.profile use cityscapes`, then the whole
pipeline to a report, with the dense stages (segmenter, dense_posthoc, nflowjs_train, nflowjs) on
Cityscapes and the SMIYC / Fishyscapes sets as tiny fixture archives in the official formats. The
profile leaves the image benchmark alone, so the image stages run fmnist6 on fake Fashion-MNIST.
Marked ``slow``: `make test` skips it, `make test-slow` (and CI) runs it.

The OOD sets' fixtures are fetched through the real registry specs in this process (checksums
patched to the fixtures', file:// mirror); Cityscapes is put in place by hand, as its login
requires, and verified by trust on first use. Both are unpacked into the study's data/, which the
stages then read offline. Two departures from the profile, both forced by this machine: the
DeepLabV3 backbone starts from random weights (torchvision's ImageNet file cannot be downloaded
here) and frames are 64x128 (``dense_benchmark.size: 64``) instead of 1024x2048, with training
crops of 48 instead of 768.
"""

from __future__ import annotations

import importlib
import json
import sys
import warnings
from pathlib import Path

import pytest
import yaml

import fakes_dense as fd
from fakes import write_fake_fashion_mnist
from ood.data import dense, registry
from ood.data.cityscapes import OOD_SETS
from ood.data.fetch import UnpinnedChecksumWarning
from workspace import copy_repo, run, tiny

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
fetch_mod = importlib.import_module("ood.data.fetch")

# Frames of the fixtures: the data notebook shows six of the training split and of every OOD set.
N_TRAIN, N_VAL, N_OOD, ID_VAL = 8, 4, 6, 2  # Cityscapes train / val frames, frames per OOD set, held-out ID val


def _fixture_data(data: Path, mirror: Path, monkeypatch) -> None:
    """Every dataset the cityscapes benchmark reads, verified and unpacked into ``data``."""
    fd.no_network(monkeypatch)
    writers = {"smiyc-roadanomaly21": lambda d: fd.write_fake_smiyc(d, "anomaly", N_OOD),
               "smiyc-roadobstacle21": lambda d: fd.write_fake_smiyc(d, "obstacle", N_OOD),
               "fishyscapes-lostandfound": lambda d: fd.write_fake_fishyscapes_lostandfound(d, N_OOD)}
    assert set(writers) == set(registry.BENCHMARKS["cityscapes"].datasets) - {"cityscapes"}
    for name, write in writers.items():
        monkeypatch.setitem(registry.DATASETS, name, fd.pinned_spec(name, write(mirror / name)))
        monkeypatch.setenv(fetch_mod.MIRRORS_ENV, (mirror / name).as_uri())
        dense.prepare(name, data, download=True, progress=False)
    fd.write_fake_cityscapes(data / "cityscapes", n_train=N_TRAIN + ID_VAL, n_val=N_VAL)  # placed by hand
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnpinnedChecksumWarning)  # nothing published: trust on first use
        dense.prepare("cityscapes", data, progress=False)


def test_cityscapes_profile_runs_the_whole_pipeline_to_a_report(tmp_path, monkeypatch):
    work = tmp_path / "study"
    copy_repo(work)
    run([sys.executable, "-m", "ood.pipeline.profile", "use", "cityscapes"], work)
    params = yaml.safe_load((work / "params.yaml").read_text())
    assert params["dense_benchmark"]["name"] == "cityscapes" and params["segmenter"]["arch"] == "deeplabv3"
    assert params["benchmark"]["name"] == "fmnist6"
    tiny(params)
    params["dense_benchmark"].update(size=64, n_val=ID_VAL)  # n_train, n_test: tiny's, above the fixtures' frames
    params["segmenter"]["pretrained"] = False  # torchvision's ImageNet ResNet-50 cannot be downloaded here
    assert params["segmenter"]["crop"] == params["nflowjs"]["train"]["crop"] == 768
    params["segmenter"]["crop"] = params["nflowjs"]["train"]["crop"] = 48  # the profile's crops, scaled to the frames
    params["diffguard"]["score"]["subset"] = 10  # the image side is not under test here: its slowest scorer, halved
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    write_fake_fashion_mnist(work / "data" / "fashion-mnist", n_train=1200, n_test=400, gz=False)  # fmnist6
    _fixture_data(work / "data", tmp_path / "mirror", monkeypatch)
    run(["git", "init", "-q"], work)
    run(["dvc", "add", "-q", "data"], work)
    run(["git", "add", "-A"], work)
    run(["git", "commit", "-qm", "fixture"], work)
    run(["dvc", "repro"], work)

    data = json.loads((work / "reports" / "cityscapes" / "data.json").read_text())
    assert data["sizes"] == {"train": N_TRAIN, "val": ID_VAL, "test": N_VAL, **dict.fromkeys(OOD_SETS, N_OOD)}
    assert data["classes"][0] == "road" and len(data["classes"]) == 19
    metrics = json.loads((work / "reports" / "metrics.json").read_text())
    assert set(metrics) == {"fmnist6", "fmnist6_loc", "cityscapes"}
    dense_metrics = metrics["cityscapes"]
    assert {"miou", "miou_nflowjs"} <= set(dense_metrics["model"])
    detectors = dense_metrics["detectors"]
    assert set(params["dense_detectors"]["names"]) | {"nflowjs"} == set(detectors)
    for det, per_set in detectors.items():
        assert set(per_set) == {*OOD_SETS, "all"}, det  # the sets by their registry names, and the pooled pixels
        assert all(set(m) == {"ap", "fpr95", "auroc", "siou", "ppv", "mean_f1"} for m in per_set.values()), det
    html = (work / "reports" / "report.html").read_text()
    assert "cityscapes (dense OOD detection)" in html and "smiyc-roadobstacle21" in html
    for name in OOD_SETS:  # the galleries of every set
        assert (work / "reports" / "cityscapes" / "gallery" / f"{name}.png").is_file()
        assert (work / "reports" / "cityscapes" / "nflowjs_gallery" / f"{name}.png").is_file()
    assert run(["dvc", "status"], work).stdout.strip() == "Data and pipelines are up to date."
