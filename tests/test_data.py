"""The fmnist6 benchmark on fake Fashion-MNIST files (and the real Debian files when installed)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from ood.data import Benchmark, fetch, load_benchmark, registry
from ood.data.fmnist6 import NEAR_OOD, load_fmnist6, read_idx

from fakes import class_templates, fake_fashion_mnist_arrays, idx_bytes, write_fake_fashion_mnist

N_TRAIN, N_TEST, FAR = 600, 300, 40
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_fake_fashion_mnist(root / "fashion-mnist", n_train=N_TRAIN, n_test=N_TEST, gz=False)
    return root


@pytest.fixture(scope="module")
def fakes() -> dict[str, np.ndarray]:
    return fake_fashion_mnist_arrays(N_TRAIN, N_TEST)  # the same arrays the files hold (seed 0)


@pytest.fixture(scope="module")
def bench(root) -> Benchmark:
    return load_fmnist6(root, far_size=FAR)


def _rows(ds) -> set[bytes]:
    return {x.numpy().tobytes() for x in ds.tensors[0]}


def _as_float(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).float().div(255).unsqueeze(1)


def test_structure(bench):
    assert bench.name == "fmnist6"
    assert bench.classes == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal"]
    assert list(bench.ood) == ["shirt", "sneaker", "bag", "ankle_boot", "digits", "natural", "noise"]
    assert bench.groups == {"near": ["shirt", "sneaker", "bag", "ankle_boot"], "far": ["digits", "natural", "noise"]}
    assert (bench.in_channels, bench.image_size) == (1, (28, 28))
    assert bench.params == {"val_fraction": 0.1, "far_size": FAR, "seed": 0, "subset": None}


def test_every_set_has_the_image_contract(bench):
    sets = {"train": bench.train, "val": bench.val, "test": bench.test, **bench.ood}
    for name, ds in sets.items():
        x, y = ds[0]
        assert x.shape == (1, 28, 28) and x.dtype == torch.float32, name
        assert y.dtype == torch.int64, name
        images, labels = ds.tensors
        assert images.min() >= 0 and images.max() <= 1, name
        if name in bench.ood:
            assert (labels == -1).all(), name
        else:
            assert labels.min() >= 0 and labels.max() <= 5, name


def test_id_splits_disjoint_and_complete(bench, fakes):
    id_train = np.isin(fakes["train_labels"], range(6))
    assert len(bench.train) + len(bench.val) == id_train.sum()
    assert not _rows(bench.train) & _rows(bench.val)
    # train + val are exactly the ID images of the training split, test those of the test split
    assert _rows(bench.train) | _rows(bench.val) == _rows(torch.utils.data.TensorDataset(
        _as_float(fakes["train_images"][id_train])))  # fmt: skip
    id_test = np.isin(fakes["test_labels"], range(6))
    assert torch.equal(bench.test.tensors[0], _as_float(fakes["test_images"][id_test]))


def test_labels_remapped_in_order(bench, fakes):
    id_test = np.isin(fakes["test_labels"], range(6))
    # ID classes are Fashion-MNIST labels 0..5 in that order, so the remap keeps the values.
    assert torch.equal(bench.test.tensors[1], torch.from_numpy(fakes["test_labels"][id_test].astype(np.int64)))
    assert set(bench.train.tensors[1].tolist()) == set(range(6))


def test_val_stratified_and_seeded(root, bench):
    counts_train = torch.bincount(bench.train.tensors[1], minlength=6)
    counts_val = torch.bincount(bench.val.tensors[1], minlength=6)
    for c in range(6):
        assert counts_val[c] == round(0.1 * (counts_train[c] + counts_val[c]).item())
    again = load_fmnist6(root, far_size=FAR)
    assert torch.equal(again.val.tensors[0], bench.val.tensors[0])
    other = load_fmnist6(root, far_size=FAR, seed=1)
    assert not torch.equal(other.val.tensors[0], bench.val.tensors[0])
    # Independent random streams: the far-OOD size does not move the validation split.
    bigger = load_fmnist6(root, far_size=FAR + 7)
    assert torch.equal(bigger.val.tensors[0], bench.val.tensors[0])
    half = load_fmnist6(root, far_size=FAR, val_fraction=0.5)
    assert abs(len(half.val) - len(half.train)) <= 6


def test_near_sets_are_the_held_out_test_classes(bench, fakes):
    for name, label in NEAR_OOD.items():
        expected = _as_float(fakes["test_images"][fakes["test_labels"] == label])
        assert torch.equal(bench.ood[name].tensors[0], expected), name
    near = set().union(*(_rows(bench.ood[n]) for n in NEAR_OOD))
    assert not near & (_rows(bench.train) | _rows(bench.val) | _rows(bench.test))


def test_far_sets(bench):
    assert len(bench.ood["digits"]) == FAR
    assert len(bench.ood["natural"]) == FAR
    assert len(bench.ood["noise"]) == FAR
    digits = bench.ood["digits"].tensors[0]
    # MNIST-style: the 20x20 digit box is centred, the 4-pixel frame stays black.
    assert digits[:, :, :4].max() == 0 and digits[:, :, -4:].max() == 0
    assert digits[:, :, :, :4].max() == 0 and digits[:, :, :, -4:].max() == 0
    natural = bench.ood["natural"].tensors[0]
    assert (natural.flatten(1).std(1) > 0.01).all()  # no blank crops
    assert len(_rows(bench.ood["natural"])) == FAR  # all distinct
    noise = bench.ood["noise"].tensors[0]
    assert 0.4 < noise.mean() < 0.6
    for name in ("digits", "natural", "noise"):  # 8-bit levels like Fashion-MNIST
        x = bench.ood[name].tensors[0]
        assert torch.allclose(x * 255, (x * 255).round(), atol=1e-3), name


def test_far_sizes_cap_digits(root):
    b = load_fmnist6(root, far_size=2000, subset=None, val_fraction=0.1)
    assert len(b.ood["digits"]) == 1797 and len(b.ood["natural"]) == 2000 and len(b.ood["noise"]) == 2000


def test_subset_caps_every_set_deterministically(root):
    a = load_fmnist6(root, subset=8, far_size=FAR)
    assert all(0 < n <= 8 for n in a.sizes().values()), a.sizes()
    b = load_fmnist6(root, subset=8, far_size=FAR)
    for name in a.sizes():
        ds_a = getattr(a, name) if name in ("train", "val", "test") else a.ood[name]
        ds_b = getattr(b, name) if name in ("train", "val", "test") else b.ood[name]
        assert torch.equal(ds_a.tensors[0], ds_b.tensors[0]), name


@pytest.mark.parametrize(
    "params, key",
    [
        ({"val_fraction": 0.0}, "val_fraction"),
        ({"val_fraction": 0.6}, "val_fraction"),
        ({"val_fraction": "0.1"}, "val_fraction"),
        ({"far_size": 0}, "far_size"),
        ({"far_size": 2.5}, "far_size"),
        ({"subset": 0}, "subset"),
        ({"seed": None}, "seed"),
    ],
)
def test_bad_params_name_the_key(root, params, key):
    with pytest.raises(ValueError, match=key):
        load_fmnist6(root, **params)


def test_load_benchmark_dispatch(root):
    b = load_benchmark("fmnist6", root, subset=5, far_size=FAR)
    assert isinstance(b, Benchmark) and len(b.train) == 5
    with pytest.raises(ValueError, match="fmnist6"):
        load_benchmark("svhn", root)  # a dataset, not a benchmark
    with pytest.raises(ValueError, match="far_sise"):
        load_benchmark("fmnist6", root, far_sise=10)


def test_missing_files_give_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"python -m ood.data download fashion-mnist"):
        load_fmnist6(tmp_path)


def test_gz_files_are_read_too(tmp_path, bench):
    write_fake_fashion_mnist(tmp_path / "fashion-mnist", n_train=N_TRAIN, n_test=N_TEST, gz=True)
    b = load_fmnist6(tmp_path, far_size=FAR)
    assert torch.equal(b.train.tensors[0], bench.train.tensors[0])


def test_read_idx_roundtrip_and_errors(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "ok").write_bytes(idx_bytes(arr))
    assert np.array_equal(read_idx(tmp_path / "ok"), arr)
    (tmp_path / "short").write_bytes(idx_bytes(arr)[:-1])
    with pytest.raises(ValueError, match="IDX header"):
        read_idx(tmp_path / "short")
    (tmp_path / "html").write_bytes(b"<html>404</html>")
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "html")


def test_fakes_are_learnable_and_official_format(tmp_path):
    checksums = write_fake_fashion_mnist(tmp_path, n_train=100, n_test=50)
    assert sorted(checksums) == sorted(f.name for f in registry.DATASETS["fashion-mnist"].files)
    assert all((tmp_path / f"{name}.gz").is_file() for name in checksums)
    arrays = fake_fashion_mnist_arrays(600, 200)
    assert np.bincount(arrays["train_labels"]).tolist() == [60] * 10  # balanced
    # A nearest-class-mean classifier fitted on the fake train split is near perfect on the fake
    # test split, so a small CNN learns them in a few steps (end-to-end tests rely on that).
    x, y = arrays["train_images"].reshape(600, -1) / 255.0, arrays["train_labels"]
    xt, yt = arrays["test_images"].reshape(200, -1) / 255.0, arrays["test_labels"]
    means = np.stack([x[y == c].mean(0) for c in range(10)])
    pred = ((xt[:, None] - means[None]) ** 2).sum(-1).argmin(1)
    assert (pred == yt).mean() > 0.95
    assert class_templates().shape == (10, 28, 28)


@pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_real_debian_files_pass_registered_checksums(tmp_path):
    dest = tmp_path / "fashion-mnist"
    for spec in registry.DATASETS["fashion-mnist"].files:
        offline = dataclasses.replace(spec, mirrors=[str(DEBIAN_DIR / f"{spec.name}.gz")])  # no network
        path = fetch(offline, dest, retries=0, progress=False)
        assert path.stat().st_size == spec.size
    b = load_fmnist6(tmp_path, far_size=10)
    assert b.sizes() == {
        "train": 32400, "val": 3600, "test": 6000,
        "shirt": 1000, "sneaker": 1000, "bag": 1000, "ankle_boot": 1000,
        "digits": 10, "natural": 10, "noise": 10,
    }  # fmt: skip
