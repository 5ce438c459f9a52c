"""What the CPU settings that pin PyTorch's kernels cost, and what they change: trains the embedded
classifier for one epoch on a fixed subset under each setting (a fresh process each, seed 0) and
prints the wall time, the weights' sha256 and how far weights and test logits land from the
default run's.

    .venv/bin/python benchmarks/determinism.py            # needs the data (make data)
    .venv/bin/python benchmarks/determinism.py --images 20000

Settings: ``ATEN_CPU_CAPABILITY=avx2`` (PyTorch's own vectorised kernels at AVX2 on an AVX-512
machine, as an AVX2-only CPU runs them), ``ONEDNN_MAX_CPU_ISA=AVX2`` (oneDNN's convolutions),
``MKL_CBWR=AVX2`` (MKL's conditional numerical reproducibility), all three together, and the thread
count (1 vs 2: the intra-op split of reductions). A setting that changes nothing on this machine
prints a zero distance; one that does shows that the default run depends on the instruction set.
Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SETTINGS = {
    "default": {},
    "aten avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "onednn avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "mkl cbwr avx2": {"MKL_CBWR": "AVX2"},
    "all three": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"},
    "1 thread": {"OMP_NUM_THREADS": "1"},
    "all three, 1 thread": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2",
                            "OMP_NUM_THREADS": "1"},
}

WORKER = r"""
import hashlib, json, sys, time
import torch
from torch.utils.data import Subset
sys.path.insert(0, {root!r})
import ood.data, ood.models, ood.pipeline.params as Pm, ood.train
P = Pm.load({params!r})
bench = ood.data.load_benchmark(**Pm.benchmark_args(P, root={root!r}))
C = P["classifier"]
ood.train.seed_everything(0)
model = ood.models.build(C["arch"], num_classes=len(bench.classes), in_channels=bench.in_channels, image_size=bench.image_size[0])
train = Subset(bench.train, range({images}))
start = time.perf_counter()
ood.train.train(model, train, None, epochs=1, batch_size=C["batch_size"], lr=C["lr"], weight_decay=C["weight_decay"],
                optimizer=C["optimizer"], scheduler=C["scheduler"], seed=0, device="cpu", amp=False, hflip=C["hflip"],
                progress=False)
wall = time.perf_counter() - start
model.eval()
logits, _ = ood.train.predict(model, Subset(bench.test, range(2000)), batch_size=500)
flat = torch.cat([p.detach().flatten() for p in model.state_dict().values() if p.is_floating_point()])
torch.save({{"weights": flat, "logits": logits}}, {out!r})
print(json.dumps({{"wall_s": wall, "threads": torch.get_num_threads(), "capability": torch.backends.cpu.get_cpu_capability(),
                  "sha256": hashlib.sha256(flat.numpy().tobytes()).hexdigest()[:12]}}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10000, help="training images (one epoch)")
    args = parser.parse_args()
    import torch

    results = {}
    for name, env in SETTINGS.items():
        out = Path(f"/tmp/determinism-{hashlib.sha1(name.encode()).hexdigest()[:8]}.pt")
        code = WORKER.format(root=str(ROOT), params=str(ROOT / "params.yaml"), images=args.images, out=str(out))
        proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True,
                              cwd=ROOT)
        if proc.returncode:
            print(f"{name}: failed\n{proc.stderr[-2000:]}")
            continue
        info = json.loads(proc.stdout.strip().splitlines()[-1])
        results[name] = (info, torch.load(out))
        out.unlink()
    base = results["default"][1]
    print(f"{'setting':22} {'train s':>8} {'threads':>7} {'kernels':>8} {'sha256':>13} {'max |dw|':>10} {'max |dlogit|':>12} {'argmax moved':>12}")
    for name, (info, r) in results.items():
        dw = (r["weights"] - base["weights"]).abs().max().item()
        dl = (r["logits"] - base["logits"]).abs().max().item()
        moved = (r["logits"].argmax(1) != base["logits"].argmax(1)).sum().item()
        print(f"{name:22} {info['wall_s']:8.1f} {info['threads']:7d} {info['capability']:>8} {info['sha256']:>13} "
              f"{dw:10.2e} {dl:12.2e} {moved:12d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
