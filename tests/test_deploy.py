"""The deployment files run what is tested: the Containerfile builds and installs the wheel with the commands
tests/integration/test_wheel_install.py runs, and the systemd units start commands carehub accepts."""

from __future__ import annotations

import configparser
import json
import re
import shlex
from pathlib import Path

import pytest

from carehub.cli import build_parser
from tests.conftest import REPO
from tests.integration.test_wheel_install import BUILD_WHEEL, INSTALL_STEP

CONTAINERFILE = REPO / "deploy" / "Containerfile"
UNITS = sorted((REPO / "deploy" / "systemd").glob("*.service"))


def run_commands() -> list[str]:
    """The Containerfile's RUN instructions, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", CONTAINERFILE.read_text(encoding="utf-8"))
    return [line.removeprefix("RUN ").strip() for line in text.splitlines() if line.startswith("RUN ")]


def test_the_image_builds_and_installs_the_wheel_as_the_wheel_test_does() -> None:
    commands = run_commands()
    assert BUILD_WHEEL in commands, "the builder stage builds the wheel with the wheel test's command"
    (install,) = [c for c in commands if INSTALL_STEP in c]
    steps = [shlex.split(step) for step in install.split("&&")]
    assert ["python", "-m", "venv", "/opt/carehub"] in steps
    assert [
        "sh",
        f"/opt/carehub-install/{INSTALL_STEP}",
        "/opt/carehub",
        "/dist/carehub-*.whl",
        "/opt/carehub-install/requirements.lock",
    ] in steps, "the install step, with the same lock the wheel test installs"
    text = CONTAINERFILE.read_text(encoding="utf-8")
    assert f"COPY {INSTALL_STEP} /opt/carehub-install/{INSTALL_STEP}" in text
    assert "COPY requirements.lock /opt/carehub-install/requirements.lock" in text
    assert re.search(r"^USER carehub$", text, re.M), "the hub does not run as root"


def test_the_image_command_is_one_carehub_accepts() -> None:
    (cmd,) = [line for line in CONTAINERFILE.read_text(encoding="utf-8").splitlines() if line.startswith("CMD ")]
    argv = json.loads(cmd.removeprefix("CMD "))
    assert build_parser().parse_args(argv).command == "run"


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_units_start_carehub_as_an_unprivileged_user(unit: Path) -> None:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read_string(unit.read_text(encoding="utf-8"))
    service = parser["Service"]
    argv = shlex.split(service["ExecStart"].replace("%i", "1"))
    assert argv[0] == "/opt/carehub/bin/carehub"  # where deploy/install-wheel.sh put it (docs/deploy.md)
    args = build_parser().parse_args(argv[1:])
    assert args.command == "run" and args.role in ("ingest", "streams")
    assert service["User"] == "carehub" and service["UMask"] == "0077"
    assert service["KillSignal"] == "SIGTERM" and service["Restart"] == "on-failure"


def test_there_is_a_unit_per_role() -> None:
    assert {u.name for u in UNITS} == {"carehub-ingest.service", "carehub-streams@.service"}
