"""Build step: copy the shipped trees (config/, demo/) into the wheel as carehub/core/shipped/ package data.

Everything else about the distribution is in pyproject.toml. An editable
install (``pip install -e .``) copies nothing: carehub/core/defaults.py then finds
the checkout's own folders.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
TREES = ("config", "demo")  # carehub/core/defaults.py SHIPPED_TREES


class BuildWithShippedTrees(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for name in TREES:
            target = Path(self.build_lib) / "carehub" / "core" / "shipped" / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(ROOT / name, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildWithShippedTrees})
