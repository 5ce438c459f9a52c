"""The benchmark cache (ood.data.cache): one build per (name, parameters, raw data, code), equal
results from the cache, corrupt entries rebuilt, one entry per benchmark kept."""

from __future__ import annotations

import os

import torch

from ood.data.cache import cached


def _builder(calls: list):
    def build():
        calls.append(1)
        return {"images": torch.arange(12.0).reshape(3, 4), "n": len(calls)}
    return build


def test_second_call_loads_what_the_first_built(tmp_path):
    calls: list = []
    root, folder = tmp_path / "data", tmp_path / "cache"
    root.mkdir()
    first = cached("toy", root, {"size": 4}, _builder(calls), folder)
    second = cached("toy", root, {"size": 4}, _builder(calls), folder)
    assert len(calls) == 1 and second["n"] == 1
    assert torch.equal(first["images"], second["images"])
    assert len(list(folder.glob("toy-*.pt"))) == 1


def test_parameters_and_raw_data_are_part_of_the_key(tmp_path):
    calls: list = []
    root, folder = tmp_path / "data", tmp_path / "cache"
    root.mkdir()
    cached("toy", root, {"size": 4}, _builder(calls), folder)
    cached("toy", root, {"size": 5}, _builder(calls), folder)  # other parameters: rebuilt
    assert len(calls) == 2
    assert len(list(folder.glob("toy-*.pt"))) == 1  # the older entry is gone
    raw = root / "images.idx"
    raw.write_bytes(b"1234")
    cached("toy", root, {"size": 5}, _builder(calls), folder)  # new raw file: rebuilt
    raw.write_bytes(b"12345")
    os.utime(raw, ns=(1, 1))
    cached("toy", root, {"size": 5}, _builder(calls), folder)  # changed raw file: rebuilt
    cached("toy", root, {"size": 5}, _builder(calls), folder)
    assert len(calls) == 4


def test_a_corrupt_entry_is_rebuilt(tmp_path):
    calls: list = []
    root, folder = tmp_path / "data", tmp_path / "cache"
    root.mkdir()
    cached("toy", root, {}, _builder(calls), folder)
    (entry,) = folder.glob("toy-*.pt")
    entry.write_bytes(entry.read_bytes()[:20])  # truncated, e.g. a full disk
    again = cached("toy", root, {}, _builder(calls), folder)
    assert len(calls) == 2 and again["n"] == 2
    assert cached("toy", root, {}, _builder(calls), folder)["n"] == 2


def test_load_benchmark_with_a_cache_equals_a_fresh_build(tmp_path):
    from ood.data import load_benchmark
    from fakes import write_fake_fashion_mnist

    write_fake_fashion_mnist(tmp_path / "data" / "fashion-mnist", n_train=300, n_test=100, gz=False)
    args = dict(root=tmp_path / "data", n_train=8, n_val=4, n_test=4, size=64, scale=(1.0, 1.1), seed=3)
    fresh = load_benchmark("scenes", **args)
    for _ in range(2):
        kept = load_benchmark("scenes", cache=tmp_path / "cache", **args)
        for split in ("train", "val", "test"):
            assert all(torch.equal(a, b) for a, b in zip(getattr(fresh, split).tensors, getattr(kept, split).tensors))
        for s in fresh.ood:
            assert all(torch.equal(a, b) for a, b in zip(fresh.ood[s].tensors, kept.ood[s].tensors))
