"""Measure the default study: wall time and peak memory of a full run, then of a re-run.

    .venv/bin/python benchmarks/study.py            # forces every stage, then re-runs with nothing changed
    .venv/bin/python benchmarks/study.py --no-force # time whatever `dvc repro` has to do now

Peak memory is the largest sum of resident memory over the whole process tree (dvc, papermill,
the notebook kernels), sampled every 0.1 s. Targets (issue #2): full run <= 5 min, <= 4 GB.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def measure(cmd: list[str], log) -> tuple[float, int, int]:
    """(seconds, peak tree RSS in bytes, exit code) of ``cmd`` run in the project root."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    ps, peak, done = psutil.Process(proc.pid), 0, threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(ps))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = proc.wait()
    done.set()
    sampler.join()
    return time.perf_counter() - start, peak, code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-force", action="store_true", help="do not force every stage to run")
    parser.add_argument("--log", default=os.devnull, help="file that receives the pipeline's output")
    args = parser.parse_args()
    runs = [("full run" if not args.no_force else "dvc repro", ["dvc", "repro"] + ([] if args.no_force else ["--force"])),
            ("re-run, nothing changed", ["dvc", "repro"])]
    print(f"{'':26s} {'wall':>9s} {'peak memory':>12s}   ({os.cpu_count()} CPUs)")
    for label, cmd in runs:
        with open(args.log, "a") as log:
            seconds, peak, code = measure(cmd, log)
        if code != 0:
            print(f"{label}: `{' '.join(cmd)}` failed with exit code {code}", file=sys.stderr)
            return code
        print(f"{label:26s} {seconds:8.1f}s {peak / 2**30:10.2f} GB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
