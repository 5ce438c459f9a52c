"""The paper profiles' CIFAR and ImageNet benchmarks (ood.data.openood) on fixture archives in the official
formats, served offline through the real registry specs (as tests/test_image_data.py does)."""

from __future__ import annotations

import importlib

import pytest
import torch
from torchvision.transforms import v2 as T

import ood.data
import ood.pipeline.params
from ood.data import registry
from ood.data.openood import to_geometry

import fakes_dense as fd
import fakes_images as fi

fetch_mod = importlib.import_module("ood.data.fetch")


def _serve(tmp_path, monkeypatch, benchmark: str):
    """Every dataset of ``benchmark`` in one file:// mirror folder (login-gated ones are placed in
    the data root by hand, as a user does)."""
    folder, data = tmp_path / "mirror", tmp_path / "data"
    for name in registry.BENCHMARKS[benchmark].datasets:
        manual = registry.DATASETS[name].manual_url is not None
        checksums = fi.write_fake_images(name, data / name if manual else folder)
        monkeypatch.setitem(registry.DATASETS, name, fd.pinned_spec(name, checksums))
    monkeypatch.setenv(fetch_mod.MIRRORS_ENV, folder.as_uri())
    monkeypatch.setattr(fetch_mod.time, "sleep", lambda s: None)
    fd.no_network(monkeypatch)
    return folder


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """Every dataset of the CIFAR benchmarks in one file:// mirror folder."""
    return _serve(tmp_path, monkeypatch, "cifar10")


def test_to_geometry_equals_torchvision_resize_and_centre_crop():
    """OpenOOD's test transform for CIFAR (Resize(32), CenterCrop(32)), checked against torchvision."""
    g = torch.Generator().manual_seed(0)
    reference = T.Compose([T.Resize(32, antialias=True), T.CenterCrop(32)])
    for shape in [(3, 64, 64), (3, 40, 56), (3, 256, 256), (3, 32, 32)]:
        x = torch.rand(shape, generator=g)
        torch.testing.assert_close(to_geometry(x), reference(x).clamp(0, 1), atol=1e-5, rtol=0)
    grey = torch.rand(1, 28, 28, generator=g)
    out = to_geometry(grey)
    assert out.shape == (3, 32, 32) and torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])
    torch.testing.assert_close(out[0], reference(grey)[0].clamp(0, 1), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_benchmark_from_official_archives(name, mirror, tmp_path):
    root = tmp_path / "data"
    bench = ood.data.load_benchmark(name, root, download=True, val_fraction=0.5, seed=0)
    other = "cifar100" if name == "cifar10" else "cifar10"
    assert bench.groups == {"near": [other, "tiny-imagenet"], "far": ["mnist", "svhn", "dtd", "places365"]}
    assert list(bench.ood) == bench.groups["near"] + bench.groups["far"]
    assert bench.classes == fi.CLASSES[name] and bench.in_channels == 3 and bench.image_size == (32, 32)
    train = fi.EXPECTED[name]["train"]
    assert len(bench.train) + len(bench.val) == len(train) and len(bench.test) == len(fi.EXPECTED[name]["test"])
    # ID images pass unchanged (pixel-exact to the fixture) with their labels; train and val are disjoint
    seen = []
    for split in (bench.train, bench.val):
        for i in range(len(split)):
            image, label = split[i]
            match = [k for k, s in enumerate(train) if torch.equal(image, torch.from_numpy(s.array()).float() / 255)]
            assert len(match) == 1 and label.item() == train[match[0]].label
            seen.append(match[0])
    assert sorted(seen) == list(range(len(train)))
    # OOD: test splits (never a training split), ID geometry, label -1
    for ood_name, ds in bench.ood.items():
        split = "test" if ood_name in ("cifar10", "cifar100", "mnist") else next(iter(fi.EXPECTED[ood_name]))
        assert len(ds) == len(fi.EXPECTED[ood_name][split]), ood_name
        image, label = ds[0]
        assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and label.item() == -1, ood_name
    mnist = fi.EXPECTED["mnist"]["test"][0]
    want = to_geometry(torch.from_numpy(mnist.array()).float() / 255)
    torch.testing.assert_close(bench.ood["mnist"][0][0], want)


def test_caps_and_the_offline_default(mirror, tmp_path):
    root = tmp_path / "data"
    with pytest.raises(FileNotFoundError, match=r"python -m ood.data download cifar10"):
        ood.data.load_benchmark("cifar10", root)  # the pipeline never downloads inside a stage
    bench = ood.data.load_benchmark("cifar10", root, download=True, subset=2, far_size=1)
    assert len(bench.test) == 2 and all(len(ds) == 1 for ds in bench.ood.values())
    again = ood.data.load_benchmark("cifar10", root, subset=2, far_size=1)  # fetched: offline from now on
    for a, b in zip(bench.ood.values(), again.ood.values()):
        assert torch.equal(a[0][0], b[0][0])  # the same seeded picks


def test_profile_benchmarks_are_valid_params_and_not_fetched_by_default():
    assert registry.required_datasets() == ["fashion-mnist"]
    assert registry.required_datasets(["cifar10"])[0] == "cifar10"
    params = ood.pipeline.params.load(ood.pipeline.params.project_root() / "params.yaml")
    params["classifier"]["weights"] = ""  # the shipped classifier is fmnist6's
    for name in ("cifar10", "cifar100", "imagenet"):
        params["benchmark"]["name"] = name
        ood.pipeline.params.check(params)  # no error: the benchmark is wired into the pipeline's schema
    assert sorted(registry.BENCHMARKS["cifar100"].datasets) == sorted(registry.BENCHMARKS["cifar10"].datasets)


def test_to_geometry_equals_torchvision_imagenet_evaluation_transform():
    """ImageNet's Resize(256), CenterCrop(224), checked against torchvision."""
    g = torch.Generator().manual_seed(1)
    reference = T.Compose([T.Resize(256, antialias=True), T.CenterCrop(224)])
    for shape in [(3, 300, 400), (3, 500, 375), (3, 256, 256), (1, 260, 300)]:
        x = torch.rand(shape, generator=g)
        want = reference(x.expand(3, -1, -1)).clamp(0, 1)
        torch.testing.assert_close(to_geometry(x, 224, resize=256), want, atol=1e-5, rtol=0)


def test_imagenet_benchmark_from_official_archives(tmp_path, monkeypatch):
    _serve(tmp_path, monkeypatch, "imagenet")
    root = tmp_path / "data"
    bench = ood.data.load_benchmark("imagenet", root, download=True, val_fraction=0.5, seed=0)
    assert bench.groups == {"near": ["ssb-hard", "ninco"], "far": ["inaturalist", "dtd", "openimage-o"]}
    assert bench.classes == fi.CLASSES["imagenet-val"] and bench.image_size == (224, 224)
    train = fi.EXPECTED["imagenet-train"]["train"]
    assert len(bench.train) + len(bench.val) == len(train) and len(bench.val) >= 1
    assert len(bench.test) == len(fi.EXPECTED["imagenet-val"]["val"])
    # labels follow the sorted wnids in train (class tars) and test (devkit) alike
    labels = sorted(int(split[i][1]) for split in (bench.train, bench.val) for i in range(len(split)))
    assert labels == sorted(s.label for s in train)
    assert [int(bench.test[i][1]) for i in range(len(bench.test))] == [s.label for s in fi.EXPECTED["imagenet-val"]["val"]]
    sample = fi.EXPECTED["imagenet-val"]["val"][0]
    want = to_geometry(torch.from_numpy(sample.array()).float() / 255, 224, resize=256)
    assert (bench.test[0][0] - want).abs().mean().item() < 0.03  # a JPEG, brought to 224x224
    for name, ds in bench.ood.items():
        image, label = ds[0]
        assert image.shape == (3, 224, 224) and label.item() == -1, name
    # the class archives were unpacked once into train/<wnid>/ and deleted
    extracted = root / "imagenet-train" / "extracted"
    assert not list(extracted.glob("n*.tar"))
    assert sorted(p.name for p in (extracted / "train").iterdir()) == fi.CLASSES["imagenet-train"]


def test_imagenet_training_set_missing_says_where_to_put_it(tmp_path):
    with pytest.raises(registry.ManualDownloadRequired) as err:
        ood.data.load_benchmark("imagenet", tmp_path / "data")
    message = str(err.value)
    assert "ILSVRC2012_img_train.tar" in message and "https://image-net.org/download-images.php" in message
    assert str((tmp_path / "data" / "imagenet-train").absolute()) in message
