"""Smoke runs of the image paper profiles: `python -m ood.pipeline.profile use cifar10` (cifar100, imagenet),
then the whole pipeline on tiny fixture archives in the official formats, to a report. A GPU user's first run should fail on
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


def _fixture_data(data: Path, mirror: Path, monkeypatch, benchmark: str, writers: dict) -> None:
    """Every dataset ``benchmark`` reads, verified and unpacked into ``data``: served from a file://
    mirror, or, for login-gated sets, put in ``data/<name>/`` by hand as a user does. ``writers``
    replaces a fixture with a bigger one where a split needs more images than the official-format
    fixture has."""
    fd.no_network(monkeypatch)
    for name in registry.BENCHMARKS[benchmark].datasets:
        manual = registry.DATASETS[name].manual_url is not None
        folder = data / name if manual else mirror / name
        folder.mkdir(parents=True)
        checksums = writers.get(name, lambda d, n=name: fi.write_fake_images(n, d))(folder)
        monkeypatch.setitem(registry.DATASETS, name, fd.pinned_spec(name, checksums))
        monkeypatch.setenv(fetch_mod.MIRRORS_ENV, (mirror / name).as_uri())
        images.prepare(name, data, download=not manual, progress=False)


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


def _tiny_dit(path: Path, classes: int) -> Path:
    """A diffusers DiT pipeline of facebook/DiT-XL-2-256's kind (class-conditional latent transformer,
    learned variance, an 8× VAE), tiny."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, DiTPipeline, Transformer2DModel

    torch.manual_seed(0)
    net = Transformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8, num_layers=1,
                             sample_size=32, patch_size=2, norm_type="ada_norm_zero", num_embeds_ada_norm=classes,
                             activation_fn="gelu-approximate", norm_elementwise_affine=False)
    vae = AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        block_out_channels=(8, 8, 8, 8), latent_channels=4, norm_num_groups=8, layers_per_block=1)
    DiTPipeline(transformer=net, vae=vae, scheduler=DDIMScheduler()).save_pretrained(str(path))
    return path


def _cifar(id_set: str, classes: int, per_class: int):
    """The profile's edits and bigger ID fixtures (the official-format ones hold a few images)."""
    write = fi.write_cifar10 if id_set == "cifar10" else fi.write_cifar100

    def edit(params: dict, tmp_path: Path) -> None:
        # the profile's pre-trained google/ddpm-cifar10-32, as a tiny pipeline in a local folder (no hub here)
        params["diffguard"]["train"]["pretrained"] = str(_tiny_ddpm(tmp_path / "ddpm-cifar10-32"))
        params["diffguard"]["score"].update(cutouts=2)

    writers = {id_set: lambda d: write(d, fi.cifar_samples(classes * per_class, 1000, classes),
                                       fi.cifar_samples(60, 2000, classes))}
    return edit, writers


def _imagenet():
    def edit(params: dict, tmp_path: Path) -> None:
        # torchvision's ResNet-50 weights need the internet (tests/test_pretrained.py covers that path)
        params["classifier"].update(pretrained=False)
        params["diffguard"]["train"]["pretrained"] = str(_tiny_dit(tmp_path / "dit-xl-2-256", classes=3))

    train = {wnid: [fi.Sample(300 + 12 * c + k, 48 + 4 * (k % 3), 40, c) for k in range(12)]
             for c, wnid in enumerate(fi.CLASSES["imagenet-train"])}
    writers = {"imagenet-train": lambda d: fi.write_imagenet_train(d, train),
               "imagenet-val": lambda d: fi.write_imagenet_val(d, [fi.Sample(400 + k, 40, 52, k % 3) for k in range(30)])}
    return edit, writers


PROFILES = {"cifar10": lambda: _cifar("cifar10", 10, 20), "cifar100": lambda: _cifar("cifar100", 100, 5),
            "imagenet": _imagenet}
OOD_SETS = {"cifar10": {"cifar100", "tiny-imagenet", "mnist", "svhn", "dtd", "places365"},
            "cifar100": {"cifar10", "tiny-imagenet", "mnist", "svhn", "dtd", "places365"},
            "imagenet": {"ssb-hard", "ninco", "inaturalist", "dtd", "openimage-o"}}
#: A published OpenOOD v1.5 MSP near-OOD AUROC (ood.report.published) the report shows next to ours.
PUBLISHED_MSP_NEAR = {"cifar10": "88.0", "cifar100": "80.3", "imagenet": "76.0"}


@pytest.mark.parametrize("profile", list(PROFILES))
def test_a_profile_runs_the_whole_pipeline_to_a_report(profile, tmp_path, monkeypatch):
    edit, writers = PROFILES[profile]()
    work = tmp_path / "study"
    copy_repo(work)
    run([sys.executable, "-m", "ood.pipeline.profile", "use", profile], work)
    params = yaml.safe_load((work / "params.yaml").read_text())
    assert params["benchmark"]["name"] == profile
    tiny(params)
    params["benchmark"].update(subset=None, val_fraction=0.2)  # the fixtures are small already
    params["heatmap"]["train"].update(width=64)
    edit(params, tmp_path)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    write_fake_fashion_mnist(work / "data" / "fashion-mnist", n_train=1200, n_test=400, gz=False)  # scenes
    _fixture_data(work / "data", tmp_path / "mirror", monkeypatch, profile, writers)
    run(["git", "init", "-q"], work)
    run(["dvc", "add", "-q", "data"], work)
    run(["git", "add", "-A"], work)
    run(["git", "commit", "-qm", "fixture"], work)
    run(["dvc", "repro"], work)

    metrics = json.loads((work / "reports" / "metrics.json").read_text())
    assert set(metrics) == {profile, f"{profile}_loc", "scenes"}
    detectors = metrics[profile]["detectors"]
    assert {"msp", "knn", "heatmap", "moodcat", "diffguard"} <= set(detectors)
    assert set(detectors["msp"]) == OOD_SETS[profile] | {"near", "far"}
    html = (work / "reports" / "report.html").read_text()
    assert profile in html and PUBLISHED_MSP_NEAR[profile] in html  # the published number, next to ours
    assert run(["dvc", "status"], work).stdout.strip() == "Data and pipelines are up to date."
