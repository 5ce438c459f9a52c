"""The ``scenes`` dense benchmark on fake Fashion-MNIST files (never the real data: fast, offline).

Two kinds of fake data: the generic fakes of :mod:`fakes` (tests/fakes.py), and *marker* data where every
image is a flat 10x10 square with a one-pixel translucent rim, and its intensity tells where it
came from (each ID training image its own value, ID test images 240, held-out classes 246..252),
so that provenance, visibility and masks can be checked pixel by pixel.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ood.data import DenseBenchmark, load_benchmark, registry
from ood.data.fmnist6 import IDX_FILES
from ood.data.scenes import (
    ALPHA_RAMP,
    ANOMALY_SOURCES,
    BG_DRAWS,
    OCCUPIED_ANOMALY,
    OCCUPIED_ID,
    SCENE_CLASSES,
    blob_alpha,
    load_scenes,
    make_background,
    make_sprites,
    object_alpha,
    paste,
)

from fakes import idx_bytes, write_fake_fashion_mnist

SMALL = dict(n_train=24, n_val=8, n_test=16)
VOID = 255


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_fake_fashion_mnist(root / "fashion-mnist", n_train=300, n_test=200, gz=False)
    return root


@pytest.fixture(scope="module")
def bench(root) -> DenseBenchmark:
    return load_scenes(root, **SMALL)


# --- marker data ----------------------------------------------------------------------------

RING = 13  # rim intensity: alpha = 13/255 / 0.1 ~ 0.51, i.e. blended (void)
TEST_ID_VALUE = 240
NEAR_VALUE = {6: 246, 7: 248, 8: 250, 9: 252}  # held-out classes of the test split
PER_CLASS_TRAIN, PER_CLASS_TEST = 8, 4


def _square(value: int) -> np.ndarray:
    img = np.zeros((28, 28), dtype=np.uint8)
    img[8:20, 8:20] = RING
    img[9:19, 9:19] = value  # the 10x10 core, opaque
    return img


def _marker_arrays() -> dict[str, np.ndarray]:
    train_y = np.repeat(np.arange(10, dtype=np.uint8), PER_CLASS_TRAIN)
    id_rank = np.cumsum(train_y < 6) - 1
    train_x = np.stack([_square(100 + int(r)) if y < 6 else _square(30) for y, r in zip(train_y, id_rank)])
    test_y = np.repeat(np.arange(10, dtype=np.uint8), PER_CLASS_TEST)
    test_x = np.stack([_square(TEST_ID_VALUE if y < 6 else NEAR_VALUE[int(y)]) for y in test_y])
    return {"train_images": train_x, "train_labels": train_y, "test_images": test_x, "test_labels": test_y}


@pytest.fixture(scope="module")
def marker_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("markers")
    (root / "fashion-mnist").mkdir()
    for key, name in IDX_FILES.items():
        (root / "fashion-mnist" / name).write_bytes(idx_bytes(_marker_arrays()[key]))
    return root


@pytest.fixture(scope="module")
def single(marker_root) -> DenseBenchmark:
    """One object, one anomaly, no rescaling: every scene's content is known exactly."""
    return load_scenes(marker_root, size=64, n_train=20, n_val=6, n_test=30, objects=(1, 1), anomalies=(1, 1),
                       scale=(1.0, 1.0))  # fmt: skip


def _u8(ds) -> np.ndarray:
    return ds.images[:, 0].numpy()


def _block(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return rows[0], rows[-1] + 1, cols[0], cols[-1] + 1


def _assert_square_with_rim(core: np.ndarray, rim: np.ndarray) -> tuple[int, int]:
    """``core`` is exactly a 10x10 square and ``rim`` exactly the one-pixel ring around it."""
    r0, r1, c0, c1 = _block(core)
    assert (r1 - r0, c1 - c0) == (10, 10) and core.sum() == 100
    ring = np.zeros_like(core)
    ring[r0 - 1 : r1 + 1, c0 - 1 : c1 + 1] = True
    ring[r0:r1, c0:c1] = False
    np.testing.assert_array_equal(rim, ring)
    return r0, c0


# --- structure and contract ------------------------------------------------------------------


def test_structure(bench):
    assert isinstance(bench, DenseBenchmark) and bench.name == "scenes"
    assert bench.classes == SCENE_CLASSES == [
        "background", "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal"]  # fmt: skip
    assert (bench.in_channels, bench.image_size, bench.ignore_index) == (1, (96, 96), 255)
    assert list(bench.ood) == ["near", "far"] and list(bench.ood_semantic) == ["near", "far"]
    assert bench.sizes() == {"train": 24, "val": 8, "test": 16, "near": 16, "far": 16}
    assert bench.params["n_train"] == 24 and bench.params["objects"] == [2, 4]
    assert "DenseBenchmark('scenes'" in repr(bench)


def test_every_set_has_the_dense_contract(bench):
    sets = {"train": bench.train, "val": bench.val, "test": bench.test, **bench.ood}
    for name, ds in sets.items():
        x, y = ds[0]
        assert x.shape == (1, 96, 96) and x.dtype == torch.float32, name
        assert y.shape == (96, 96) and y.dtype == torch.int64, name
        images, targets = ds.tensors
        assert images.min() >= 0 and images.max() <= 1, name
        assert torch.equal(images, ds.images.float() / 255), name  # 8-bit levels, like Fashion-MNIST
        allowed = {0, 1, VOID} if name in bench.ood else set(range(7)) | {VOID}
        assert set(torch.unique(targets).tolist()) <= allowed, name
    batch_x, batch_y = next(iter(DataLoader(bench.train, batch_size=5)))
    assert batch_x.shape == (5, 1, 96, 96) and batch_y.shape == (5, 96, 96)


def test_id_splits_have_objects_and_background(bench):
    for ds in (bench.train, bench.val, bench.test):
        t = ds.targets
        assert (t == 0).flatten(1).any(1).all()  # background everywhere
        assert ((t >= 1) & (t <= 6)).flatten(1).sum(1).min() >= 50  # at least one visible object
        assert ds.anomalies.shape == (len(ds), 0)
        assert ((ds.objects >= 1) & (ds.objects <= 6) | (ds.objects == -1)).all()
        n_obj = (ds.objects >= 1).sum(1)
        assert n_obj.min() >= 2 and n_obj.max() <= 4


def test_ood_masks(bench):
    for kind in ("near", "far"):
        ds, sem = bench.ood[kind], bench.ood_semantic[kind]
        masks = ds.targets
        assert set(torch.unique(masks).tolist()) <= {0, 1, VOID}
        assert (masks == 1).flatten(1).sum(1).min() >= 20, kind  # every scene has an anomaly
        assert (masks == 0).flatten(1).sum(1).min() > 0.5 * 96 * 96  # and mostly ID pixels
        n_anom = (ds.anomalies >= 0).sum(1)
        assert n_anom.min() >= 1 and n_anom.max() <= 2
        codes = set(ds.anomalies[ds.anomalies >= 0].tolist())
        assert codes <= ({6, 7, 8, 9} if kind == "near" else {10, 11}) and codes <= set(ANOMALY_SOURCES)
        # the semantic view shares the images; anomaly pixels are void there
        assert sem.images is ds.images
        assert (sem.targets[masks != 0] == VOID).all()
        # paired with the clean test scenes: identical wherever the mask is 0
        clean = bench.test
        keep = masks == 0
        assert torch.equal(ds.images[:, 0][keep], clean.images[:, 0][keep])
        assert torch.equal(sem.targets[keep], clean.targets[keep])
        assert torch.equal(ds.objects, clean.objects)


def test_far_has_both_kinds(root):
    far = load_scenes(root, n_train=1, n_val=1, n_test=40).ood["far"]
    assert set(far.anomalies[far.anomalies >= 0].tolist()) == {10, 11}  # digits and natural crops


# --- determinism and subset ------------------------------------------------------------------


def _all(b: DenseBenchmark) -> list[torch.Tensor]:
    sets = [b.train, b.val, b.test, *b.ood.values(), *b.ood_semantic.values()]
    return [t for ds in sets for t in (ds.images, ds.targets, ds.objects, ds.anomalies)]


def test_deterministic(root, bench):
    again = load_scenes(root, **SMALL)
    for a, b in zip(_all(bench), _all(again)):
        assert a.dtype == b.dtype and torch.equal(a, b)


def test_seed_changes_scenes(root, bench):
    other = load_scenes(root, **SMALL, seed=1)
    for name in ("train", "val", "test"):
        assert not torch.equal(getattr(bench, name).images, getattr(other, name).images), name
    for kind in ("near", "far"):
        assert not torch.equal(bench.ood[kind].targets, other.ood[kind].targets), kind


def test_chunking_does_not_change_the_scenes(root, bench, monkeypatch):
    import ood.data.scenes as scenes

    monkeypatch.setattr(scenes, "_CHUNK", 5)
    for a, b in zip(_all(bench), _all(load_scenes(root, **SMALL))):
        assert torch.equal(a, b)


def test_subset_is_a_prefix(root, bench):
    tiny = load_scenes(root, **SMALL, subset=5)
    assert tiny.sizes() == {"train": 5, "val": 5, "test": 5, "near": 5, "far": 5}
    assert tiny.params["subset"] == 5
    for big, small in zip(_all(bench), _all(tiny)):
        assert torch.equal(big[:5], small)
    assert load_scenes(root, **SMALL, subset=1000).sizes() == bench.sizes()


def test_load_benchmark_dispatch(root, bench):
    assert registry.required_datasets(["scenes"]) == ["fashion-mnist"]
    via = load_benchmark("scenes", root=root, **SMALL)
    assert torch.equal(via.ood["near"].targets, bench.ood["near"].targets)
    with pytest.raises(ValueError, match="accepted: size"):
        load_benchmark("scenes", root=root, canvas=96)


@pytest.mark.parametrize(
    "params, key",
    [
        ({"size": 40}, "size"),
        ({"size": 96.0}, "size"),
        ({"n_train": 0}, "n_train"),
        ({"n_val": -1}, "n_val"),
        ({"n_test": "5"}, "n_test"),
        ({"objects": (3, 2)}, "objects"),
        ({"objects": (0, 0)}, "objects"),
        ({"objects": (1, 17)}, "objects"),
        ({"objects": 3}, "objects"),
        ({"anomalies": (0, 1)}, "anomalies"),
        ({"anomalies": (1, 5)}, "anomalies"),
        ({"scale": (0.4, 1.0)}, "scale"),
        ({"scale": (1.0, 2.0)}, "scale"),  # a 56-px sprite does not fit twice in 96 px
        ({"scale": (1.0, float("nan"))}, "scale"),
        ({"seed": 1.5}, "seed"),
        ({"subset": 0}, "subset"),
    ],
)
def test_bad_params_name_the_key(root, params, key):
    with pytest.raises(ValueError, match=rf"^{key} must"):
        load_scenes(root, **{**SMALL, **params})


def test_yaml_lists_are_accepted(root):
    b = load_scenes(root, n_train=2, n_val=1, n_test=2, objects=[1, 2], anomalies=[2, 2], scale=[1, 1.25])
    assert b.params["objects"] == [1, 2] and b.params["scale"] == [1.0, 1.25]
    assert ((b.ood["near"].anomalies >= 0).sum(1) == 2).all()


# --- pixel-exact content (marker data) --------------------------------------------------------


def test_objects_come_from_the_right_split(marker_root):
    b = load_scenes(marker_root, size=96, n_train=30, n_val=12, n_test=12, scale=(1.0, 1.0))
    train_values = set(range(100, 100 + 6 * PER_CLASS_TRAIN))
    seen = {}
    for name in ("train", "val", "test"):
        ds = getattr(b, name)
        values = _u8(ds)[((ds.targets >= 1) & (ds.targets <= 6)).numpy()]
        seen[name] = set(np.unique(values).tolist())
        # no anomaly (nor anything brighter than the ID markers) in ID scenes
        assert _u8(ds).max() < min(NEAR_VALUE.values())
    assert seen["train"] <= train_values and seen["val"] <= train_values
    assert not seen["train"] & seen["val"]  # fmnist6's train/val split of the training images
    assert seen["test"] == {TEST_ID_VALUE}  # test scenes: test split only
    near = b.ood["near"]  # anomalies: the held-out classes of the test split
    assert set(np.unique(_u8(near)[(near.targets == 1).numpy()]).tolist()) <= set(NEAR_VALUE.values())


def test_labels_are_pixel_exact(single):
    remap = {v: k for k, v in enumerate(range(100, 100 + 6 * PER_CLASS_TRAIN))}
    for name in ("train", "val", "test"):
        ds = getattr(single, name)
        for i in range(len(ds)):
            img, sem = _u8(ds)[i], ds.targets[i].numpy()
            label = int(ds.objects[i, 0])
            core = sem == label
            _assert_square_with_rim(core, sem == VOID)  # void exactly on the blended rim
            assert set(np.unique(sem).tolist()) == {0, label, VOID}
            assert len(np.unique(img[core])) == 1  # the object's own intensity, unblended
            if name == "test":
                assert img[core][0] == TEST_ID_VALUE
            else:  # the marker's training image has this class
                assert 1 + remap[int(img[core][0])] // PER_CLASS_TRAIN == label


def test_ood_mask_is_pixel_exact(single):
    clean_img, clean_sem = _u8(single.test).astype(int), single.test.targets.numpy()
    near, sem = single.ood["near"], single.ood_semantic["near"]
    alpha = RING / 255 / ALPHA_RAMP
    for i in range(len(near)):
        mask, img = near.targets[i].numpy(), _u8(near)[i].astype(int)
        _assert_square_with_rim(mask == 1, mask == VOID)
        code = int(near.anomalies[i, 0])
        assert (img[mask == 1] == NEAR_VALUE[code]).all()  # exactly the anomaly, fully visible
        np.testing.assert_array_equal(img[mask == 0], clean_img[i][mask == 0])  # nothing else changed
        # the rim is a blend of the anomaly's rim and what lay below (up to 8-bit rounding)
        blend = clean_img[i][mask == VOID] * (1 - alpha) + alpha * RING
        assert np.abs(img[mask == VOID] - blend).max() <= 1.0
        # the semantic view: anomaly and its rim void, the rest as in the clean scene
        s = sem.targets[i].numpy()
        assert (s[mask != 0] == VOID).all()
        np.testing.assert_array_equal(s[mask == 0], clean_sem[i][mask == 0])


def test_two_anomalies_both_stay_visible(marker_root):
    b = load_scenes(marker_root, size=96, n_train=1, n_val=1, n_test=40, anomalies=(2, 2), scale=(1.0, 1.0))
    near = b.ood["near"]
    checked = 0
    for i in range(len(near)):
        codes = near.anomalies[i].tolist()
        if codes[0] == codes[1]:
            continue
        visible = _u8(near)[i][near.targets[i].numpy() == 1]
        for code in codes:
            assert (visible == NEAR_VALUE[code]).sum() >= 50, (i, codes)  # >= half of its core
        checked += 1
    assert checked >= 10


# --- building blocks ------------------------------------------------------------------------


def test_paste_label_rules():
    image = np.zeros((1, 4, 4), np.float32)
    sem, ood, occ = (np.zeros((1, 4, 4), np.uint8) for _ in range(3))
    values = np.full((1, 2, 2), 0.8, np.float32)
    alphas = np.array([[[1.0, 0.5], [0.0, 1.0]]], np.float32)
    paste(image, sem, ood, occ, values, alphas, np.array([0]), np.array([0]), np.array([3]), flag=0)
    np.testing.assert_array_equal(sem[0, :2, :2], [[3, VOID], [0, 3]])
    np.testing.assert_array_equal(ood[0, :2, :2], [[0, 0], [0, 0]])  # an ID object over ID: still ID
    np.testing.assert_allclose(image[0, :2, :2], [[0.8, 0.4], [0.0, 0.8]])
    # a translucent pixel over its own label keeps it; an anomaly's rim over ID is void
    half = np.full((1, 2, 2), 0.5, np.float32)
    paste(image, sem, ood, occ, values, half, np.array([0]), np.array([0]), np.array([3]), flag=0)
    assert sem[0, 0, 0] == 3 and sem[0, 1, 0] == VOID
    paste(image, sem, ood, occ, values, half, np.array([2]), np.array([2]), np.array([VOID]), flag=1)
    assert (ood[0, 2:, 2:] == VOID).all() and (sem[0, 2:, 2:] == VOID).all()
    assert (occ[0, 2:, 2:] == OCCUPIED_ANOMALY).all() and occ[0, 0, 0] == OCCUPIED_ID and occ[0, 3, 0] == 0


def test_object_alpha_and_sprites():
    img = np.zeros((1, 28, 28), np.uint8)
    img[0, 10, 10:13] = (0, 13, 200)
    alpha = object_alpha(img)
    np.testing.assert_allclose(alpha[0, 10, 10:13], [0.0, 13 / 255 / ALPHA_RAMP, 1.0], rtol=1e-6)
    values, alphas = make_sprites(img.astype(np.float32) / 255, np.array([42]), 42)
    assert values.shape == alphas.shape == (1, 42, 42)
    assert np.allclose(values * 255, np.round(values * 255), atol=1e-4)  # 8-bit levels
    blobs = blob_alpha(np.random.default_rng(0).random((3, 7)), np.array([28, 35, 42]), 42)
    assert blobs.shape == (3, 42, 42) and blobs.min() == 0 and blobs.max() == 1
    for b, side in zip(blobs, (28, 35, 42)):
        assert not b[side:].any() and not b[:, side:].any()  # inside its own square
        part = (b > 0) & (b < 1)
        assert 0 < part.sum() < 0.5 * (b == 1).sum()  # a thin anti-aliased rim


def test_background_is_smooth_and_low_contrast():
    bg = make_background(np.random.default_rng(0).random((16, BG_DRAWS)), 96)
    assert bg.shape == (16, 96, 96) and bg.dtype == np.float32
    assert 0.0 <= bg.min() and bg.max() <= 0.6
    assert bg.reshape(16, -1).std(1).max() < 0.1
    assert np.abs(np.diff(bg, axis=-1)).max() < 0.03 and np.abs(np.diff(bg, axis=-2)).max() < 0.03
