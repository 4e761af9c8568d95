"""``carehub config init DIR``: start an installation's config directory from the shipped sample.

A wheel carries the sample config (routing map, directory, settings, rosters)
as package data; ``carehub demo`` and ``carehub routes validate`` use it when
no directory is named. ``init`` copies it to DIR for an operator to edit and
then run with ``carehub run --config-dir DIR``; it never overwrites.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from carehub.core.defaults import shipped


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("config", help="start a config directory from the shipped sample")
    commands = parser.add_subparsers(dest="config_command", required=True, metavar="{init}")
    init = commands.add_parser("init", help="copy the shipped sample config to DIR (which must not exist)")
    init.add_argument("directory", type=Path, metavar="DIR")
    init.set_defaults(func=run_init)


def run_init(args: argparse.Namespace) -> int:
    target: Path = args.directory
    if target.exists():
        print(f"carehub: error: {target} exists; config init never overwrites", file=sys.stderr)
        return 1
    shutil.copytree(shipped("config"), target, ignore=shutil.ignore_patterns("__pycache__"))
    print(f"{target}: sample config copied; set the secrets it names, then: carehub run --config-dir {target}")
    return 0
