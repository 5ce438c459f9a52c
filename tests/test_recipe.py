"""Shipped networks (ood.pipeline.recipe): every committed file is the one its provenance hashed and
was made by today's recipe; a tiny recipe ships, loads back bit for bit, and the stage refuses weights
that are missing, corrupt or made by another recipe or other training data."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import yaml

from fakes import write_fake_fashion_mnist
from ood.pipeline import params as Pm
from ood.pipeline import recipe as R
from workspace import REPO

PARAMS = Pm.load(REPO / "params.yaml")


def _shipped() -> list[Path]:
    return sorted((REPO / "weights").glob("*/*/seed-*/provenance.json"))


def test_the_default_study_loads_shipped_weights_for_the_seeds_the_seed_study_runs() -> None:
    for network in R.NETWORKS:
        assert PARAMS[network]["weights"] == R.folder(PARAMS, network)
        seeds = {p.parent.name for p in (REPO / R.folder(PARAMS, network)).glob("seed-*/provenance.json")}
        assert {"seed-0", "seed-1", "seed-2"} <= seeds, network


@pytest.mark.parametrize("prov", _shipped(), ids=lambda p: str(p.parent.relative_to(REPO / "weights")))
def test_every_shipped_file_matches_its_sha256_and_todays_recipe(prov: Path) -> None:
    """A recipe (a params.yaml value) cannot change without the weights being retrained."""
    meta = json.loads(prov.read_text())
    P = {**copy.deepcopy(PARAMS), "seed": meta["seed"]}
    assert R.provenance_errors(meta["network"], P, REPO) == []
    assert set(meta["sha256"]) == {p.name for p in prov.parent.iterdir() if p.name != "provenance.json"}
    for key in ("commit", "steps", "wall_s", "cpu", "history", "final"):
        assert meta[key], key


def test_shipped_weights_stay_small() -> None:
    total = sum(p.stat().st_size for p in (REPO / "weights").rglob("*") if p.is_file())
    assert total <= 25 * 2**20, f"{total / 2**20:.1f} MB shipped"


@pytest.fixture
def tiny_project(tmp_path: Path) -> tuple[Path, dict]:
    write_fake_fashion_mnist(tmp_path / "data" / "fashion-mnist", n_train=300, n_test=100, gz=False)
    P = copy.deepcopy(PARAMS)
    P["benchmark"]["subset"] = 120
    P["classifier"].update(epochs=1, batch_size=32)
    P["segmenter"]["weights"] = ""  # trained in its stage: nothing shipped to check
    return tmp_path, P


def test_a_shipped_network_loads_back_as_trained(tiny_project) -> None:
    root, P = tiny_project
    out = R.ship("classifier", 3, P, root)
    assert out == root / "weights" / "fmnist6" / "classifier" / "seed-3"
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["steps"] == 4 and prov["train_images"] == 120  # ceil(120 / 32) steps of one epoch
    assert prov["recipe"]["epochs"] == 1 and "weights" not in prov["recipe"]
    assert 0.0 <= prov["val_accuracy"] <= 1.0 and len(prov["history"]) == 1
    net = R.obtain("classifier", {**P, "seed": 3}, root)
    saved = torch.load(out / "classifier.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(net.model.state_dict()[k], v) for k, v in saved.items())
    assert net.source == "weights/fmnist6/classifier/seed-3" and net.history == prov["history"]
    trained = R.train("classifier", {**P, "seed": 3}, root, root / "again.ckpt")  # the same recipe, trained again
    assert all(torch.equal(trained.model.state_dict()[k], v) for k, v in saved.items())


def test_the_stage_refuses_missing_corrupt_or_foreign_weights(tiny_project) -> None:
    root, P = tiny_project
    out = R.ship("classifier", 0, P, root)
    assert R.check(P, root) == []
    with pytest.raises(R.ShippedError, match=r"no shipped classifier for seed 5 .* \(shipped seeds: 0\).*recipe train classifier --seeds 5"):
        R.obtain("classifier", {**P, "seed": 5}, root)
    other = copy.deepcopy(P)
    other["classifier"]["lr"] = 0.01
    other["benchmark"]["val_fraction"] = 0.2
    errors = R.check(other, root)
    assert any("another recipe (lr: 0.01 here, 0.003 shipped)" in e for e in errors)
    assert any("another training data (benchmark.val_fraction: 0.2 here, 0.1 shipped)" in e for e in errors)
    other = copy.deepcopy(P)
    other["benchmark"]["far_size"] = 10  # test sets only: the training split is the same
    other["classifier"]["device"] = "cpu"
    assert R.check(other, root) == []
    with open(out / "classifier.pt", "ab") as f:
        f.write(b"\0")
    with pytest.raises(R.ShippedError, match="does not match its sha256"):
        R.obtain("classifier", P, root)


def test_weights_must_name_the_folder_the_stage_tracks() -> None:
    P = copy.deepcopy(PARAMS)
    P["classifier"]["weights"] = "somewhere/else"
    assert any(e.startswith("classifier.weights: must be '' (train in the stage) or 'weights/fmnist6/classifier'")
               for e in Pm.validate(P))
    P["classifier"]["weights"] = ""
    assert Pm.validate(P) == []


def test_every_profile_trains_or_loads_its_own_networks() -> None:
    """A profile that changes a network's recipe does not load the embedded one's weights, and the
    folder each stage depends on exists for every benchmark a profile names."""
    from ood.pipeline import profile

    for name in (n for n in profile.available(REPO) if n != "default"):
        P = yaml.safe_load(profile.apply_overlay((REPO / "params.yaml").read_text(), profile.overlay(REPO, name), name))
        assert R.check(P, REPO) == [], name
        for network in R.NETWORKS:
            assert (REPO / R.folder(P, network)).is_dir(), (name, network)
