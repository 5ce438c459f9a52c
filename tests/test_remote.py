"""Sharing work between machines through a DVC remote (README: *Sharing results between machines*).

Expensive outputs (trained models, per-sample scores) travel through a DVC remote, everything
else through git. This checks the round trip on a miniature of our pipeline (params.yaml, a
"train" stage writing a model, a "score" stage writing cached scores and a git-tracked metric)
with a local-folder remote and a bare git repository as `origin`: push from one clone, pull into
a fresh one, and `dvc repro` must run nothing; an experiment pushed from one clone is pulled,
shown and applied in another without re-running it; a missing remote object fails loudly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

BIN = Path(sys.executable).parent

TRAIN = """\
import hashlib, pathlib, yaml
seed = yaml.safe_load(open("params.yaml"))["seed"]
pathlib.Path("models").mkdir(exist_ok=True)
pathlib.Path("models/m.pt").write_bytes(hashlib.sha256(str(seed).encode()).digest() * 64)
"""

SCORE = """\
import json, pathlib, yaml
knob = yaml.safe_load(open("params.yaml"))["knob"]
w = pathlib.Path("models/m.pt").read_bytes()
pathlib.Path("reports").mkdir(exist_ok=True)
rows = "".join(f"{i},{w[i] * knob % 251}\\n" for i in range(20))
pathlib.Path("reports/scores.csv").write_text("index,score\\n" + rows)
pathlib.Path("reports/metrics.json").write_text(json.dumps({"auroc": sum(w[:20]) * knob % 997 / 997}))
"""

# Same shape as ours: code and params as deps, the model cached, scores cached, the metric in git
DVC_YAML = """\
stages:
  train:
    cmd: python src/train.py
    deps: [src/train.py]
    params: [seed]
    outs: [models/m.pt]
  score:
    cmd: python src/score.py
    deps: [src/score.py, models/m.pt]
    params: [knob]
    outs: [reports/scores.csv]
    metrics:
      - reports/metrics.json:
          cache: false
"""

CACHED = ("models/m.pt", "reports/scores.csv")  # what the DVC remote carries
IN_GIT = ("reports/metrics.json", "dvc.lock", "params.yaml", ".dvc/config")  # what git carries


def run(cmd: list[str], cwd: Path, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@dataclass
class Team:
    """A bare git `origin`, a local-folder DVC remote and the clone that pushed to both."""

    root: Path
    origin: Path
    remote: Path
    first: Path
    env: dict[str, str]
    originals: dict[str, bytes]  # the pushed outputs, read before any other test touches anything

    def git(self, cwd: Path, *args: str) -> str:
        return run(["git", *args], cwd, self.env).stdout

    def dvc(self, cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return run([sys.executable, "-m", "dvc", *args], cwd, self.env, check)

    def clone(self, name: str) -> Path:
        """A colleague's machine: only git, no DVC cache yet."""
        self.git(self.root, "clone", "-q", str(self.origin), name)
        return self.root / name


@pytest.fixture(scope="module")
def team(tmp_path_factory) -> Team:
    root = tmp_path_factory.mktemp("remote")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
           # DVC keeps per-repo state (index, locks) in a machine-wide folder (/var/tmp/dvc) and reads
           # user/system configs (which may name a default remote): keep both inside this test
           "DVC_SITE_CACHE_DIR": str(root / "site"), "DVC_GLOBAL_CONFIG_DIR": str(root / "dvc-global"),
           "DVC_SYSTEM_CONFIG_DIR": str(root / "dvc-system"),
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    t = Team(root, root / "origin.git", root / "remote", root / "first", env, {})
    run(["git", "init", "-q", "--bare", "-b", "main", str(t.origin)], root, env)
    run(["git", "init", "-q", "-b", "main", str(t.first)], root, env)
    (t.first / "src").mkdir()
    (t.first / "src/train.py").write_text(TRAIN)
    (t.first / "src/score.py").write_text(SCORE)
    (t.first / "params.yaml").write_text("seed: 0\nknob: 1\n")
    (t.first / "dvc.yaml").write_text(DVC_YAML)
    t.dvc(t.first, "init", "-q")
    t.dvc(t.first, "repro")
    t.dvc(t.first, "remote", "add", "-d", "shared", str(t.remote))
    t.git(t.first, "add", "-A")
    t.git(t.first, "commit", "-qm", "study")
    t.git(t.first, "remote", "add", "origin", str(t.origin))
    t.git(t.first, "push", "-q", "origin", "main")
    assert "2 files pushed" in t.dvc(t.first, "push").stdout
    t.originals.update({p: (t.first / p).read_bytes() for p in (*CACHED, "reports/metrics.json")})
    return t


def test_pull_reproduces_without_rerunning(team: Team):
    b = team.clone("colleague")
    tracked = team.git(b, "ls-files").split()
    assert set(IN_GIT) <= set(tracked) and not set(CACHED) & set(tracked)
    assert not (b / "models/m.pt").exists()  # so what follows came from the DVC remote

    assert "2 files fetched" in team.dvc(b, "pull").stdout
    for path, data in team.originals.items():
        assert (b / path).read_bytes() == data, path
    assert "Data and pipelines are up to date." in team.dvc(b, "status").stdout

    model_mtime = (b / "models/m.pt").stat().st_mtime_ns
    lock = (b / "dvc.lock").read_bytes()
    out = team.dvc(b, "repro").stdout
    assert "Running stage" not in out, out
    assert "Stage 'train' didn't change, skipping" in out and "Stage 'score' didn't change, skipping" in out
    assert (b / "models/m.pt").stat().st_mtime_ns == model_mtime  # nothing retrained
    assert (b / "dvc.lock").read_bytes() == lock

    # Control: the same check sees a re-run when a dependency does change; a new knob re-scores
    # but must not retrain (what our ablations rely on)
    (b / "params.yaml").write_text("seed: 0\nknob: 3\n")
    out = team.dvc(b, "repro").stdout
    assert "Running stage 'score'" in out and "Running stage 'train'" not in out, out
    assert (b / "models/m.pt").stat().st_mtime_ns == model_mtime
    assert (b / "reports/scores.csv").read_bytes() != team.originals["reports/scores.csv"]


def find_exp(show: list[dict], name: str) -> dict:
    """The `data` of experiment `name` in `dvc exp show --json` (baseline -> experiments -> revs)."""
    for baseline in show:
        for exp in baseline.get("experiments") or []:
            for rev in exp["revs"]:
                if rev["name"] == name:
                    return rev["data"]
    raise AssertionError(f"no experiment {name!r} in {[b['name'] for b in show]}")


def test_experiment_round_trip(team: Team):
    runner = team.clone("runner")
    team.dvc(runner, "pull")
    out = team.dvc(runner, "exp", "run", "-S", "knob=2", "-n", "knob2").stdout
    assert "Running stage 'score'" in out and "Running stage 'train'" not in out, out
    results = {p: (runner / p).read_bytes() for p in ("reports/scores.csv", "reports/metrics.json")}
    # Pushes the experiment's git ref to origin and its cached outputs to the default DVC remote
    team.dvc(runner, "exp", "push", "origin", "knob2")
    assert "/knob2" in team.git(team.origin, "for-each-ref", "refs/exps")

    colleague = team.clone("exp-colleague")
    team.dvc(colleague, "exp", "pull", "origin", "knob2")
    data = find_exp(json.loads(team.dvc(colleague, "exp", "show", "--json").stdout), "knob2")
    assert data["params"]["params.yaml"]["data"]["knob"] == 2
    assert data["metrics"]["reports/metrics.json"]["data"] == json.loads(results["reports/metrics.json"])

    # Its outputs come from the cache that `exp pull` fetched: applied, nothing is stale or re-run
    team.dvc(colleague, "exp", "apply", "knob2")
    for path, content in results.items():
        assert (colleague / path).read_bytes() == content, path
    assert "Data and pipelines are up to date." in team.dvc(colleague, "status").stdout
    assert "Running stage" not in team.dvc(colleague, "repro").stdout

    # Control: without the DVC remote's objects (`--no-cache`) the same apply cannot check them out
    bare = team.clone("exp-no-cache")
    team.dvc(bare, "exp", "pull", "--no-cache", "origin", "knob2")
    failed = team.dvc(bare, "exp", "apply", "knob2", check=False)
    assert failed.returncode != 0 and "reports/scores.csv" in failed.stderr, failed.stderr


def test_missing_remote_object_fails_loudly(team: Team, tmp_path: Path):
    broken = tmp_path / "remote"
    shutil.copytree(team.remote, broken)
    lock = yaml.safe_load((team.first / "dvc.lock").read_text())
    md5 = next(o["md5"] for o in lock["stages"]["score"]["outs"] if o["path"] == "reports/scores.csv")
    (broken / "files/md5" / md5[:2] / md5[2:]).unlink()

    b = team.clone("unlucky")
    team.dvc(b, "remote", "modify", "--local", "shared", "url", str(broken))  # .dvc/config.local, not in git
    proc = team.dvc(b, "pull", check=False)
    assert proc.returncode != 0
    assert "reports/scores.csv" in proc.stderr and md5 in proc.stderr, proc.stderr
    assert (b / "models/m.pt").read_bytes() == team.originals["models/m.pt"]  # the rest still arrives
