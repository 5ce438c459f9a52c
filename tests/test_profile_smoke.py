"""Smoke run of a paper profile: `python -m ood.profile use cifar10`, then the whole pipeline on tiny
fixture archives in the official formats, to a report. A GPU user's first run should fail on
nothing but missing data. Marked ``slow``: `make test` skips it, `make test-slow` (and CI) runs it.

The fixtures are fetched through the real registry specs in this process (checksums patched to
the fixtures', file:// mirror), which verifies and unpacks them into the study's data/; the stages
then read the unpacked files offline, as they would after `python -m ood.data download`.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
import yaml

import fakes_dense as fd
import fakes_images as fi
from fakes import write_fake_fashion_mnist
from ood.data import images, registry
from workspace import copy_repo, run, tiny

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
fetch_mod = importlib.import_module("ood.data.fetch")


def _fixture_data(data: Path, mirror: Path, monkeypatch) -> None:
    """Every dataset the cifar10 profile reads, verified and unpacked into ``data``: CIFAR-10 with
    20 training images per class (the official fixture has one), the OOD sets' own fixtures."""
    fd.no_network(monkeypatch)
    writers = {"cifar10": lambda d: fi.write_cifar10(d, fi.cifar_samples(200, 1000, 10), fi.cifar_samples(60, 2000, 10))}
    for name in registry.BENCHMARKS["cifar10"].datasets:
        (mirror / name).mkdir(parents=True)
        checksums = writers.get(name, lambda d, n=name: fi.write_fake_images(n, d))(mirror / name)
        monkeypatch.setitem(registry.DATASETS, name, fd.pinned_spec(name, checksums))
        monkeypatch.setenv(fetch_mod.MIRRORS_ENV, (mirror / name).as_uri())
        images.prepare(name, data, download=True, progress=False)


def _tiny_ddpm(path: Path) -> Path:
    """A diffusers DDPM pipeline of google/ddpm-cifar10-32's kind (unconditional, 3×32×32), tiny."""
    import torch
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    net = UNet2DModel(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(8, 16), layers_per_block=1,
                      down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                      norm_num_groups=8)
    DDPMPipeline(unet=net, scheduler=DDPMScheduler()).save_pretrained(str(path))
    return path


def test_cifar10_profile_runs_the_whole_pipeline_to_a_report(tmp_path, monkeypatch):
    work = tmp_path / "study"
    copy_repo(work)
    run([sys.executable, "-m", "ood.profile", "use", "cifar10"], work)
    params = yaml.safe_load((work / "params.yaml").read_text())
    assert params["benchmark"]["name"] == "cifar10" and params["classifier"]["arch"] == "resnet18"
    tiny(params)
    params["benchmark"].update(subset=None, val_fraction=0.2)  # the fixtures are small already
    params["heatmap"]["train"].update(width=64)
    # the profile's pre-trained google/ddpm-cifar10-32, as a tiny pipeline in a local folder (no hub here)
    params["diffguard"]["train"]["pretrained"] = str(_tiny_ddpm(tmp_path / "ddpm-cifar10-32"))
    params["diffguard"]["score"].update(cutouts=2)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    write_fake_fashion_mnist(work / "data" / "fashion-mnist", n_train=1200, n_test=400, gz=False)  # scenes
    _fixture_data(work / "data", tmp_path / "mirror", monkeypatch)
    run(["git", "init", "-q"], work)
    run(["dvc", "add", "-q", "data"], work)
    run(["git", "add", "-A"], work)
    run(["git", "commit", "-qm", "fixture"], work)
    run(["dvc", "repro"], work)

    metrics = json.loads((work / "reports" / "metrics.json").read_text())
    assert set(metrics) == {"cifar10", "cifar10_loc", "scenes"}
    detectors = metrics["cifar10"]["detectors"]
    assert {"msp", "knn", "heatmap", "moodcat", "diffguard"} <= set(detectors)
    assert set(detectors["msp"]) == {"cifar100", "tiny-imagenet", "mnist", "svhn", "dtd", "places365", "near", "far"}
    html = (work / "reports" / "report.html").read_text()
    assert "cifar10" in html and "88.0" in html  # the published OpenOOD v1.5 MSP near AUROC, next to ours
    assert run(["dvc", "status"], work).stdout.strip() == "Data and pipelines are up to date."
