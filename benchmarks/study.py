"""Measure the default study stage by stage against its budgets, then a re-run with nothing changed.

    .venv/bin/python benchmarks/study.py             # runs every stage (forced), one at a time, then `dvc repro`
    .venv/bin/python benchmarks/study.py --log study.log

Each stage runs as `dvc repro --force --single-item <stage>` in dvc.yaml's order (which is
topological), so its wall time includes its kernel start-up; the peak memory is the largest sum of
resident memory over the whole process tree (dvc, papermill, the notebook kernel), sampled every
0.1 s. Budgets (ARCHITECTURE.md, "Budgets", on a 2-core CPU): the whole default study <= 20 min (hard
limit 30) and <= 6 GB; per group of stages as in BUDGETS; a re-run with nothing changed: seconds.
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
import yaml

ROOT = Path(__file__).resolve().parent.parent
#: budget group -> (stages, seconds); ARCHITECTURE.md "Budgets".
BUDGETS = {
    "data + classifier + post-hoc + summarize + report": (
        ("data", "classifier", "posthoc", "dense_posthoc", "summarize", "report"), 240),
    "segmenter": (("segmenter",), 210),
    "Heatmap OOD": (("heatmap_train", "heatmap"), 90),
    "MoodCat": (("moodcat_train", "moodcat"), 210),
    "DiffGuard": (("diffusion", "diffguard"), 270),
    "NFlowJS": (("nflowjs_train", "nflowjs"), 180),
}
TOTAL_BUDGET, HARD_LIMIT, MEMORY_BUDGET = 20 * 60, 30 * 60, 6 * 2**30


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    try:
        tree = [proc, *proc.children(recursive=True)]
    except psutil.Error:  # a process of the tree ended while it was listed: count this sample's survivors next time
        return 0
    for p in tree:
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
    parser.add_argument("--log", default=os.devnull, help="file that receives the pipeline's output")
    parser.add_argument("--start", help="first stage to run (after a failure; the totals then cover only the rest)")
    args = parser.parse_args()
    stages = list(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])
    if args.start:
        stages = stages[stages.index(args.start):]
    group_of = {s: g for g, (members, _) in BUDGETS.items() for s in members}
    print(f"{'stage':16s} {'wall':>8s} {'peak memory':>12s}   ({os.cpu_count()} CPUs)")
    times, peaks = {}, {}
    for stage in stages:
        with open(args.log, "a") as log:
            seconds, peak, code = measure(["dvc", "repro", "--force", "--single-item", stage], log)
        if code != 0:
            print(f"{stage}: failed with exit code {code} (see --log)", file=sys.stderr)
            return code
        times[stage], peaks[stage] = seconds, peak
        print(f"{stage:16s} {seconds:7.1f}s {peak / 2**30:10.2f} GB   [{group_of.get(stage, 'no budget')}]", flush=True)
    print()
    print(f"{'budget':52s} {'measured':>9s} {'budget':>8s}")
    for group, (members, budget) in BUDGETS.items():
        spent = sum(times.get(s, 0.0) for s in members)
        print(f"{group:52s} {spent:8.1f}s {budget:7d}s  {'ok' if spent <= budget else 'OVER'}")
    total, peak = sum(times.values()), max(peaks.values())
    print(f"{'whole study':52s} {total:8.1f}s {TOTAL_BUDGET:7d}s  "
          f"{'ok' if total <= TOTAL_BUDGET else ('OVER (hard limit ok)' if total <= HARD_LIMIT else 'OVER HARD LIMIT')}")
    print(f"{'peak memory':52s} {peak / 2**30:7.2f}GB {MEMORY_BUDGET / 2**30:6.1f}GB  {'ok' if peak <= MEMORY_BUDGET else 'OVER'}")
    with open(args.log, "a") as log:
        seconds, peak, code = measure(["dvc", "repro"], log)
    print(f"{'re-run, nothing changed':52s} {seconds:8.1f}s {peak / 2**30:7.2f}GB")
    return code


if __name__ == "__main__":
    sys.exit(main())
