"""Paper profiles: switch the whole pipeline between the embedded default and a paper's setting.

``python -m ood.pipeline.profile use cifar10`` rewrites ``params.yaml`` as the default with the values of
``profiles/cifar10.yaml`` laid over it (each value there cites its source); DVC then sees changed
parameters (and, through ``${benchmark.name}``, other outputs) and re-runs what they touch.
``python -m ood.pipeline.profile use default`` restores the default byte for byte.

How: leaving the default, the exact bytes of ``params.yaml`` are kept in ``profiles/.default.yaml``
(git-ignored) and every profile is laid over those bytes, never over another profile. The overlay
(after the one it ``extends``, if any) is applied with ruamel.yaml's round trip (DVC's own YAML library, so ``dvc exp run -S`` edits the
same way): comments and the formatting of untouched values survive, and ``params.yaml`` starts
with a line naming the active profile. An overlay may only set keys the default has (a typo is an
error naming the key), and the result is validated like any params.yaml.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from . import params as P

__all__ = ["ProfileError", "active", "apply_overlay", "available", "overlay", "use"]

PROFILES = "profiles"
STASH = ".default.yaml"  # the default params.yaml while a profile is active
HEADER = "# ACTIVE PROFILE: {name} (profiles/{name}.yaml over the default; `python -m ood.pipeline.profile use default` restores it)\n"


class ProfileError(ValueError):
    """A profile cannot be applied; the message says why and what to do."""


def available(root: Path) -> list[str]:
    """Names of the checked-in profiles (``profiles/<name>.yaml``), plus ``default``."""
    return ["default", *sorted(p.stem for p in (root / PROFILES).glob("*.yaml") if not p.name.startswith("."))]


def active(root: Path) -> str:
    """The profile ``params.yaml`` holds now (``default`` when no profile header is there)."""
    first = (root / P.PARAMS_FILE).read_text().partition("\n")[0]
    prefix = HEADER.partition("{name}")[0]
    return first[len(prefix):].partition(" ")[0] if first.startswith(prefix) else "default"


def _set(tree: Any, overlay: Mapping[str, Any], where: str = "") -> None:
    for key, value in overlay.items():
        path = f"{where}{key}"
        if not isinstance(tree, Mapping) or key not in tree:
            raise ProfileError(f"{path}: not a key of the default params.yaml (a typo in the profile?)")
        if isinstance(value, Mapping) and value and isinstance(tree[key], Mapping):
            _set(tree[key], value, f"{path}.")
        else:
            tree[key] = value


def apply_overlay(default_text: str, overlay: Mapping[str, Any], name: str) -> str:
    """``default_text`` with every leaf of ``overlay`` set (comments and untouched formatting
    kept), headed by the active-profile line."""
    yaml = YAML()  # round trip
    yaml.width = 4096  # never re-wrap the long comment lines
    tree = yaml.load(default_text)
    _set(tree, overlay)
    out = io.StringIO()
    yaml.dump(tree, out)
    return HEADER.format(name=name) + out.getvalue()


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) else value
    return out


def overlay(root: Path, name: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """The values ``profiles/<name>.yaml`` sets, after those of the profile it ``extends``."""
    if name in seen:
        raise ProfileError(f"profiles extend each other in a cycle: {' -> '.join((*seen, name))}")
    path = root / PROFILES / f"{name}.yaml"
    if not path.exists():
        raise ProfileError(f"unknown profile {name!r}; available: {', '.join(available(root))}")
    # round trip: numbers keep the profile's own spelling (PyYAML, which DVC's -S and our checks
    # share, reads 5e-05 as a string: a profile writes 5.0e-5)
    values = YAML().load(path.read_text()) or {}
    base = values.pop("extends", None)
    return _merge(overlay(root, base, (*seen, name)), values) if base else values


def use(root: Path, name: str) -> str:
    """Make ``name`` the active profile; returns what was done, for the user."""
    names = available(root)
    if name not in names:
        raise ProfileError(f"unknown profile {name!r}; available: {', '.join(names)}")
    params, stash = root / P.PARAMS_FILE, root / PROFILES / STASH
    current = active(root)
    if current == "default":
        if name == "default":
            return "params.yaml already holds the default"
        stash.write_bytes(params.read_bytes())
    elif not stash.exists():
        raise ProfileError(f"params.yaml holds profile {current!r} but profiles/{STASH} (the default it was laid over) "
                           f"is missing: restore the default with `git checkout <commit> -- params.yaml`")
    if name == "default":
        tmp = params.with_name(f".{params.name}.tmp")
        tmp.write_bytes(stash.read_bytes())
        tmp.replace(params)
        stash.unlink()
        return "restored the default params.yaml"
    text = apply_overlay(stash.read_text(), overlay(root, name), name)
    errors = P.validate(YAML(typ="safe").load(text))
    tmp = params.with_name(f".{params.name}.tmp")
    tmp.write_text(text)
    tmp.replace(params)
    done = f"params.yaml now holds profile {name!r} (profiles/{name}.yaml over the default)"
    if errors:  # written anyway, so that `use default` and the messages below stay the way out
        done += ("; the pipeline will refuse it until these are supported:\n  " + "\n  ".join(errors))
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ood.pipeline.profile", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the profiles, the active one marked")
    use_cmd = sub.add_parser("use", help="switch params.yaml to a profile (`default` restores the default)")
    use_cmd.add_argument("name")
    args = parser.parse_args(argv)
    root = P.project_root()
    if args.command == "list":
        now = active(root)
        print("\n".join(f"{'*' if n == now else ' '} {n}" for n in available(root)))
        return 0
    try:
        print(use(root, args.name))
    except ProfileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
