"""A tiny schema language for params.yaml: each checker returns an error message or ``None``.

At the bottom of the package (no torch, nothing of ``ood``), so the pipeline's params schema and a
detector's own ``Param`` rules (e.g. a device name) share one set of checkers.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

__all__ = ["Checker", "apart_from_seed", "boolean", "choice", "device", "flatten", "integer", "number", "optional", "pair", "text", "threshold_rule",
           "unique_list"]

Checker = Callable[[Any], "str | None"]


def integer(lo: int | None = None, hi: int | None = None) -> Checker:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int):
            return f"must be an integer{_range(lo, hi)}, got {v!r}"
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            return f"must be an integer{_range(lo, hi)}, got {v}"
        return None
    return check


def number(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False) -> Checker:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return f"must be a number{_range(lo, hi, lo_open)}, got {v!r}"
        if not math.isfinite(v):  # NaN passes every comparison: reject it by name
            return f"must be a finite number{_range(lo, hi, lo_open)}, got {v!r}"
        if (lo is not None and (v <= lo if lo_open else v < lo)) or (hi is not None and v > hi):
            return f"must be a number{_range(lo, hi, lo_open)}, got {v}"
        return None
    return check


def choice(*allowed: Any) -> Checker:
    def check(v: Any) -> str | None:
        return None if v in allowed else f"must be one of {', '.join(map(repr, allowed))}; got {v!r}"
    return check


def boolean() -> Checker:
    return lambda v: None if isinstance(v, bool) else f"must be true or false, got {v!r}"


def text() -> Checker:
    return lambda v: None if isinstance(v, str) and v else f"must be a non-empty string, got {v!r}"


def optional(inner: Checker) -> Checker:
    return lambda v: None if v is None else inner(v)


def device() -> Checker:
    def check(v: Any) -> str | None:
        ok = isinstance(v, str) and (v in ("auto", "cpu", "mps", "cuda") or (v.startswith("cuda:") and v[5:].isdigit()))
        return None if ok else f"must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {v!r}"
    return check


def unique_list(item: Checker, min_len: int = 1) -> Checker:
    def check(v: Any) -> str | None:
        if not isinstance(v, list) or len(v) < min_len:
            return f"must be a list of at least {min_len} item(s), got {v!r}"
        for x in v:
            if (msg := item(x)) is not None:
                return f"item {x!r}: {msg}"
        if len(set(map(str, v))) != len(v):
            return f"must not repeat items, got {v!r}"
        return None
    return check


def pair(lo: float, hi: float, *, whole: bool) -> Checker:
    """A ``[min, max]`` list of integers (``whole``) or numbers with ``lo <= min <= max <= hi``."""
    item = integer(int(lo), int(hi)) if whole else number(lo, hi)

    def check(v: Any) -> str | None:
        bad = not isinstance(v, list) or len(v) != 2 or any(item(x) for x in v) or v[0] > v[1]
        kind = "integers" if whole else "numbers"
        return f"must be [min, max] {kind} with {lo} <= min <= max <= {hi}, got {v!r}" if bad else None
    return check


def threshold_rule() -> Checker:
    def check(v: Any) -> str | None:
        ok = v == "best_f1" or (not isinstance(v, bool) and isinstance(v, (int, float)))
        return None if ok else f"must be 'best_f1' or a number, got {v!r}"
    return check


def _range(lo: Any, hi: Any, lo_open: bool = False) -> str:
    if lo is not None and hi is not None:
        return f" in {'(' if lo_open else '['}{lo}, {hi}]"
    if lo is not None:
        return f" {'>' if lo_open else '>='} {lo}"
    if hi is not None:
        return f" <= {hi}"
    return ""


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Params with dotted keys, as ``dvc exp show`` and ``-S`` name them (an empty mapping is a leaf)."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def apart_from_seed(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Flat params without the training seed: what runs of one seed study share."""
    return {k: v for k, v in flat.items() if k != "seed"}
