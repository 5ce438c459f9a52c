"""params.yaml: its schema, validation, and access from notebooks.

A wrong key, type or value stops the pipeline before any work, with a message that names the key
and what it accepts. ``python -m ood.pipeline.params [FILE]`` checks a file (every dvc stage runs it first).
"""

from __future__ import annotations

import difflib
import inspect
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from ..schema import (Checker, boolean, choice, device, integer, number, optional, pair, text, threshold_rule,
                      unique_list)

PARAMS_FILE = "params.yaml"


class ParamsError(ValueError):
    """params.yaml is invalid; the message lists every problem found."""


IMAGE_BENCHMARKS = ("fmnist6", "cifar10", "cifar100", "imagenet")
DENSE_BENCHMARKS = ("scenes", "cityscapes")
CLASSIFIER_ARCHS = ("cnn", "resnet18", "resnet50")
SEGMENTER_ARCHS = ("fcn", "deeplabv3")
#: the benchmark section each network trains on (shipped under weights/<its name>/<network>)
RECIPE_BENCHMARKS = {"classifier": "benchmark", "segmenter": "dense_benchmark"}


def _training(archs: tuple[str, ...]) -> dict[str, Checker]:
    """Keys shared by every network trained with ood.train.train."""
    return {
        "arch": choice(*archs),
        "pretrained": boolean(),  # torchvision's ImageNet weights (ood.models.PRETRAINED)
        "epochs": integer(0, 1000),  # 0: use the pre-trained weights as they are
        "batch_size": integer(1, 65536),
        "optimizer": choice("adam", "sgd"),
        "lr": number(0.0, 10.0, lo_open=True),
        "weight_decay": number(0.0, 1.0),
        "scheduler": choice("cosine", "none"),
        "device": device(),
        "amp": boolean(),
        "hflip": boolean(),
        "weights": lambda v: None if isinstance(v, str) else f"must be a folder path or '' (train in the stage), got {v!r}",
    }


SCHEMA: dict[str, Any] = {
    "seed": integer(0, 2**31 - 1),
    "data_seed": integer(0, 2**31 - 1),
    "data": {"root": text()},
    "benchmark": {
        "name": choice(*IMAGE_BENCHMARKS),
        "val_fraction": number(0.0, 0.5, lo_open=True),
        "far_size": integer(1, 1_000_000),
        "subset": optional(integer(1)),
    },
    "dense_benchmark": {
        "name": choice(*DENSE_BENCHMARKS),
        "size": integer(56, 1024),
        "n_train": integer(1, 1_000_000),
        "n_val": integer(1, 1_000_000),
        "n_test": integer(1, 1_000_000),
        "objects": pair(0, 16, whole=True),
        "anomalies": pair(1, 4, whole=True),
        "scale": pair(0.5, 18.0, whole=False),
        "subset": optional(integer(1)),
    },
    "classifier": _training(CLASSIFIER_ARCHS),
    "segmenter": {**_training(SEGMENTER_ARCHS), "crop": optional(integer(8, 4096))},
    "dense_evaluate": {
        "bins": integer(16, 2**24),
        "component_threshold": threshold_rule(),
        "min_size": integer(1, 10**8),
        "min_gt_size": integer(1, 10**8),
        "gallery": integer(0, 100),
    },
    "localisation": {  # ID test images with a rectangle pasted from an OOD set (Heatmap OOD's second claim)
        "n": integer(1, 1_000_000),
        "side": pair(2, 1024, whole=True),
    },
    "evaluate": {
        "batch_size": integer(1, 65536),
        "device": device(),
        "bootstrap": integer(10, 100_000),  # fewer resamples give no meaningful interval
        "ci_level": number(0.5, 0.999),
    },
}


def _spec_checker(spec: Any, detector: str, key: str) -> Checker:
    """A schema checker from a detector's own ``Param`` (one source for params.yaml, build and docs)."""
    def check(v: Any) -> str | None:
        try:
            spec.validate(detector, key, v)
        except (TypeError, ValueError) as err:
            return str(err).split(f"parameter {key!r} ", 1)[-1]
        return None
    return check


def _spec_section(detector: str, specs: dict[str, Any]) -> dict[str, Checker]:
    return {key: _spec_checker(spec, detector, key) for key, spec in specs.items()}


def _detectors_schema(dense: bool = False) -> dict[str, Any]:
    """A post-hoc detectors section, derived from the detectors' own hyper-parameter specs."""
    from ..detectors import DENSE_REGISTRY, POSTHOC

    registry = DENSE_REGISTRY if dense else POSTHOC
    section: dict[str, Any] = {"names": unique_list(choice(*registry))}
    for name, cls in registry.items():
        if cls.params:
            section[name] = _spec_section(name, cls.params)
    return section


def _combination(known: tuple[str, ...]) -> Checker:
    def check(v: Any) -> str | None:
        parts = v.split("+") if isinstance(v, str) else []
        if len(parts) != 2 or any(p not in known for p in parts) or parts[0] == parts[1]:
            return f"must be 'a+b' with two different detectors of {', '.join(known)}; got {v!r}"
        return None
    return check


RULES = ("zmean", "zmax", "trust")


def _rule_map(methods: tuple[str, ...]) -> Checker:
    """``{method: rule}``: the rule of every combination whose first part is ``method``."""
    def check(v: Any) -> str | None:
        if not isinstance(v, dict):
            return f"must be a mapping method: rule, got {v!r}"
        for k, r in v.items():
            if k not in methods or r not in RULES:
                return f"entry {k}: {r!r} must map one of {', '.join(methods)} to one of {', '.join(RULES)}"
        return None
    return check


def _method_schema(name: str, cls: Any) -> dict[str, Any]:
    """A trained method's ``train`` and ``score`` sections, from its detector's own specs."""
    return {"train": _spec_section(name, cls.train_params), "score": _spec_section(name, {**cls.params, **cls.eval_params})}


def _a_method_section(v: Any) -> str | None:
    """A trained method's section where the caller does not run it: its keys are checked by the
    stages that read them (so a stage imports only the methods it runs)."""
    ok = isinstance(v, dict) and set(v) == {"train", "score"} and all(isinstance(x, dict) for x in v.values())
    return None if ok else f"must be a mapping with 'train' and 'score' sections, got {v!r}"


def schema(methods: Iterable[str] | None = None) -> dict[str, Any]:
    """params.yaml's schema. ``methods``: the trained methods whose sections are checked key by key
    (their detectors' own specs, which imports them); ``None``: every method."""
    from ..detectors import DENSE_TRAINED, POSTHOC, TRAINED, trained as method_class

    names = [*TRAINED, *DENSE_TRAINED]
    checked = set(names if methods is None else methods)
    trained = {name: _method_schema(name, method_class(name)) if name in checked else _a_method_section for name in names}
    combine = {"names": unique_list(_combination((*POSTHOC, *TRAINED)), min_len=0),
               "rule": choice(*RULES), "rules": _rule_map(tuple(TRAINED)), "band": pair(0.0, 1.0, whole=False)}
    return {**SCHEMA, "detectors": _detectors_schema(), "dense_detectors": _detectors_schema(dense=True),
            **trained, "combine": combine}


def shipped_folder(params: Mapping[str, Any], network: str) -> str:
    """The one folder a network's shipped weights live in (its stage's DVC dependency; ood.pipeline.recipe)."""
    return f"weights/{params[RECIPE_BENCHMARKS[network]]['name']}/{network}"


def _across_keys(params: dict[str, Any]) -> list[str]:
    """Rules that tie keys together (checked once every key is valid on its own)."""
    from ..models import PRETRAINED

    errors = []
    for net in ("classifier", "segmenter"):
        section = params[net]
        if section["pretrained"] and section["arch"] not in PRETRAINED:
            errors.append(f"{net}.pretrained: no pre-trained weights for arch {section['arch']!r} "
                          f"(architectures with some: {', '.join(PRETRAINED)})")
        if section["epochs"] == 0 and not section["pretrained"]:
            errors.append(f"{net}.epochs: 0 (no training) needs {net}.pretrained: true")
        shipped = shipped_folder(params, net)
        if section["weights"] not in ("", shipped):
            errors.append(f"{net}.weights: must be '' (train in the stage) or {shipped!r} (the shipped folder the "
                          f"stage tracks; ood.pipeline.recipe), got {section['weights']!r}")
    return errors


def validate(params: Any, schema: dict[str, Any] | None = None, prefix: str = "",
             methods: Iterable[str] | None = None) -> list[str]:
    """Every problem in ``params`` as 'key: message' lines (empty when valid); ``methods`` as
    :func:`schema`'s."""
    if schema is None:
        errors = validate(params, globals()["schema"](methods))
        return errors or _across_keys(params)
    if not isinstance(params, dict):
        return [f"{prefix.rstrip('.') or 'params'}: must be a mapping, got {params!r}"]
    errors = []
    for key in params:
        if key not in schema:
            hint = difflib.get_close_matches(str(key), list(schema), n=1)
            known = f"did you mean {prefix}{hint[0]}?" if hint else f"known keys: {', '.join(schema)}"
            errors.append(f"{prefix}{key}: unknown key ({known})")
    for key, rule in schema.items():
        name = f"{prefix}{key}"
        if key not in params:
            errors.append(f"{name}: missing")
        elif isinstance(rule, dict):
            errors += validate(params[key], rule, f"{name}.")
        elif (msg := rule(params[key])) is not None:
            errors.append(f"{name}: {msg}")
    return errors


def project_root(start: str | Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) holding params.yaml."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / PARAMS_FILE).exists():
            return folder
    raise FileNotFoundError(f"no {PARAMS_FILE} in {here} or any folder above it; run from the project")


def load(path: str | Path | None = None, methods: Iterable[str] | None = None) -> dict[str, Any]:
    """Read and validate params.yaml (default: the project's); raise ParamsError listing every
    problem. ``methods``: the trained methods whose sections are checked (default: all)."""
    path = Path(path) if path else project_root() / PARAMS_FILE
    try:
        params = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ParamsError(f"{path} is not valid YAML: {err}") from None
    check(params, source=str(path), methods=methods)
    return params


def check(params: Any, source: str = PARAMS_FILE, methods: Iterable[str] | None = None) -> None:
    errors = validate(params, methods=methods)
    if errors:
        lines = "\n".join(f"  - {e}" for e in errors)
        raise ParamsError(f"{source} has {len(errors)} problem(s):\n{lines}\nFix them and run again.")


def from_notebook(params: dict[str, Any] | None, methods: Iterable[str] = ()) -> dict[str, Any]:
    """Parameters inside a notebook: what papermill injected (the stage's parameters, from
    ``python -m ood.pipeline.notebook``), or the project's params.yaml when the notebook runs by
    hand; validated, with the sections of the trained ``methods`` the notebook runs."""
    if params is None:
        params = yaml.safe_load((project_root() / PARAMS_FILE).read_text())
    check(params, methods=methods)
    return params


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0]) if argv else Path(PARAMS_FILE)
    try:
        load(path)
    except (ParamsError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def benchmark_args(params: dict[str, Any], section: str = "benchmark",
                   root: str | Path | None = None) -> dict[str, Any]:
    """Keyword arguments of ``ood.data.load_benchmark`` for the benchmark of a params section
    (``benchmark``: the image benchmark; ``dense_benchmark``: the dense one), built once and then
    loaded from the project's ``.cache/benchmarks`` (:mod:`ood.data.cache`).

    ``root`` is the project folder (default: the one holding the working directory); a relative
    ``data.root`` is read from there, so a caller in another folder still finds that project's data.
    A section's keys that its benchmark's loader does not take are left out: the section is shared
    by the benchmarks a profile may name (``scenes`` reads ``objects``, ``cityscapes`` does not);
    a misspelt key is caught earlier, by :func:`validate`."""
    from ..data.registry import BENCHMARKS
    try:
        project = Path(root) if root is not None else project_root()
    except FileNotFoundError:  # outside a project: data.root as given, build every time
        data_root, cache = params["data"]["root"], None
    else:
        data_root, cache = str(project / params["data"]["root"]), str(project / ".cache" / "benchmarks")
    takes = inspect.signature(BENCHMARKS[params[section]["name"]].loader).parameters
    own = {k: v for k, v in params[section].items() if k == "name" or k in takes}
    return {**own, "root": data_root, "seed": params["data_seed"], "cache": cache}


if __name__ == "__main__":
    sys.exit(main())
