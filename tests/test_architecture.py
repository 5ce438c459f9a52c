"""The module map of ARCHITECTURE.md, checked: layers import only downwards, no import cycle (function
-level imports included), every module says what it is for, code cites only the repository's docs."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from ood.pipeline.stages import imports

REPO = Path(__file__).resolve().parent.parent

#: ARCHITECTURE.md's layers, bottom first: a module imports its own package or a lower layer
LAYERS = [
    ("ood", "ood.io", "ood.sets", "ood.schema"),
    ("ood.data", "ood.metrics", "ood.models"),
    ("ood.train",),
    ("ood.detectors",),
    ("ood.evaluation",),
    ("ood.report",),
    ("ood.pipeline",),
]


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((REPO / "ood").rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _edges() -> dict[str, set[str]]:
    """Module -> the project modules it imports (``from pkg import mod`` names the module; a
    module's own packages are imported before it, so they are no edge)."""
    edges = {}
    for name, path in MODULES.items():
        found = imports(path.read_text(), name, path.name == "__init__.py", lazy=False)
        edges[name] = {m for m in found if m in MODULES and m != name and not name.startswith(m + ".")}
    return edges


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _layer(module: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if _package(module) in layer)


def test_every_module_has_a_layer() -> None:
    assert [m for m in MODULES if not any(_package(m) in layer for layer in LAYERS)] == []


def test_layers_import_only_downwards() -> None:
    upward = [f"{a} -> {b}" for a, targets in _edges().items() for b in targets
              if _package(a) != _package(b) and _layer(b) >= _layer(a)]
    assert upward == [], "imports across packages of one layer, or upwards"


def test_the_import_map_has_no_cycle() -> None:
    edges, state, cycles = _edges(), {}, []

    def visit(m: str, path: list[str]) -> None:
        state[m] = "open"
        for n in sorted(edges[m]):
            if state.get(n) == "open":
                cycles.append(" -> ".join(path[path.index(n):] + [n]))
            elif n not in state:
                visit(n, path + [n])
        state[m] = "done"

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    assert cycles == []


def test_a_lower_layer_imports_no_trained_method() -> None:
    """The pipeline finds the methods through the lazy registry; only their own tests import them."""
    methods = {"ood.detectors.heatmap", "ood.detectors.moodcat", "ood.detectors.diffguard", "ood.detectors.nflowjs"}
    users = sorted(f"{a} -> {b}" for a, targets in _edges().items() for b in targets & methods)
    assert users == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_says_what_it_is_for(module: str) -> None:
    doc = ast.get_docstring(ast.parse(MODULES[module].read_text()))
    assert doc and len(doc.split("\n", 1)[0]) > 10, f"{module}: no one-line purpose at the top"


def test_code_cites_only_documents_the_repository_has() -> None:
    cited = set()
    for path in [*MODULES.values(), *REPO.glob("benchmarks/*.py"), REPO / "params.yaml", REPO / "pyproject.toml"]:
        cited |= {(path.name, doc) for doc in re.findall(r"\b([A-Z][A-Za-z_]+\.md)\b", path.read_text())}
    missing = sorted((f, d) for f, d in cited if not (REPO / d).exists())
    assert missing == []
