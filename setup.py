"""Build steps: copy the shipped trees (config/, demo/) into the wheel as carehub/core/shipped/ package data,
and compile the hot modules (conversion, routing and consent) ahead with mypyc where the build can.

Everything else about the distribution is in pyproject.toml. An editable
install (``pip install -e .``) copies nothing: carehub/core/defaults.py then finds
the checkout's own folders.

Compiled modules (``carehub._native.MODULES``): the same ``.py`` files, compiled by mypyc (a build
requirement) into extension modules beside them, when a C compiler is there; without one, or with
``CAREHUB_COMPILE=0``, the build is pure Python and runs the same code more slowly. The build records
the sources it compiled (``carehub/_native.json``); an edited source runs as Python until it is
compiled again (``make setup``).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import sysconfig
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
TREES = ("config", "demo")  # carehub/core/defaults.py SHIPPED_TREES
sys.path.insert(0, str(ROOT))
from carehub import _native  # noqa: E402  - the list of modules and their record, from the source tree

#: The setup.py commands that build extensions (metadata and sdist commands do not compile anything).
BUILDS = {"build", "build_ext", "bdist_wheel", "editable_wheel", "develop", "install"}


class BuildWithShippedTrees(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for name in TREES:
            target = Path(self.build_lib) / "carehub" / "core" / "shipped" / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(ROOT / name, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


class BuildRecordingSources(build_ext):
    """The compiled modules, then the record of the sources they were compiled from (``_native.json``)."""

    def run(self) -> None:
        super().run()
        if not self.extensions:
            return
        where = ROOT if self.inplace else Path(self.build_lib)
        record = where / "carehub" / Path(_native.RECORD).name
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps(_native.digests(), indent=1, sort_keys=True) + "\n", encoding="utf-8")


def _compiled() -> list[Any]:
    if os.environ.get("CAREHUB_COMPILE", "1") == "0" or not BUILDS & set(sys.argv[1:]):
        return []
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        print(f"carehub: no C compiler ({compiler}): the hot modules stay pure Python", file=sys.stderr)
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("carehub: mypyc is not installed: the hot modules stay pure Python", file=sys.stderr)
        return []
    sources = [str(Path(_native.source_of(name)).relative_to(ROOT)) for name in _native.MODULES]
    extensions: list[Any] = mypycify(sources, group_name="carehub._native", opt_level="3")
    return extensions


setup(
    cmdclass={"build_py": BuildWithShippedTrees, "build_ext": BuildRecordingSources},
    ext_modules=_compiled(),
)
