"""What the two torchrun entry points share (``python -m ood.pipeline.score``, ``python -m ood.pipeline.fit``): where a
method's training stage writes its checkpoint, each process's device, and the command line that
joins torch.distributed's process group when torchrun started it, with the parameters the stage
ran with (a notebook's injected values, not a re-read of params.yaml)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import torch

from . import params as Pm

__all__ = ["PARAMS_ENV", "checkpoint", "device_for_rank", "distributed_main", "torchrun", "training_report"]

#: environment variable naming the JSON file of the parameters torchrun's workers run with
PARAMS_ENV = "OOD_PARAMS_FILE"


def checkpoint(root: Path, benchmark: str, name: str) -> Path:
    """Where the training stage of method ``name`` writes its checkpoint (``models/<benchmark>/<stem>.pt``)."""
    from ..detectors import trained

    return root / "models" / benchmark / f"{trained(name).method.checkpoint_stem(name)}.pt"


def training_report(root: Path, benchmark: str, name: str) -> Path:
    """The JSON file the training stage of method ``name`` writes (``reports/<benchmark>/<stage>.json``)."""
    from ..detectors import trained

    return root / "reports" / benchmark / f"{trained(name).method.stages(name)[0]}.json"


def device_for_rank(spec: str) -> torch.device:
    """``spec`` resolved (``auto``: CUDA, MPS, else CPU); under torchrun on GPUs, this process's own GPU."""
    from ..train import resolve_device

    dev = resolve_device(spec)
    if dev.type == "cuda" and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return dev


def distributed_main(fn: Any, usage: str, done: str, argv: list[str] | None = None) -> int:
    """``fn(METHOD, params, root)`` from the command line, inside a process group when started by
    torchrun (nccl on GPUs, gloo on CPUs): the entry point of ``ood.pipeline.score`` and ``ood.pipeline.fit``."""
    import torch.distributed as dist

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(f"usage: {usage}", file=sys.stderr)
        return 2
    try:
        given = os.environ.get(PARAMS_ENV)  # set by torchrun() below: the exact values of the stage
        P = json.loads(Path(given).read_text()) if given else Pm.load(methods=args)
        Pm.check(P, source=given or Pm.PARAMS_FILE, methods=args)
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


def torchrun(module: str, name: str, processes: int, root: Path, params: Mapping[str, Any]) -> None:
    """``python -m <module> <name>`` in ``processes`` workers on this machine (torchrun, standalone),
    each given ``params`` (the values the calling stage runs with) through a file."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
           "-m", module, name]
    print(" ".join(cmd), flush=True)
    with tempfile.TemporaryDirectory(prefix="ood-params-") as tmp:
        given = Path(tmp) / "params.json"
        given.write_text(json.dumps(params))
        subprocess.run(cmd, cwd=root, check=True, env={**os.environ, PARAMS_ENV: str(given)})
