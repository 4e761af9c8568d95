"""The compiled hot modules (carehub/_native.py, setup.py): used only while they match their sources."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from carehub import _native
from tests.conftest import REPO


def test_every_listed_module_is_a_source_file_the_makefile_rebuilds_on() -> None:
    sources = [Path(_native.source_of(name)) for name in _native.MODULES]
    assert all(path.is_file() for path in sources), [str(p) for p in sources if not p.is_file()]
    # The Makefile reads the list with sed (NATIVE_SOURCES): every entry must be in the shape it reads.
    listed = re.findall(r'^    "(carehub\.[a-z0-9_.]*)",$', (REPO / "carehub" / "_native.py").read_text(), re.M)
    assert tuple(listed) == _native.MODULES


def test_no_listed_module_defines_a_coroutine() -> None:
    # Compiled coroutines misbehaved under the stages (a stale exception raised, an await inside a
    # comprehension failing): carehub/_native.py keeps them out of the compiled set.
    found = []
    for name in _native.MODULES:
        tree = ast.parse(Path(_native.source_of(name)).read_text(encoding="utf-8"))
        found += [
            f"{name}:{node.lineno}" for node in ast.walk(tree) if isinstance(node, (ast.AsyncFunctionDef, ast.Await))
        ]
    assert found == []


def test_a_source_that_differs_from_the_record_loads_every_module_from_its_py(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "_native.json"
    monkeypatch.setattr(_native, "RECORD", str(record))
    assert not _native._matches()  # no record: not a compiled build
    record.write_text(json.dumps(_native.digests()))
    assert _native._matches()
    edited = {**_native.digests(), "carehub.mappings.ids": "0" * 64}
    record.write_text(json.dumps(edited))
    assert not _native._matches()
    spec = _native._FromSource().find_spec("carehub.mappings.ids", None)
    assert spec is not None and spec.origin == _native.source_of("carehub.mappings.ids")
    assert spec.origin.endswith(".py") and spec.has_location
    assert _native._FromSource().find_spec("carehub.mappings.loader", None) is None  # not listed: as usual


def test_a_process_runs_the_compiled_modules_when_the_build_matches() -> None:
    if not Path(_native.RECORD).is_file():
        pytest.skip("a pure-Python install (no C compiler, or CAREHUB_COMPILE=0)")
    code = "import carehub._native as n, carehub.mappings; print(n.compiled())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert done.stdout.strip() == ("True" if _native._matches() else "False")
