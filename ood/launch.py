"""What the two torchrun entry points share (``python -m ood.score``, ``python -m ood.fit``): where a
method's training stage writes its checkpoint, each process's device, and the command line that
joins torch.distributed's process group when torchrun started it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from . import params as Pm

__all__ = ["TRAINING_STAGE", "checkpoint", "device_for_rank", "distributed_main", "torchrun"]


#: methods trained by a stage not called ``<method>_train``; that stage's name is also the stem of
#: their checkpoint (models/<benchmark>/<stage>.pt) and training report (reports/<benchmark>/<stage>.json)
TRAINING_STAGE = {"diffguard": "diffusion"}


def checkpoint(root: Path, benchmark: str, name: str) -> Path:
    """Where the training stage of method ``name`` writes its checkpoint."""
    return root / "models" / benchmark / f"{TRAINING_STAGE.get(name, name)}.pt"


def device_for_rank(spec: str) -> torch.device:
    """``spec`` resolved (``auto``: CUDA, MPS, else CPU); under torchrun on GPUs, this process's own GPU."""
    from .train import resolve_device

    dev = resolve_device(spec)
    if dev.type == "cuda" and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return dev


def distributed_main(fn: Any, usage: str, done: str, argv: list[str] | None = None) -> int:
    """``fn(METHOD, params, root)`` from the command line, inside a process group when started by
    torchrun (nccl on GPUs, gloo on CPUs): the entry point of ``ood.score`` and ``ood.fit``."""
    import torch.distributed as dist

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(f"usage: {usage}", file=sys.stderr)
        return 2
    try:
        P = Pm.load()
    except Pm.ParamsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group(backend)
    start = time.perf_counter()
    try:
        fn(args[0], P, Pm.project_root())
    finally:
        if distributed:
            dist.destroy_process_group()
    print(f"{args[0]}: {done} in {time.perf_counter() - start:.0f} s")
    return 0


def torchrun(module: str, name: str, processes: int, root: Path) -> None:
    """``python -m <module> <name>`` in ``processes`` workers on this machine (torchrun, standalone)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
           "-m", module, name]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=root, check=True)
