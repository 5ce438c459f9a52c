"""Auxiliary outliers (outlier exposure) and the OOD localisation set, on small in-test data."""

from __future__ import annotations

import hashlib
from collections import Counter
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from ood.data import auxiliary as aux
from ood.data import fmnist6
from ood.data.benchmark import Benchmark
from ood.data.localisation import MIN_INFORMATIVE, LocalisationSet, localisation_set, make_localisation

N = 90  # 30 per source


@pytest.fixture(scope="module")
def outliers() -> aux.OutlierSet:
    return aux.load_outliers(N, seed=0)


def _package_dir(name: str) -> Path:
    spec = find_spec(name)
    assert spec is not None and spec.submodule_search_locations
    return Path(list(spec.submodule_search_locations)[0])


# ---------------------------------------------------------------------------------------------
# load_outliers
# ---------------------------------------------------------------------------------------------


def test_outlier_contract(outliers):
    x, y = outliers.tensors
    assert isinstance(outliers, TensorDataset) and len(outliers) == N
    assert x.shape == (N, 1, 28, 28) and x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert torch.equal(x * 255, (x * 255).round()), "8-bit levels, like Fashion-MNIST"
    assert y.dtype == torch.int64 and bool((y == -1).all())
    image, label = outliers[0]
    assert image.shape == (1, 28, 28) and int(label) == -1
    assert len(outliers.sources) == len(outliers.origins) == N
    assert bool((x.flatten(1).std(dim=1) > 0.01).all()), "no blank images"


def test_size_and_channels():
    ds = aux.load_outliers(9, seed=0, size=32, channels=3)
    x = ds.tensors[0]
    assert x.shape == (9, 3, 32, 32) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert aux.load_outliers(0, seed=0).tensors[0].shape == (0, 1, 28, 28)
    for bad in ({"n": -1}, {"channels": 2}, {"size": 4}, {"seed": -3}):
        with pytest.raises(ValueError):
            aux.load_outliers(**{"n": 3, "seed": 0, **bad})


def test_deterministic(outliers):
    again = aux.load_outliers(N, seed=0)
    assert torch.equal(again.tensors[0], outliers.tensors[0])
    assert again.sources == outliers.sources and again.origins == outliers.origins
    other = aux.load_outliers(N, seed=1)
    assert not torch.equal(other.tensors[0], outliers.tensors[0])


def test_mix_of_sources(outliers, monkeypatch):
    assert set(aux.SOURCES) == set(aux.SOURCE_MIX) == {"sklearn_photos", "matplotlib_images", "shapes"}
    assert Counter(outliers.sources) == {s: N // 3 for s in aux.SOURCES}
    assert outliers.sources[: N // 3] != ["sklearn_photos"] * (N // 3), "sources are shuffled together"
    allowed = {
        "sklearn_photos": {"china.jpg", "flower.jpg"},
        "matplotlib_images": {"grace_hopper.jpg", "s1045.ima.gz", "jacksboro_fault_dem.npz"},
        "shapes": set(aux.SHAPE_KINDS),
    }
    for source, origin in zip(outliers.sources, outliers.origins):
        assert origin in allowed[source]
    assert len(set(outliers.origins)) >= 8, "many files and kinds are used"
    assert Counter(aux.load_outliers(10, seed=0).sources) == {"sklearn_photos": 4, "matplotlib_images": 3, "shapes": 3}
    monkeypatch.setattr(aux, "SOURCE_MIX", {"shapes": 1.0})
    assert set(aux.load_outliers(12, seed=0).sources) == {"shapes"}


def test_no_source_is_shared_with_the_test_sets():
    """Files: none of ours is byte-identical to a file of scikit-image's data or sklearn's digits."""
    theirs = {
        hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (_package_dir("skimage") / "data").iterdir()
        if p.is_file()
    }
    digits = _package_dir("sklearn") / "datasets" / "data" / "digits.csv.gz"
    theirs.add(hashlib.sha256(digits.read_bytes()).hexdigest())
    assert len(theirs) > 20
    assert not set(aux.SHA256.values()) & theirs
    assert not {"uniform", "noise", "blobs"} & set(aux.SHAPE_KINDS), "none of make_noise's kinds"


@pytest.mark.parametrize("seed", [0, 1])
def test_no_outlier_is_close_to_a_far_ood_image(seed):
    """Images: each far set of fmnist6 built with the same seed; every outlier differs on average
    by more than 2.5 grey levels per pixel from every far-OOD image (observed minimum ~0.03)."""
    out = aux.load_outliers(N, seed=seed).tensors[0].flatten(1)
    far = {
        "digits": fmnist6.make_digits(40, fmnist6._rng(seed, "digits")),
        "natural": fmnist6.make_natural(40, fmnist6._rng(seed, "natural")),
        "noise": fmnist6.make_noise(40, fmnist6._rng(seed, "noise")),
    }
    for name, x in far.items():
        x = x.flatten(1)
        assert not {r.numpy().tobytes() for r in x} & {r.numpy().tobytes() for r in out}, name
        mad = torch.cdist(out, x, p=1) / out.shape[1]
        assert float(mad.min()) > 0.01, name


@pytest.mark.parametrize(
    ("name", "package"), [("china.jpg", "scikit-learn==1.9.1"), ("grace_hopper.jpg", "matplotlib==3.11.2")]
)
def test_checksum_mismatch_raises_a_clear_error(name, package, monkeypatch):
    monkeypatch.setitem(aux.SHA256, name, "0" * 64)
    aux._clear_caches()  # force re-reading the files
    try:
        with pytest.raises(aux.ChecksumError, match=rf"{name}.*{package}"):
            aux.load_outliers(6, seed=0)
    finally:
        aux._clear_caches()
    assert aux.PACKAGE_VERSIONS == {"scikit-learn": "1.9.1", "matplotlib": "3.11.2"}


def test_shapes_only_need_no_files(monkeypatch):
    monkeypatch.setattr(aux, "SOURCE_MIX", {"shapes": 1.0})
    monkeypatch.setitem(aux.SHA256, "china.jpg", "0" * 64)
    aux._clear_caches()
    try:
        assert len(aux.load_outliers(5, seed=0)) == 5
    finally:
        aux._clear_caches()


# ---------------------------------------------------------------------------------------------
# Localisation
# ---------------------------------------------------------------------------------------------


def _q(x: torch.Tensor) -> torch.Tensor:
    return x.mul(255).round().div(255)


@pytest.fixture(scope="module")
def loc_inputs() -> tuple[TensorDataset, dict[str, TensorDataset]]:
    g = torch.Generator().manual_seed(0)
    # ID: black border (like Fashion-MNIST), random interior.
    id_x = torch.zeros(20, 1, 28, 28)
    id_x[:, :, 6:22, 6:22] = _q(torch.rand(20, 1, 16, 16, generator=g))
    ood_border = torch.zeros(7, 1, 28, 28)
    ood_border[:, :, 4:24, 4:24] = _q(torch.rand(7, 1, 20, 20, generator=g))
    ood = {
        "random": _q(torch.rand(10, 1, 28, 28, generator=g)),
        "border": ood_border,  # black on black -> void pixels
        "grey": torch.full((5, 1, 28, 28), 128 / 255),
    }
    id_ds = TensorDataset(id_x, torch.zeros(20, dtype=torch.int64))
    ood_ds = {k: TensorDataset(v, torch.full((len(v),), -1)) for k, v in ood.items()}
    return id_ds, ood_ds


def test_localisation_is_pixel_exact(loc_inputs):
    id_ds, ood_ds = loc_inputs
    n = 31
    loc = make_localisation(id_ds, ood_ds, n=n, seed=0)
    assert isinstance(loc, LocalisationSet) and len(loc) == n
    images, masks = loc.tensors
    assert images.shape == (n, 1, 28, 28) and images.dtype == torch.float32
    assert masks.shape == (n, 28, 28) and masks.dtype == torch.int64
    assert set(masks.unique().tolist()) <= {0, 1, 255}
    names = list(ood_ds)
    assert loc.sources == [names[i % 3] for i in range(n)]
    assert Counter(loc.sources) == {"random": 11, "border": 10, "grey": 10}
    assert loc.boxes.shape == (n, 4) and loc.boxes.dtype == torch.int64
    n_void = 0
    for i in range(n):
        t, l, b, r = loc.boxes[i].tolist()
        assert 0 <= t < b <= 28 and 0 <= l < r <= 28, "box inside the image"
        assert 8 <= b - t <= 14 and 8 <= r - l <= 14
        x_id = id_ds[int(loc.id_index[i])][0]
        x_ood = ood_ds[loc.sources[i]][int(loc.ood_index[i])][0]
        box = torch.zeros(28, 28, dtype=torch.bool)
        box[t:b, l:r] = True
        x, m = images[i], masks[i]
        assert torch.equal(x[:, box], x_ood[:, box]), "pasted pixels are the OOD image's, same place"
        assert torch.equal(x[:, ~box], x_id[:, ~box]), "the rest is the ID image"
        same = (x_ood - x_id).abs().amax(0) < 1 / 255
        assert bool((m[~box] == 0).all())
        assert torch.equal(m[box] == 255, same[box]), "void exactly where the paste changes nothing"
        assert bool((m[box & ~same] == 1).all())
        assert int((m == 1).sum()) >= MIN_INFORMATIVE * int(box.sum())
        n_void += int((m == 255).sum())
    assert n_void > 0, "the black-on-black case is exercised"


def test_localisation_deterministic(loc_inputs):
    id_ds, ood_ds = loc_inputs
    a, b = (make_localisation(id_ds, ood_ds, n=12, seed=3) for _ in range(2))
    assert all(torch.equal(u, v) for u, v in zip(a.tensors, b.tensors))
    assert torch.equal(a.boxes, b.boxes) and a.sources == b.sources
    c = make_localisation(id_ds, ood_ds, n=12, seed=4)
    assert not torch.equal(a.tensors[0], c.tensors[0]) or not torch.equal(a.boxes, c.boxes)


def test_localisation_side_and_errors(loc_inputs):
    id_ds, ood_ds = loc_inputs
    loc = make_localisation(id_ds, ood_ds, n=9, seed=0, side=(3, 3))
    assert bool(((loc.boxes[:, 2] - loc.boxes[:, 0]) == 3).all() and ((loc.boxes[:, 3] - loc.boxes[:, 1]) == 3).all())
    with pytest.raises(ValueError, match="side"):
        make_localisation(id_ds, ood_ds, n=2, seed=0, side=(8, 29))
    with pytest.raises(ValueError, match="empty"):
        make_localisation(id_ds, {}, n=2, seed=0)
    wrong = {"rgb": TensorDataset(torch.zeros(2, 3, 28, 28), torch.full((2,), -1))}
    with pytest.raises(ValueError, match="'rgb'"):
        make_localisation(id_ds, wrong, n=2, seed=0)


def test_localisation_set_from_benchmark(loc_inputs):
    id_ds, ood_ds = loc_inputs
    bench = Benchmark(
        name="toy", classes=["a"], train=id_ds, val=id_ds, test=id_ds, ood=ood_ds,
        groups={"near": ["random"], "far": ["border", "grey"]}, in_channels=1, image_size=(28, 28),
    )  # fmt: skip
    loc = localisation_set(bench, n=6, seed=1)
    ref = make_localisation(id_ds, ood_ds, n=6, seed=1)
    assert all(torch.equal(u, v) for u, v in zip(loc.tensors, ref.tensors))
    assert set(loc.sources) == set(ood_ds)
