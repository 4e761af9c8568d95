"""Installs are declared and locked: every third-party import is a declared dependency with an upper bound,
and the hashed lock files the make targets and the install step use satisfy pyproject.toml."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import REPO

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
RUNTIME = [Requirement(r) for r in PROJECT["dependencies"]]
DEV = [Requirement(r) for r in PROJECT["optional-dependencies"]["dev"]]
PRODUCT = ("carehub",)
OURS = {*PRODUCT, "bench", "tests"}
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;]+)( ;[^\\]*)? \\$", re.MULTILINE)


def imported_distributions(folders: tuple[str, ...]) -> dict[str, set[str]]:
    """Distribution name -> files importing it, for every absolute import outside the stdlib and our own rooms."""
    owners = importlib.metadata.packages_distributions()
    found: dict[str, set[str]] = {}
    for folder in folders:
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top in sys.stdlib_module_names or top in OURS or top == "__future__":
                        continue
                    for dist in owners.get(top, [f"<no distribution installs {top}>"]):
                        found.setdefault(str(canonicalize_name(dist)), set()).add(str(path.relative_to(REPO)))
    return found


def declared(requirements: list[Requirement]) -> set[str]:
    return {str(canonicalize_name(r.name)) for r in requirements}


def test_every_product_import_is_a_runtime_dependency() -> None:
    missing = {d: sorted(f) for d, f in imported_distributions(PRODUCT).items() if d not in declared(RUNTIME)}
    assert not missing, f"imported but not in [project.dependencies]: {missing}"


def test_every_test_and_bench_import_is_declared() -> None:
    allowed = declared(RUNTIME) | declared(DEV)
    missing = {d: sorted(f) for d, f in imported_distributions(("tests", "bench")).items() if d not in allowed}
    assert not missing, f"imported by tests/bench but in neither dependencies nor the dev extra: {missing}"


def test_every_requirement_has_an_upper_bound() -> None:
    unbounded = [str(r) for r in RUNTIME + DEV if not any(s.operator in ("<", "<=", "==", "~=") for s in r.specifier)]
    assert not unbounded, f"no upper bound: {unbounded}"


def _pins(lock: str) -> dict[str, str]:
    text = (REPO / lock).read_text(encoding="utf-8")
    blocks = re.split(r"\n(?=\S)", text)
    pins: dict[str, str] = {}
    for block in blocks:
        match = PIN.match(block)
        if match:
            assert "--hash=sha256:" in block, f"{lock}: {match.group(1)} has no hash"
            pins[str(canonicalize_name(match.group(1)))] = match.group(2)
    return pins


def test_the_locks_pin_every_declared_requirement_within_its_range() -> None:
    for lock, requirements in (("requirements.lock", RUNTIME), ("requirements-dev.lock", RUNTIME + DEV)):
        pins = _pins(lock)
        for requirement in requirements:
            if requirement.marker is not None and not requirement.marker.evaluate():
                continue
            name = str(canonicalize_name(requirement.name))
            assert name in pins, f"{lock} does not pin {name} (run make lock)"
            assert requirement.specifier.contains(pins[name], prereleases=True), f"{lock}: {name}=={pins[name]}"
    # The runtime lock carries no test or lint tool.
    assert not {"pytest", "pytest-asyncio", "hypothesis", "mypy", "ruff", "trustme"} & _pins("requirements.lock").keys()


def test_make_and_the_install_step_use_the_hashed_locks() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert "install --quiet --require-hashes -r requirements-dev.lock" in makefile
    assert "install --quiet --no-deps -e ." in makefile
    step = (REPO / "deploy" / "install-wheel.sh").read_text(encoding="utf-8")
    assert '--require-hashes -r "$lock"' in step and "requirements.lock" in step
