"""The ``cityscapes`` dense benchmark (ood.data.cityscapes) on fixture archives in the official formats.

The fixtures (tests/fakes_dense.py) are 32x64 frames. Cityscapes labelIds: rows 0-7 road, 8-15
car, 16-23 unlabeled, 24-31 bicycle, column 0 parking. OOD frame ``i``: void in rows 0-3, OOD in
rows 12-19, columns 8+8i .. 23+8i. At ``size=64`` every frame is exactly twice as large, so
nearest resizing must give each fixture pixel as a 2x2 block.
"""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import fakes_dense as fd
import ood.data
import ood.pipeline.params
from ood.data import dense, registry
from ood.data.cityscapes import OOD_SETS, Letterbox, load_cityscapes_benchmark
from ood.data.fetch import UnpinnedChecksumWarning

fetch_mod = importlib.import_module("ood.data.fetch")

N_TRAIN, N_VAL = 8, 4  # Cityscapes fixture frames (official train / val splits)
N_OOD = 5  # frames per OOD set


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A data root with every dataset of the benchmark verified and unpacked (as after
    `python -m ood.data download`); the loads below need no mirror."""
    base = tmp_path_factory.mktemp("cityscapes")
    data = base / "data"
    writers = {"smiyc-roadanomaly21": lambda d: fd.write_fake_smiyc(d, "anomaly", N_OOD),
               "smiyc-roadobstacle21": lambda d: fd.write_fake_smiyc(d, "obstacle", N_OOD),
               "fishyscapes-lostandfound": lambda d: fd.write_fake_fishyscapes_lostandfound(d, N_OOD)}
    with pytest.MonkeyPatch.context() as mp:
        fd.no_network(mp)
        for name, write in writers.items():
            mirror = base / "mirror" / name
            mp.setitem(registry.DATASETS, name, fd.pinned_spec(name, write(mirror)))
            mp.setenv(fetch_mod.MIRRORS_ENV, mirror.as_uri())
            dense.prepare(name, data, download=True, progress=False)
        fd.write_fake_cityscapes(data / "cityscapes", n_train=N_TRAIN, n_val=N_VAL)  # placed by hand (login-gated)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnpinnedChecksumWarning)  # trust on first use: nothing published
            dense.prepare("cityscapes", data, progress=False)
    return data


def _bench(root: Path, **kw):
    return load_cityscapes_benchmark(root, **{"size": 64, "n_train": 100, "n_val": 3, "n_test": 100, **kw})


def _ids(ds) -> list[str]:
    return ds.frame_ids


def _block(a: np.ndarray) -> np.ndarray:
    return np.kron(a, np.ones((2, 2), dtype=a.dtype))


def test_splits_classes_and_sets(root):
    b = _bench(root)
    assert b.name == "cityscapes" and b.classes[0] == "road" and b.num_classes == 19
    assert b.in_channels == 3 and b.image_size == (64, 128) and b.ignore_index == 255
    assert list(b.ood) == list(OOD_SETS) and b.ood_semantic == {}
    train, val = set(_ids(b.train)), set(_ids(b.val))
    assert len(val) == 3 and len(train) == N_TRAIN - 3 and not train & val  # disjoint, every frame used
    assert all(f.startswith("aachen_") for f in train | val)  # both from Cityscapes train
    assert _ids(b.test) == [f"frankfurt_{k:06d}_000019" for k in range(N_VAL)]  # Cityscapes val, official order
    assert _ids(b.train) == sorted(train) and _ids(b.val) == sorted(val)
    assert b.sizes() == {"train": 5, "val": 3, "test": N_VAL, **dict.fromkeys(OOD_SETS, N_OOD)}
    assert b.ood["fishyscapes-lostandfound"].frame_ids[3].startswith("0003_12_Umberto_Nobile_Str")


def test_splits_are_seeded_and_reproducible(root):
    a, again = _bench(root, seed=0), _bench(root, seed=0)
    assert _ids(a.val) == _ids(again.val) and _ids(a.train) == _ids(again.train)
    vals = {tuple(_ids(_bench(root, seed=s).val)) for s in range(5)}
    assert len(vals) > 1  # the seed moves the validation split
    # each choice has its own stream: capping test or train never moves a frame between train and val
    capped = _bench(root, n_test=2, n_train=2)
    assert _ids(capped.val) == _ids(a.val) and set(_ids(capped.train)) < set(_ids(a.train))
    assert len(capped.test) == 2 and set(_ids(capped.test)) <= set(_ids(a.test))


def test_frames_are_resized_and_labels_kept_exactly(root):
    b = _bench(root)
    image, target = b.train[0]
    assert image.dtype == torch.float32 and tuple(image.shape) == (3, 64, 128)
    assert 0.0 <= image.min() and image.max() <= 1.0
    trainids = dense.cityscapes_train_ids(fd.cityscapes_label_ids()).astype(np.int64)
    assert target.dtype == torch.int64 and np.array_equal(target.numpy(), _block(trainids))
    # bilinear: a smooth ramp stays a ramp (R = 4 * column in the fixture)
    assert torch.allclose(image[0, 10, 2:-2:2], torch.arange(1, 63, dtype=torch.float32) * 4 / 255, atol=1.5 / 255)
    for name in OOD_SETS:
        ds = b.ood[name]
        for i in range(len(ds)):
            mask = ds[i][1].numpy()
            k = int(ds.frame_ids[i].split("_")[0]) if name.startswith("fish") else i  # fixture frame number
            expected = np.zeros((32, 64), dtype=np.int64)
            expected[0:4], expected[fd.box(k)] = 255, 1
            assert np.array_equal(mask, _block(expected)), (name, i)


def test_letterbox_keeps_the_aspect_ratio_and_pads_with_void():
    lb = Letterbox((64, 128))
    image = torch.rand(3, 72, 128)  # 16:9, like RoadObstacle21's 1920x1080
    mask = torch.zeros(72, 128, dtype=torch.int64)
    mask[:8], mask[40:56, 60:92] = 255, 1
    x, y = lb(image, mask)
    assert tuple(x.shape) == (3, 64, 128) and tuple(y.shape) == (64, 128)
    assert set(y.unique().tolist()) == {0, 1, 255}
    # 72x128 -> 64x114 (scale 8/9), centred: 7 void columns on each side with the padding colour
    assert (y[:, :7] == 255).all() and (y[:, 121:] == 255).all() and (y[:, 7:121] != 255).any()
    assert torch.allclose(x[:, 5, 3], torch.tensor([0.485, 0.456, 0.406]))
    assert abs(int((y == 1).sum()) - 16 * 32 * (8 / 9) ** 2) < 40  # the anomaly scaled, not stretched
    same = torch.rand(3, 64, 128), mask[:64]
    assert lb(*same)[0] is same[0] and lb(*same)[1] is same[1]  # already the right size: untouched


def test_subset_caps_every_split_and_set_and_nests(root):
    full, small = _bench(root), _bench(root, subset=2)
    assert all(n <= 2 for n in small.sizes().values()) and small.sizes()["val"] == 2
    assert set(_ids(small.val)) <= set(_ids(full.val)) and set(_ids(small.train)) <= set(_ids(full.train))
    for name in OOD_SETS:
        assert set(small.ood[name].frame_ids) <= set(full.ood[name].frame_ids)
    assert small.params["subset"] == 2


@pytest.mark.parametrize("key, value, message", [
    ("size", 55, r"size must be an integer in \[56, 1024\]"),
    ("size", 2048, r"size must be an integer in \[56, 1024\]"),
    ("size", 64.0, r"size must be an integer"),
    ("n_val", 0, r"n_val must be an integer in \[1, 1000000\]"),
    ("n_train", True, r"n_train must be an integer"),
    ("n_test", -1, r"n_test must be an integer"),
    ("subset", 0, r"subset must be None or an integer >= 1"),
    ("seed", "0", r"seed must be an integer"),
])  # fmt: skip
def test_bad_parameters_name_the_key(root, key, value, message):
    with pytest.raises(ValueError, match=message):
        _bench(root, **{key: value})


def test_validation_split_must_leave_training_frames(root):
    with pytest.raises(ValueError, match=rf"n_val must leave at least one of the {N_TRAIN} Cityscapes training frames"):
        _bench(root, n_val=N_TRAIN)


def test_missing_cityscapes_says_where_to_get_it(tmp_path, monkeypatch):
    fd.no_network(monkeypatch)
    with pytest.raises(registry.ManualDownloadRequired) as info:
        ood.data.load_benchmark("cityscapes", tmp_path / "data", size=64)
    msg = str(info.value)
    assert "https://www.cityscapes-dataset.com/downloads/" in msg and "do not unpack" in msg
    assert str((tmp_path / "data" / "cityscapes").absolute() / "leftImg8bit_trainvaltest.zip") in msg


def test_missing_ood_set_says_what_to_run(root, tmp_path, monkeypatch):
    fd.no_network(monkeypatch)
    data = tmp_path / "data"
    (data / "cityscapes").mkdir(parents=True)
    for f in (root / "cityscapes").iterdir():  # Cityscapes in place, the OOD sets not
        (data / "cityscapes" / f.name).symlink_to(f)
    with pytest.raises(FileNotFoundError, match=r"python -m ood\.data download smiyc-roadanomaly21"):
        load_cityscapes_benchmark(data, size=64)


def test_the_profile_section_builds_it_through_the_cache(root, tmp_path):
    """What the pipeline does: params.yaml's shared dense_benchmark section (scenes' keys included,
    left out for this loader) -> ood.data.load_benchmark, built once, then read from the cache."""
    params = {"data_seed": 0, "data": {"root": str(root)},
              "dense_benchmark": {"name": "cityscapes", "size": 64, "n_train": 2825, "n_val": 3, "n_test": 500,
                                  "objects": [2, 4], "anomalies": [1, 2], "scale": [1.0, 1.5], "subset": None}}
    args = ood.pipeline.params.benchmark_args(params, "dense_benchmark", root=tmp_path)
    assert "objects" not in args and args["cache"] == str(tmp_path / ".cache" / "benchmarks")
    built = ood.data.load_benchmark(**args)
    cached = ood.data.load_benchmark(**args)  # unpickled: the datasets read the unpacked files
    assert list((tmp_path / ".cache" / "benchmarks").glob("cityscapes-*.pt"))
    assert cached.sizes() == built.sizes() == {"train": N_TRAIN - 3, "val": 3, "test": N_VAL,
                                               **dict.fromkeys(OOD_SETS, N_OOD)}
    for a, b in ((built.val[1], cached.val[1]), (built.ood[OOD_SETS[1]][2], cached.ood[OOD_SETS[1]][2])):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_segmenter_confusion_streams_batch_by_batch(root):
    """The segmenter stage's mIoU (ood.evaluation.dense.segmentation_confusion): the same counts as
    one pass over every logit (ood.train.predict), without keeping them (80 GB at 1024x2048)."""
    import ood.evaluation.dense
    import ood.metrics
    import ood.train

    b = _bench(root)
    torch.manual_seed(0)
    model = torch.nn.Conv2d(3, b.num_classes, 3, padding=1)
    logits, labels = ood.train.predict(model, b.test, batch_size=8)
    whole = ood.metrics.pixel_confusion(logits.argmax(1).numpy(), labels.numpy(), b.num_classes)
    streamed = ood.evaluation.dense.segmentation_confusion(model, b.test, b.num_classes, batch_size=3)
    assert np.array_equal(streamed, whole) and streamed.sum() == int((labels != 255).sum())
