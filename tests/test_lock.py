"""requirements.lock still matches pyproject.toml: no network, no project imports, stdlib only.

The lock pins every package of the environment, transitive ones included, with its hashes
(`make lock` writes it; `make setup` and environment.yml install from it). These checks fail when
pyproject.toml's dependencies or its `test` extra change without re-locking:
- every pin of pyproject.toml is in the lock at the same version;
- the lock's header records a digest of those lists that still matches them, so adding, removing
  or editing a requirement (not only a version) fails until `make lock` has run;
- every locked package is pinned with == and has a hash, as `pip install --require-hashes` needs.

Also run as a script: `python tests/test_lock.py` runs the same checks without pytest (.ci/run does,
before the long install), and `make lock` calls it with --write-header to record the digest.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tomllib  # Python 3.11: the pins need it already (diffusers 0.42.1, pandas 3)
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = REPO / "pyproject.toml"
LOCK = REPO / "requirements.lock"
EXTRAS = ("test",)  # the extras `make lock` locks (uv pip compile --extra test)
DIGEST_LINE = re.compile(r"^# pyproject-sha256: ([0-9a-f]{64})\b", re.MULTILINE)
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")


def canonical(name: str) -> str:
    """PEP 503 name: PyYAML, pyyaml and py_yaml are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements() -> list[str]:
    """pyproject.toml's dependencies and locked extras, whitespace dropped, in a stable order."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    extras = project.get("optional-dependencies", {})
    reqs = list(project.get("dependencies", []))
    for extra in EXTRAS:
        reqs += [f"[{extra}] {r}" for r in extras.get(extra, [])]
    return sorted("".join(r.split()) for r in reqs)


def digest() -> str:
    return hashlib.sha256(json.dumps(requirements()).encode()).hexdigest()


def pyproject_pins() -> dict[str, str]:
    """{name: version} of pyproject.toml's `name==version` requirements."""
    pins = {}
    for req in requirements():
        m = PIN.match(req.split("]", 1)[1] if req.startswith("[") else req)
        if m:
            pins[canonical(m.group(1))] = m.group(3)
    return pins


def lock_entries(text: str) -> dict[str, tuple[str, int]]:
    """{name: (requirement line, number of --hash options)} of the lock's requirements."""
    entries: dict[str, tuple[str, int]] = {}
    name = None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line[0].isspace() or stripped.startswith("--hash"):
            if name and "--hash=" in stripped:
                req, hashes = entries[name]
                entries[name] = (req, hashes + stripped.count("--hash="))
            continue
        req = stripped.rstrip("\\").strip()
        m = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", req)
        name = canonical(m.group(0)) if m else req
        entries[name] = (req, req.count("--hash="))
    return entries


def problems() -> list[str]:
    if not LOCK.exists():
        return [f"{LOCK.name} is missing: run `make lock`"]
    text = LOCK.read_text()
    found = []
    m = DIGEST_LINE.search(text)
    if not m:
        found.append(f"{LOCK.name} records no '# pyproject-sha256:' line: run `make lock`")
    elif m.group(1) != digest():
        found.append(f"pyproject.toml's dependencies changed since {LOCK.name} was made: "
                     "run `make lock`")
    entries = lock_entries(text)
    for name, version in sorted(pyproject_pins().items()):
        if name not in entries:
            found.append(f"{name}=={version} is pinned in pyproject.toml but not in {LOCK.name}")
            continue
        pin = PIN.match(entries[name][0])
        if not pin or pin.group(3) != version:
            found.append(f"pyproject.toml pins {name}=={version}, {LOCK.name} has "
                         f"{entries[name][0]!r}")
    for name, (req, hashes) in sorted(entries.items()):
        if not PIN.match(req):
            found.append(f"{LOCK.name}: {req!r} is not pinned with ==")
        if hashes == 0:
            found.append(f"{LOCK.name}: {req!r} has no --hash (pip --require-hashes refuses it)")
    return found


def test_lock_matches_pyproject() -> None:
    assert problems() == []


def test_lock_checks_catch_drift(tmp_path, monkeypatch) -> None:
    """The checks do fail: a new dependency, a changed pin, a dropped one, a missing hash."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    deps, test = project["dependencies"], project["optional-dependencies"]["test"]
    module = sys.modules[__name__]
    monkeypatch.setattr(module, "PYPROJECT", tmp_path / "pyproject.toml")

    def check(deps: list[str], test: list[str]) -> list[str]:
        module.PYPROJECT.write_text(  # JSON string arrays are TOML arrays
            f"[project]\ndependencies = {json.dumps(deps)}\n"
            f"[project.optional-dependencies]\ntest = {json.dumps(test)}\n")
        return problems()

    stale = f"pyproject.toml's dependencies changed since {LOCK.name} was made: run `make lock`"
    assert check(deps, test) == []
    assert check(deps + ["not-a-package==1.0"], test) == [
        stale, f"not-a-package==1.0 is pinned in pyproject.toml but not in {LOCK.name}"]
    assert check(deps[1:], test) == [stale]
    name = PIN.match(test[0]).group(1)
    assert check(deps, [f"{name}==0.0.1"] + test[1:]) == [
        stale, f"pyproject.toml pins {canonical(name)}==0.0.1, {LOCK.name} has "
               f"{lock_entries(LOCK.read_text())[canonical(name)][0]!r}"]

    monkeypatch.setattr(module, "PYPROJECT", REPO / "pyproject.toml")
    monkeypatch.setattr(module, "LOCK", tmp_path / LOCK.name)
    module.LOCK.write_text((REPO / LOCK.name).read_text() + "not-a-package==1.0\n")
    assert problems() == [f"{LOCK.name}: 'not-a-package==1.0' has no --hash "
                          "(pip --require-hashes refuses it)"]


def write_header(command: str) -> None:
    """Put the header (how to regenerate, the pyproject digest) above the requirements."""
    body = LOCK.read_text().splitlines()
    while body and (body[0].startswith("#") or not body[0].strip()):
        body.pop(0)
    header = [
        f"# {LOCK.name}: every package that `make setup` installs, transitive ones included, pinned",
        "# with its sha256 hashes: pyproject.toml's dependencies and `test` extra, resolved from PyPI",
        "# for CPython 3.11 on Linux x86_64 (torch's CUDA wheels included: that build runs on CPU and",
        "# GPU). Generated, do not edit. After changing pyproject.toml's dependencies, regenerate with",
        "#    make lock",
        "# which keeps the locked versions that still fit (LOCK_ARGS=--upgrade: all to the newest;",
        "# LOCK_ARGS='-P fsspec': that one package) by running",
        f"#    {command}",
        "# and records this digest of pyproject.toml's lists (tests/test_lock.py checks it):",
        f"# pyproject-sha256: {digest()}",
    ]
    LOCK.write_text("\n".join(header + body) + "\n")


def main(argv: list[str]) -> int:
    if argv[:1] == ["--write-header"] and len(argv) == 2:
        write_header(argv[1])
        return 0
    if argv:
        print("usage: python tests/test_lock.py [--write-header COMMAND]", file=sys.stderr)
        return 2
    found = problems()
    for problem in found:
        print(problem, file=sys.stderr)
    print(f"{LOCK.name}: {'out of date' if found else 'matches pyproject.toml'}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
