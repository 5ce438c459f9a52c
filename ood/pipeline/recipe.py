"""The classifier and the segmenter: trained in their stage, or trained once per training seed by
their recipe and shipped with the repository, so the study only loads them.

The recipe is the network's params.yaml section (``classifier``, ``segmenter``): one source for both
ways. ``python -m ood.pipeline.recipe train classifier --seeds 0 1 2`` (``make weights``) trains it with
those values for each seed and writes ``weights/<benchmark>/<network>/seed-<seed>/``:
``<network>.pt`` and ``provenance.json`` (the commit, the recipe, the training data's params, steps,
wall time, CPU model, the history and the last epoch's losses, ID *validation* quality, and the
sha256 of the weights). An interrupted recipe resumes from ``checkpoints/recipes/``.

With ``<network>.weights: weights/<benchmark>/<network>`` the stage loads ``seed-<seed>/`` instead
of training. It refuses, before any work, weights whose file does not match its sha256 or whose
recipe or training data differ from params.yaml's, so a recipe cannot change without retraining
(``weights: ""`` trains in the stage with the same values). The folder is a DVC dependency of the
stage, so new weights re-run it.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping

from ..data.fetch import sha256sum
from ..io import atomic_write
from . import params as Pm

__all__ = ["NETWORKS", "Network", "check", "folder", "obtain", "provenance_errors", "ship", "train", "main"]

#: the networks that can be shipped, and the params section of the benchmark each trains on
NETWORKS = Pm.RECIPE_BENCHMARKS
#: keys of a network's section that do not change what it learns (where and how fast it runs)
RUNTIME_KEYS = ("device", "amp", "weights")
#: keys of a benchmark's section that do not change its training split
TEST_ONLY_KEYS = {"benchmark": ("far_size",), "dense_benchmark": ("n_test", "anomalies")}


class ShippedError(ValueError):
    """Shipped weights that are missing, corrupt or made by another recipe."""


folder = Pm.shipped_folder


def _recipe(P: Mapping[str, Any], network: str) -> dict[str, Any]:
    return {k: v for k, v in P[network].items() if k not in RUNTIME_KEYS}


def _training_data(P: Mapping[str, Any], network: str) -> dict[str, Any]:
    section = NETWORKS[network]
    drop = TEST_ONLY_KEYS[section]
    return {"data_seed": P["data_seed"], section: {k: v for k, v in P[section].items() if k not in drop}}


def _commit(root: Path) -> str:
    """HEAD, with ``+dirty`` when the tracked files differ from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class Network:
    """A trained classifier or segmenter with what its stage reports: ``history`` (per epoch) and
    ``source`` (``trained`` here, or the shipped folder)."""

    def __init__(self, model: Any, config: dict[str, Any], bench: Any, history: list[dict[str, Any]], source: str):
        self.model, self.config, self.bench, self.history, self.source = model, config, bench, history, source


def train(network: str, P: Mapping[str, Any], root: Path, checkpoint: Path) -> Network:
    """Train ``network`` with params.yaml's values (``seed``: the training seed), resuming from
    ``checkpoint``; the one training both the stage and the recipe run."""
    import ood.data
    import ood.models
    import ood.train

    S, section = P[network], NETWORKS[network]
    ood.train.seed_everything(P["seed"])
    bench = ood.data.load_benchmark(**Pm.benchmark_args(P, section, root))
    config = {"num_classes": len(bench.classes), "in_channels": bench.in_channels}
    if network == "classifier":
        config["image_size"] = bench.image_size[0]
    model = ood.models.build(S["arch"], pretrained=S["pretrained"], **config)
    history = [] if S["epochs"] == 0 else ood.train.train(  # epochs 0: the pre-trained weights as they are
        model, bench.train, bench.val, epochs=S["epochs"], batch_size=S["batch_size"], lr=S["lr"],
        weight_decay=S["weight_decay"], optimizer=S["optimizer"], scheduler=S["scheduler"], seed=P["seed"],
        device=S["device"], amp=S["amp"], hflip=S["hflip"], checkpoint=checkpoint,
        run_id=json.dumps([P[section], S["arch"], config]), **({"crop": S["crop"]} if "crop" in S else {}))
    model.eval()
    return Network(model, config, bench, history, "trained")


def provenance_errors(network: str, P: Mapping[str, Any], root: Path) -> list[str]:
    """Why the shipped weights of ``P``'s seed cannot stand for this study (empty: they can)."""
    where = root / folder(P, network)
    seed_dir = where / f"seed-{P['seed']}"
    prov_file = seed_dir / "provenance.json"
    if not prov_file.is_file():
        seeds = sorted(p.parent.name.removeprefix("seed-") for p in where.glob("seed-*/provenance.json")) if where.is_dir() else []
        return [f"{network}.weights: no shipped {network} for seed {P['seed']} in {folder(P, network)} "
                f"(shipped seeds: {', '.join(seeds) or 'none'}); make them with "
                f"`python -m ood.pipeline.recipe train {network} --seeds {P['seed']}`, or set {network}.weights: '' "
                f"to train in the stage"]
    prov = json.loads(prov_file.read_text())
    errors = []
    for name, digest in prov["sha256"].items():
        path = seed_dir / name
        if not path.is_file() or sha256sum(path) != digest:
            errors.append(f"{network}.weights: {path.relative_to(root)} is missing or does not match its sha256 "
                          f"in provenance.json (a corrupt or partial file: `git checkout -- {folder(P, network)}`)")
    for what, ours, theirs in (("recipe", _recipe(P, network), prov["recipe"]),
                               ("training data", _training_data(P, network), prov["training_data"])):
        if ours != theirs:
            keys = sorted(_differing(ours, theirs))
            errors.append(f"{network}.weights: the shipped {network} (seed {P['seed']}) was trained with another {what} "
                          f"({', '.join(keys)}): retrain it (`python -m ood.pipeline.recipe train {network} --seeds {P['seed']}`) "
                          f"or set {network}.weights: '' to train in the stage")
    return errors


def _differing(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for k in sorted(set(a) | set(b)):
        x, y = a.get(k), b.get(k)
        if isinstance(x, Mapping) and isinstance(y, Mapping):
            keys += _differing(x, y, f"{prefix}{k}.")
        elif x != y:
            keys.append(f"{prefix}{k}: {x!r} here, {y!r} shipped")
    return keys


def check(P: Mapping[str, Any], root: Path) -> list[str]:
    """The problems of every network that loads shipped weights (the stages run it before any work)."""
    errors = []
    for network in NETWORKS:
        weights = P[network]["weights"]
        if weights:  # its form ('' or folder()) is params.yaml's own check
            errors += provenance_errors(network, P, root)
    return errors


def obtain(network: str, P: Mapping[str, Any], root: Path) -> Network:
    """The stage's network: the shipped weights of ``P``'s seed when ``<network>.weights`` names
    them (checked first), else trained here (checkpointed under ``checkpoints/<benchmark>/``)."""
    import ood.data
    import ood.models

    if not P[network]["weights"]:
        bench = P[NETWORKS[network]]["name"]
        return train(network, P, root, root / "checkpoints" / bench / f"{network}.ckpt")
    errors = provenance_errors(network, P, root)
    if errors:
        raise ShippedError("\n".join(errors))
    seed_dir = root / folder(P, network) / f"seed-{P['seed']}"
    prov = json.loads((seed_dir / "provenance.json").read_text())
    bench = ood.data.load_benchmark(**Pm.benchmark_args(P, NETWORKS[network], root))
    model = ood.models.load(seed_dir / f"{network}.pt")
    return Network(model, prov["config"], bench, prov["history"], f"{folder(P, network)}/seed-{P['seed']}")


def _validation_quality(network: str, net: Network) -> dict[str, float]:
    """ID validation accuracy (classifier) or mIoU (segmenter): what a recipe is judged on."""
    import ood.metrics
    import ood.train

    if network == "classifier":
        logits, labels = ood.train.predict(net.model, net.bench.val, batch_size=256)
        return {"val_accuracy": float((logits.argmax(1) == labels).float().mean())}
    from ..evaluation.dense import segmentation_confusion

    conf = segmentation_confusion(net.model, net.bench.val, len(net.bench.classes), batch_size=32)
    return {"val_miou": float(ood.metrics.mean_iou(conf))}


def ship(network: str, seed: int, P: Mapping[str, Any], root: Path) -> Path:
    """Train ``network`` by its recipe (params.yaml's section) with training seed ``seed`` and write
    ``weights/<benchmark>/<network>/seed-<seed>/`` (weights, then provenance.json last: a folder
    without it is unfinished)."""
    import torch

    import ood.models
    from ..train import resolve_device

    P = copy.deepcopy(dict(P))
    P["seed"] = seed
    bench_name = P[NETWORKS[network]]["name"]
    start = time.perf_counter()
    net = train(network, P, root, root / "checkpoints" / "recipes" / bench_name / network / f"seed-{seed}.ckpt")
    wall = time.perf_counter() - start
    out = root / folder(P, network) / f"seed-{seed}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "provenance.json").unlink(missing_ok=True)
    weights = out / f"{network}.pt"
    ood.models.save(net.model, weights, arch=P[network]["arch"], config=net.config, classes=net.bench.classes)
    S = P[network]
    steps = S["epochs"] * -(-len(net.bench.train) // S["batch_size"])
    prov = {"network": network, "benchmark": bench_name, "seed": seed, "commit": _commit(root),
            "command": f"python -m ood.pipeline.recipe train {network} --seeds {seed}",
            "recipe": _recipe(P, network), "training_data": _training_data(P, network), "config": net.config,
            "steps": steps, "train_images": len(net.bench.train), "wall_s": round(wall, 1), "cpu": _cpu(),
            "device": str(resolve_device(S["device"])),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "final": net.history[-1] if net.history else {}, **_validation_quality(network, net),
            "history": net.history, "sha256": {weights.name: sha256sum(weights)}}
    atomic_write(out / "provenance.json", json.dumps(prov, indent=2) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ood.pipeline.recipe", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train_cmd = sub.add_parser("train", help="train a network by its recipe and ship it under weights/")
    train_cmd.add_argument("network", choices=list(NETWORKS))
    train_cmd.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default: 0 1 2)")
    sub.add_parser("check", help="check the shipped weights params.yaml loads (make study runs it first)")
    args = parser.parse_args(argv)
    root = Pm.project_root()
    try:
        P = Pm.load(root / Pm.PARAMS_FILE)
        errors = check(P, root) if args.command == "check" else []
    except Pm.ParamsError as err:
        errors = [str(err)]
    if errors:
        print("error: " + "\n".join(errors), file=sys.stderr)
        return 2
    for seed in getattr(args, "seeds", []):
        print(f"{args.network} seed {seed}: training by its recipe ({folder(P, args.network)})", flush=True)
        out = ship(args.network, seed, P, root)
        prov = json.loads((out / "provenance.json").read_text())
        quality = ", ".join(f"{k} {v:.4f}" for k, v in prov.items() if k.startswith("val_"))
        print(f"  wrote {out.relative_to(root)} in {prov['wall_s']:.0f} s: {quality}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
