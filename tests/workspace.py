"""A throw-away copy of the repository that runs the real pipeline on tiny data (shared by the
end-to-end test and the paper profiles' smoke runs)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import ood.detectors as D

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(cmd: list[str], cwd: Path, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           **(env or {})}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def copy_repo(work: Path) -> None:
    """The repository's tracked and untracked-but-not-ignored files, without outputs (the committed
    seed spread, a dependency of the report, is kept)."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if (REPO / f).is_file() and (not f.startswith(("reports/", "models/")) or f.startswith("reports/seeds/")):
            (work / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, work / f)


def tiny(params: dict[str, Any]) -> dict[str, Any]:
    """Shrink every stage of ``params`` (in place) to seconds on a CPU; returns it."""
    params["benchmark"].update(subset=120, far_size=150)
    params["classifier"].update(epochs=1, batch_size=32, weights="")  # the shipped weights belong to the full recipe
    params["evaluate"].update(bootstrap=20)
    params["detectors"]["knn"]["k"] = 5
    # Three of pytorch-ood's detectors (one per kind: logits, features, maps) prove the wiring;
    # tests/test_pood.py checks every one of them against pytorch-ood itself
    params["detectors"]["names"] = [*D.OWN, "gen", "pnml", "ash"]
    params["heatmap"]["train"].update(epochs=1, code=16, outliers=60, pasted=60)  # width kept: fw_layers needs the maps' widths
    params["moodcat"]["train"].update(epochs=1, pair_epochs=1, batch_size=32, nz=8, ndf=8, g_ch=8, d_ch=8, shared_dim=8,
                                      pair_ch=8)
    params["diffguard"]["train"].update(epochs=1, batch_size=32, widths="8,16,16", attention=False)
    params["diffguard"]["score"].update(steps=4, depth=0.5, subset=20)
    params["localisation"]["n"] = 40
    params["dense_benchmark"].update(n_train=48, n_val=8, n_test=12, size=64, scale=[1.0, 1.1])
    params["segmenter"].update(epochs=1, batch_size=16, weights="")
    params["nflowjs"]["train"].update(images=None, flow_images=None, batch_size=8, steps=2, hidden=8, patch_min=8,
                                      patch_max=16)
    params["dense_evaluate"].update(gallery=2)
    return params
