"""Command line: ``python -m ood.data download [NAME ...] [--root data]`` and ``python -m ood.data list``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .fetch import FetchError
from .registry import BENCHMARKS, DATASETS, download, required_datasets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ood.data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    dl = sub.add_parser("download", help="fetch, verify and unpack raw datasets (skips verified files)")
    dl.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"datasets to fetch (default: what the benchmarks of ./params.yaml need); one of {', '.join(sorted(DATASETS))}",
    )
    dl.add_argument("--root", default="data", help="data root directory (default: %(default)s)")
    dl.add_argument("--no-progress", action="store_true", help="no progress bars")
    dl.add_argument("--retries", type=int, default=2, help="retries per mirror (default: %(default)s)")
    dl.add_argument("--timeout", type=float, default=30, help="network timeout in s (default: %(default)s)")

    sub.add_parser("list", help="list datasets and benchmarks")

    args = parser.parse_args(argv)
    if args.command == "list":
        for name, spec in DATASETS.items():
            print(f"dataset    {name:16s} {spec.description}")
        for name, bench in BENCHMARKS.items():
            print(f"benchmark  {name:16s} needs {', '.join(bench.datasets)}: {bench.description}")
        return 0

    unknown = [n for n in args.names if n not in DATASETS]
    if unknown:
        dl.error(f"unknown dataset(s) {', '.join(unknown)}; known: {', '.join(sorted(DATASETS))}")
    names = args.names or required_datasets(_profile_benchmarks())
    failed = []
    try:
        for name in names:  # one set failing (a login-gated one not yet in place) does not stop the others
            try:
                path = download(
                    name, args.root, progress=not args.no_progress, retries=args.retries, timeout=args.timeout
                )
                _unpack(name, args.root, progress=not args.no_progress)
            except FetchError as exc:
                print(f"error: {exc}", file=sys.stderr)
                failed.append(name)
                continue
            print(f"{name}: ok ({path})")
    except KeyboardInterrupt:
        print("interrupted: partial downloads are kept and resumed on the next run", file=sys.stderr)
        return 130
    if failed:
        print(f"not ready: {', '.join(failed)} (see above); the others are in place", file=sys.stderr)
        return 1
    return 0


def _unpack(name: str, root: str, progress: bool) -> None:
    """Unpack a paper profile's archives now, not in the pipeline's first stage: data/ is a DVC
    dependency of every stage (``dvc add data`` after this command), so no stage may write to it."""
    from . import dense, images  # torch: only for the paper profiles' sets

    if name in images.IMAGE_SETS:
        images.prepare(name, root, progress=progress)
    elif name in dense.DENSE_SETS or name == dense.CITYSCAPES:
        dense.prepare(name, root, progress=progress)


def _profile_benchmarks() -> list[str] | None:
    """The benchmarks ./params.yaml names (so `download` follows `python -m ood.pipeline.profile use ...`);
    None (the embedded ones) outside a project."""
    path = Path("params.yaml")
    if not path.is_file():
        return None
    import yaml

    params = yaml.safe_load(path.read_text()) or {}
    names = [params[s]["name"] for s in ("benchmark", "dense_benchmark") if isinstance(params.get(s), dict)]
    return [n for n in names if n in BENCHMARKS] or None


if __name__ == "__main__":
    sys.exit(main())
