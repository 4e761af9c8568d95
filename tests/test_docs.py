"""The README and docs/ show real commands: each one parses, and the safe ones run."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from carehub.cli import build_parser
from tests.conftest import REPO

pytestmark = pytest.mark.slow  # a carehub process per runnable command
BLOCK = re.compile(r"```bash\n(.*?)```", re.S)
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
RUNNABLE = {"convert", "validate", "packet"}


def _commands() -> list[tuple[str, list[str]]]:
    found = []
    for doc in DOCS:
        for block in BLOCK.findall(doc.read_text()):
            for line in block.splitlines():
                line = line.split("#", 1)[0].strip()
                words = shlex.split(line) if line else []
                words = [w for w in words if "=" not in w or w.startswith("-")]  # drop VAR=value prefixes
                if words and words[0].endswith("carehub"):
                    found.append((doc.name, words[1:]))
    return found


COMMANDS = _commands()


def test_docs_show_commands() -> None:
    assert len(COMMANDS) >= 5


@pytest.mark.parametrize(("doc", "argv"), COMMANDS, ids=[" ".join(a) for _, a in COMMANDS])
def test_documented_command_parses_and_safe_ones_run(doc: str, argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert args.command == argv[0]
    if argv[0] in RUNNABLE:
        carehub = Path(sys.executable).parent / "carehub"
        proc = subprocess.run([str(carehub), *argv], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"{doc}: carehub {' '.join(argv)} failed: {proc.stderr[-1500:]}"


def test_make_targets_named_in_the_readme_exist() -> None:
    makefile = (REPO / "Makefile").read_text()
    for target in re.findall(r"make (\w+)", (REPO / "README.md").read_text()):
        assert re.search(rf"^{target}:", makefile, re.M), (
            f"README names 'make {target}', the Makefile has no such target"
        )
