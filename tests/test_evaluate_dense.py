"""Streaming dense evaluation (ood.evaluation.dense) and its score-map store (ood.evaluation.scoremaps):
same accumulators as on the in-memory maps, for any batch size, maps saved as a plain npz,
keyed random detectors, one batch in memory at a time."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import TensorDataset

from ood.data.benchmark import DenseBenchmark
from ood.detectors import build
from ood.detectors.base import DenseDetector, per_sample, sample_generators
from ood.evaluation.dense import gallery, score_dense_benchmark
from ood.sets import ALL_SET
from ood.metrics import ComponentMetrics, PixelMetrics, dense_accumulators, summarize_dense
from ood.evaluation.scoremaps import ScoreMaps, ScoreMapWriter, member_name

NAMES = ["msp", "entropy", "maxlogit", "energy"]
SETTINGS = dict(bins=2**16, min_size=5, min_gt_size=1)
HW = 16


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------
class TinySegmenter(torch.nn.Module):
    """Three-class 'segmenter' of elementwise ops only (so a pixel's logits never depend on its
    batch-mates, bit for bit): confident near x = 0 and x = 1, uniform at x = 0.5."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([4.0, -4.0, 0.0]))
        self.b = torch.nn.Parameter(torch.tensor([0.0, 4.0, 2.0]))
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(len(x))
        return x[:, :1] * self.w.view(1, -1, 1, 1) + self.b.view(1, -1, 1, 1)


def scenes(seed: int, n: int = 6) -> TensorDataset:
    """``n`` scenes of 16x16: ID background near 0 or 1, an anomaly box near 0.5 (one scene has
    none, one has two boxes), void in the two top rows, noise so that the classes overlap."""
    g = torch.Generator().manual_seed(seed)
    x = torch.where(torch.rand(n, 1, HW, HW, generator=g) < 0.5, 0.0, 1.0)
    x = (x + 0.8 * (torch.rand(n, 1, HW, HW, generator=g) - 0.5)).clamp(0, 1)
    y = torch.zeros(n, HW, HW, dtype=torch.int64)
    for i in range(1, n):
        r, c, h, w = (int(v) for v in torch.randint(2, 10, (4,), generator=g))
        h, w = 2 + h % 5, 2 + w % 5
        y[i, r : r + h, c : c + w] = 1
        if i == 3:
            y[i, 12:15, 1:4] = 1
    box = y == 1
    x[:, 0][box] = 0.5 + 0.6 * (torch.rand(int(box.sum()), generator=g) - 0.5)
    y[:, :2] = 255
    return TensorDataset(x, y)


@pytest.fixture(scope="module")
def bench() -> DenseBenchmark:
    clean = scenes(99, 2)
    return DenseBenchmark(
        name="tiny", classes=["a", "b", "c"], train=clean, val=clean, test=clean,
        ood={"near": scenes(1), "far": scenes(2)}, in_channels=1, image_size=(HW, HW),
    )


@pytest.fixture(scope="module")
def model() -> TinySegmenter:
    return TinySegmenter().eval()


class NoisyDense(DenseDetector):
    """A dense detector with its own randomness (stands in for one that owns a network)."""

    name = "noisy"
    random = True

    def __init__(self, model):
        super().__init__(model)
        self.seen: list = []

    def _score_map(self, x, keys):
        self.seen.extend(keys)
        noise = per_sample(sample_generators(self.seed, keys), lambda g: torch.rand(x.shape[-2:], generator=g))
        return (x[:, 0] - 0.5).abs().neg() + 0.2 * noise.to(x.device)


def full_maps(model, bench, detectors: dict) -> dict[str, dict[str, np.ndarray]]:
    """Every detector's maps of every set, computed directly on the whole set."""
    out = {}
    for s, ds in bench.ood.items():
        x, y = ds.tensors
        out[s] = {"label": y.numpy().astype(np.uint8)}
        for name, det in detectors.items():
            keys = [(s, i) for i in range(len(x))]
            out[s][name] = det.score_map(x, keys=keys).numpy()
    return out


def reference(maps: dict, names: list[str], threshold="best_f1") -> dict:
    ref = {}
    for name in names:
        ref[name] = {s: dense_accumulators(m[name], m["label"], threshold=threshold, **SETTINGS) for s, m in maps.items()}
        pooled = [np.concatenate([m[k] for m in maps.values()]) for k in (name, "label")]
        ref[name][ALL_SET] = dense_accumulators(*pooled, threshold=threshold, **SETTINGS)
    return ref


def values(acc: dict) -> dict:
    """Every metric, threshold and bootstrap replicate of ``{detector: {set: (pm, cm)}}``."""
    out = {}
    for det, per_set in acc.items():
        for s, (pm, cm) in per_set.items():
            out[det, s] = {
                **pm.compute(), **cm.compute(), "threshold": cm.threshold, "n": (pm.n_images, cm.n_images),
                **{f"boot_{k}": tuple(v) for k, v in pm.bootstrap_samples(20, 0, s).items()},
                **{f"boot_{k}": tuple(v) for k, v in cm.bootstrap_samples(20, 0, s).items()},
            }
    return out


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].keys() == b[k].keys(), k
        for m in a[k]:
            x, y = np.asarray(a[k][m], float), np.asarray(b[k][m], float)
            assert np.array_equal(x, y, equal_nan=True), (k, m, x, y)


def run(model, bench, path, batch_size, names=NAMES, **kwargs):
    return score_dense_benchmark(model, bench, names, {}, batch_size=batch_size, scores_path=path, **SETTINGS, **kwargs)


# --------------------------------------------------------------------------------------------
# the store
# --------------------------------------------------------------------------------------------
def test_store_round_trip_and_np_load(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    label = [rng.integers(0, 2, (n, 4, 5)).astype(np.uint8) for n in (3, 3, 1)]
    msp = [rng.random((n, 4, 5), dtype=np.float32) for n in (3, 3, 1)]
    path = tmp_path / "sub" / "maps.npz"
    with ScoreMapWriter(path) as w:
        for lab, m in zip(label, msp):
            assert w.write("near", "label", lab).startswith("near/label/")
            w.write("near", "msp", torch.from_numpy(m))  # torch tensors are accepted
        w.write("far", "label", label[0])
        w.write("far", "msp", msp[0])
    assert sorted(p.name for p in path.parent.iterdir()) == ["maps.npz"]  # no temp file left
    with ScoreMaps(path) as store:
        assert store.sets() == ["near", "far"]
        assert store.keys("near") == ["label", "msp"] and store.detectors("near") == ["msp"]
        chunks = list(store.iter_chunks("near", "msp"))
        assert len(chunks) == 3 and all(np.array_equal(a, b) for a, b in zip(chunks, msp))
        assert store.load("near", "label").dtype == np.uint8
        assert np.array_equal(store.load("near", "label"), np.concatenate(label))
        assert np.array_equal(store.head("near", "msp", 4), np.concatenate(msp)[:4])
        assert np.array_equal(store.head("near", "msp", 99), np.concatenate(msp))
        batches = list(store.iter_batches("near"))
        assert [set(b) for b in batches] == [{"label", "msp"}] * 3
        with pytest.raises(KeyError, match="no set 'mid'"):
            store.load("mid", "msp")
        with pytest.raises(KeyError, match="no key 'knn'"):
            store.load("near", "knn")
    with np.load(path) as z:  # a plain npz: member <set>/<key>/<chunk:05d>.npy
        assert set(z.files) == {"near/label/00000", "near/label/00001", "near/label/00002",
                                "near/msp/00000", "near/msp/00001", "near/msp/00002",
                                "far/label/00000", "far/msp/00000"}
        assert np.array_equal(np.concatenate([z[f"near/msp/{i:05d}"] for i in range(3)]), np.concatenate(msp))
    with zipfile.ZipFile(path) as zf:
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_DEFLATED}
    again = tmp_path / "again.npz"
    with ScoreMapWriter(again) as w:
        for lab, m in zip(label, msp):
            w.write("near", "label", lab)
            w.write("near", "msp", m)
        w.write("far", "label", label[0])
        w.write("far", "msp", msp[0])
    assert again.read_bytes() == path.read_bytes()  # same maps, same bytes (stable DVC hashes)


def test_store_keeps_chunk_order_beyond_10_and_100_chunks(tmp_path: Path) -> None:
    path = tmp_path / "many.npz"
    with ScoreMapWriter(path) as w:
        for i in range(123):
            w.write("s", "k", np.full((1, 2, 2), i, dtype=np.int32))
        assert w.n_chunks("s", "k") == 123
    with ScoreMaps(path) as store:
        assert [int(c[0, 0, 0]) for c in store.iter_chunks("s", "k")] == list(range(123))
    with np.load(path) as z:
        names = sorted(n for n in z.files if n.startswith("s/k/"))
        assert [int(z[n][0, 0, 0]) for n in names] == list(range(123))  # zero padding: lexical = chunk order
    assert member_name("s", "k", 7) == "s/k/00007.npy" and member_name("s", "k", 123456) == "s/k/123456.npy"


def test_store_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "maps.npz"
    with pytest.raises(RuntimeError, match="interrupted"):
        with ScoreMapWriter(path) as w:
            w.write("near", "label", np.zeros((2, 3, 3), np.uint8))
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []  # neither the store nor its temporary file
    with ScoreMapWriter(path) as w:
        w.write("near", "msp", np.ones((1, 2, 2), np.float32))
    before = path.read_bytes()
    with pytest.raises(KeyboardInterrupt):
        with ScoreMapWriter(path) as w:
            w.write("near", "msp", np.zeros((1, 2, 2), np.float32))
            raise KeyboardInterrupt
    assert path.read_bytes() == before and sorted(tmp_path.iterdir()) == [path]  # old store untouched
    w = ScoreMapWriter(path)
    w.write("near", "msp", np.zeros((1, 2, 2), np.float32))
    w.abort()
    assert path.read_bytes() == before and sorted(tmp_path.iterdir()) == [path]
    with pytest.raises(ValueError, match="closed"):
        w.write("near", "msp", np.zeros((1, 2, 2), np.float32))


def test_store_rejects_bad_names(tmp_path: Path) -> None:
    with ScoreMapWriter(tmp_path / "m.npz") as w:
        for bad in ("a/b", "", ".hidden", " x"):
            with pytest.raises(ValueError, match="without '/'"):
                w.write(bad, "msp", np.zeros(1))
            with pytest.raises(ValueError, match="without '/'"):
                w.write("near", bad, np.zeros(1))
        with pytest.raises(TypeError, match="object arrays"):
            w.write("near", "msp", np.array([None, 1], dtype=object))


# --------------------------------------------------------------------------------------------
# the evaluator
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_size", [1, 4, 64])
def test_streamed_accumulators_equal_the_in_memory_ones(model, bench, tmp_path, batch_size) -> None:
    dets = {name: build(name, model=model, dense=True) for name in NAMES}
    expected = values(reference(full_maps(model, bench, dets), NAMES))
    acc, costs = run(model, bench, tmp_path / "maps.npz", batch_size)
    assert list(acc) == NAMES and all(list(per) == ["near", "far", ALL_SET] for per in acc.values())
    assert_same(values(acc), expected)  # pixel + component, every set and all, bootstrap included
    assert list(costs.columns) == ["detector", "fit_s", "score_s", "cost_vs_forward"]
    assert list(costs.detector) == NAMES and (costs.cost_vs_forward >= 1).all()  # forward + own work
    assert isinstance(summarize_dense(acc, n_boot=10), pd.DataFrame)


def test_all_has_its_own_component_threshold(model, bench, tmp_path) -> None:
    new, _ = run(model, bench, tmp_path / "maps.npz", 4)
    # the pooled best-F1 threshold is not every set's: ``all``'s components are not the sets' merged
    thr = {s: new["msp"][s][1].threshold for s in ("near", "far", ALL_SET)}
    assert len(set(thr.values())) > 1


def test_numeric_threshold_and_exact_pixels(model, bench, tmp_path) -> None:
    dets = {name: build(name, model=model, dense=True) for name in ("msp", "energy")}
    maps = full_maps(model, bench, dets)
    expected = {}
    for name, thr in (("msp", -0.6), ("energy", -2.5)):
        acc, _ = score_dense_benchmark(model, bench, [name], {}, batch_size=4, scores_path=tmp_path / f"{name}.npz",
                                       bins=None, component_threshold=thr, min_size=5, min_gt_size=1)
        for s, m in maps.items():
            expected[name, s] = dense_accumulators(m[name], m["label"], bins=None, threshold=thr, min_size=5, min_gt_size=1)
        pooled = [np.concatenate([m[k] for m in maps.values()]) for k in (name, "label")]
        expected[name, ALL_SET] = dense_accumulators(*pooled, bins=None, threshold=thr, min_size=5, min_gt_size=1)
        assert_same(values(acc), values({name: {s: expected[name, s] for s in ("near", "far", ALL_SET)}}))
        assert {acc[name][s][1].threshold for s in acc[name]} == {thr}


def test_saved_maps_are_the_detectors_maps(model, bench, tmp_path) -> None:
    dets = {name: build(name, model=model, dense=True) for name in NAMES}
    maps = full_maps(model, bench, dets)
    path = tmp_path / "maps.npz"
    run(model, bench, path, 4)
    with np.load(path) as z:
        assert {n.split("/")[0] for n in z.files} == {"near", "far"}
        for s in ("near", "far"):
            for key in ["label", *NAMES]:
                members = sorted(n for n in z.files if n.startswith(f"{s}/{key}/"))
                assert len(members) == 2  # 6 scenes in chunks of 4
                got = np.concatenate([z[n] for n in members])
                assert got.dtype == (np.uint8 if key == "label" else np.float32)
                assert np.array_equal(got, maps[s][key]), (s, key)
    g = gallery(path, "far", 5)
    assert list(g) == ["label", *NAMES] and all(v.shape == (5, HW, HW) for v in g.values())
    assert np.array_equal(g["entropy"], maps["far"]["entropy"][:5])


def test_detector_with_its_own_network_is_scored_by_key(model, bench, tmp_path) -> None:
    stored = {}
    for batch_size in (1, 4, 64):
        noisy = NoisyDense(model)
        path = tmp_path / f"b{batch_size}.npz"
        acc, costs = run(model, bench, path, batch_size, names=["msp"], detectors={"noisy": noisy})
        assert list(acc) == ["msp", "noisy"] and list(costs.detector) == ["msp", "noisy"]
        assert noisy.seen == [(s, i) for s in ("near", "far") for i in range(6)]  # keys are (set, index)
        with ScoreMaps(path) as store:
            stored[batch_size] = {s: store.load(s, "noisy") for s in ("near", "far")}
    direct = full_maps(model, bench, {"noisy": NoisyDense(model)})
    for batch_size, per_set in stored.items():
        for s, m in per_set.items():
            assert np.array_equal(m, direct[s]["noisy"]), (batch_size, s)  # independent of batch size
    assert not np.array_equal(stored[4]["near"][0], stored[4]["far"][0])  # the key includes the set
    expected = values(reference(direct, ["noisy"]))
    assert_same({k: v for k, v in values(acc).items() if k[0] == "noisy"}, expected)


def test_at_most_one_batch_of_maps_in_memory(model, bench, tmp_path, monkeypatch) -> None:
    seen: dict[str, int] = {}

    def spy(cls, method, what):
        original = getattr(cls, method)

        def wrapper(self, *args, **kwargs):
            arr = args[1] if what != "write" else args[2]
            seen[what] = max(seen.get(what, 0), len(arr))
            return original(self, *args, **kwargs)

        monkeypatch.setattr(cls, method, wrapper)

    spy(PixelMetrics, "update", "pixel")
    spy(ComponentMetrics, "update", "component")
    spy(ScoreMapWriter, "write", "write")
    model.calls.clear()
    batch_size = 2
    run(model, bench, tmp_path / "maps.npz", batch_size, detectors={"noisy": NoisyDense(model)})
    assert seen == {"pixel": batch_size, "component": batch_size, "write": batch_size}
    assert max(model.calls) == batch_size and len(model.calls) == 2 * math.ceil(6 / batch_size)


def test_errors(model, bench, tmp_path) -> None:
    with pytest.raises(ValueError, match="best_f1"):
        run(model, bench, tmp_path / "m.npz", 4, component_threshold="best_iou")
    with pytest.raises(ValueError, match="both in names and in detectors"):
        run(model, bench, tmp_path / "m.npz", 4, detectors={"msp": NoisyDense(model)})
    with pytest.raises(ValueError, match="reserved"):
        run(model, bench, tmp_path / "m.npz", 4, names=[], detectors={"label": NoisyDense(model)})
    bad = DenseBenchmark(name="bad", classes=["a"], train=bench.train, val=bench.val, test=bench.test,
                         ood={"near": TensorDataset(torch.zeros(2, 1, 4, 4), torch.full((2, 4, 4), 2))},
                         in_channels=1, image_size=(4, 4))
    with pytest.raises(ValueError, match="0 \\(ID\\), 1 \\(OOD\\) or 255"):
        run(model, bad, tmp_path / "m.npz", 4)
    assert list(tmp_path.iterdir()) == []  # a failed run leaves no store
