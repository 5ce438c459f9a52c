"""Where a report's numbers come from: the code (git commit, uncommitted changes), the parameters
(a hash of params.yaml), the data (DVC's checksum of ``data/``), the packages and the machine.

The report shows :func:`provenance` so that a reader holding only the HTML can tell which run
made it and rebuild it (``git checkout <commit> && dvc repro``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import yaml

__all__ = ["PACKAGES", "provenance"]

#: Packages whose versions change results (the required stack and the numeric libraries).
PACKAGES = ("torch", "torchvision", "diffusers", "nflows", "pytorch-ood", "numpy", "scipy", "scikit-learn", "pandas",
            "dvc", "papermill")


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _device() -> str:
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} × {torch.cuda.get_device_name(0)}"
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def provenance(root: Path) -> dict[str, str]:
    """``{item: value}`` for the report's provenance table (strings, in display order)."""
    root = Path(root)
    commit = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    if commit is None:
        code = "not a git checkout"
    else:
        code = commit[:12] + (" + uncommitted changes (e.g. a `dvc exp run`)" if status else " (clean tree)")
    params = root / "params.yaml"
    data = root / "data.dvc"
    data_md5 = yaml.safe_load(data.read_text())["outs"][0]["md5"] if data.exists() else "no data.dvc"
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    return {
        "code (git)": code,
        "params.yaml (sha256)": hashlib.sha256(params.read_bytes()).hexdigest()[:16] if params.exists() else "missing",
        "data/ (DVC md5)": data_md5,
        "packages": ", ".join(versions),
        "python": platform.python_version(),
        "device": _device(),
        "rendered": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
