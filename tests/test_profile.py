"""Paper profiles (ood.pipeline.profile): laid over the default, they change exactly the keys they list
(and the DAG's outputs through ${benchmark.name}); switching back restores params.yaml byte for byte."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import ood.pipeline.profile as PR

REPO = Path(__file__).resolve().parent.parent


def leaves(tree, prefix=""):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from leaves(v, f"{prefix}{k}.")
    else:
        yield prefix[:-1], tree


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for name in ("params.yaml", "dvc.yaml"):
        shutil.copy2(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "profiles", tmp_path / "profiles", ignore=shutil.ignore_patterns(".default.yaml"))
    return tmp_path


@pytest.mark.parametrize("name", [n for n in PR.available(REPO) if n != "default"])
def test_a_profile_sets_its_keys_only_and_default_restores_every_byte(root: Path, name: str) -> None:
    before = (root / "params.yaml").read_bytes()
    default = dict(leaves(yaml.safe_load(before)))
    PR.use(root, name)
    assert PR.active(root) == name
    now = dict(leaves(yaml.safe_load((root / "params.yaml").read_text())))
    wanted = dict(leaves(PR.overlay(root, name)))
    assert set(now) == set(default)  # no key added or lost
    assert {k for k in now if now[k] != default[k]} == {k for k in wanted if wanted[k] != default[k]}
    assert all(now[k] == v for k, v in wanted.items())
    other = next(n for n in PR.available(root) if n not in ("default", name))
    PR.use(root, other)  # laid over the default, never over the previous profile
    assert all(v == default[k] for k, v in dict(leaves(yaml.safe_load((root / "params.yaml").read_text()))).items()
               if k not in dict(leaves(PR.overlay(root, other))))
    PR.use(root, "default")
    assert (root / "params.yaml").read_bytes() == before and PR.active(root) == "default"
    assert not (root / "profiles" / PR.STASH).exists()


def test_extends_and_bad_profiles_are_explained(root: Path) -> None:
    assert PR.overlay(root, "cifar100")["classifier"]["arch"] == "resnet18"  # from cifar10, which it extends
    assert PR.overlay(root, "cifar100")["benchmark"]["name"] == "cifar100"
    (root / "profiles" / "typo.yaml").write_text("classifier:\n  epoch: 3\n")
    with pytest.raises(PR.ProfileError, match="classifier.epoch: not a key"):
        PR.use(root, "typo")
    with pytest.raises(PR.ProfileError, match="unknown profile 'nope'; available: default, cifar10"):
        PR.use(root, "nope")
    (root / "profiles" / "a.yaml").write_text("extends: b\n")
    (root / "profiles" / "b.yaml").write_text("extends: a\n")
    with pytest.raises(PR.ProfileError, match="cycle"):
        PR.overlay(root, "a")


def test_the_dag_follows_the_profile(root: Path) -> None:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=root, check=True, env=env)

    def outs() -> str:
        return subprocess.run([sys.executable, "-m", "dvc", "dag", "--outs"], cwd=root, env=env, check=True,
                              capture_output=True, text=True).stdout

    assert "reports/fmnist6/summary.csv" in outs()
    PR.use(root, "cifar10")
    dag = outs()
    assert "reports/cifar10/summary.csv" in dag and "models/cifar10/classifier.pt" in dag and "fmnist6" not in dag
