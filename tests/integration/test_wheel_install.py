"""The wheel runs anywhere: built from the tracked sources, installed into a fresh venv by the release's own
install step (deploy/install-wheel.sh: the hashed lock, then the wheel), and run from a directory with no
repository and no ../shared beside it: carehub convert, routes validate, config init, demo --json, and
carehub run as a service (MLLP in, AA back, /health, a clean SIGTERM).

Reuses pip's cache and wheelhouse, so it takes ~80-130 s here (most of it installing the locked dependencies,
then compiling the hot modules).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import venv
import zipfile
from pathlib import Path

import pytest

from carehub.broker import free_port
from carehub.demo import secret_variable
from carehub.streams.routing.load import load_recipients
from tests.conftest import CONFIG, FEED, REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: How a release wheel is built (the Containerfile's builder stage runs the same command).
BUILD_WHEEL = "pip wheel --no-deps --wheel-dir /dist ."
INSTALL_STEP = "deploy/install-wheel.sh"


def tracked_sources(target: Path) -> Path:
    """A copy of the files git would commit (tracked or new, never ignored): what a release is built from."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def clean_env(**extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR") or k.startswith("PIP_")}
    return {**keep, **extra}


def run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args[:3]} exited {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done


def test_wheel_installs_and_runs_without_the_repository(tmp_path: Path) -> None:
    source = tracked_sources(tmp_path / "src")
    dist = tmp_path / "dist"
    build = BUILD_WHEEL.replace("/dist", str(dist)).split()
    # The build compiles the hot modules (setup.py: mypyc, then one ~1 MB C file at -O3): ~20 s on a quiet
    # machine, but well over the default 180 s when the suite's other workers share the two cores.
    run([sys.executable, "-m", *build], cwd=source, env=clean_env(), timeout=600)
    (wheel,) = dist.glob("carehub-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist() if not name.split("/")[0].endswith(".dist-info")}
        (top_level,) = [n for n in archive.namelist() if n.endswith(".dist-info/top_level.txt")] or [None]
        declared = archive.read(top_level).decode().split() if top_level else sorted(tops)
    assert tops == {"carehub"} and declared == ["carehub"], f"the wheel installs more than one top-level name: {tops}"

    # The install runs in a directory of its own: no checkout, no ../shared next to it.
    site = tmp_path / "site"
    site.mkdir()
    assert not (site.parent / "shared").exists()
    env_dir = site / "venv"
    venv.create(env_dir, with_pip=True)
    env = clean_env()
    # The release's install step as it is; only byte-compiling is skipped here, for speed.
    install_env = clean_env(PIP_NO_COMPILE="1")
    run(["sh", str(REPO / INSTALL_STEP), str(env_dir), str(wheel), str(REPO / "requirements.lock")], site, install_env)
    bin_dir = env_dir / "bin"

    # Everything is imported from the venv, and FHIR validation reads the R4 definitions shipped in the wheel.
    probe = run(
        [
            str(bin_dir / "python"),
            "-c",
            "import carehub.core as core, carehub.mappings.validation as v, json;"
            "print(json.dumps([core.__file__, str(v.schema_path()),"
            " v.validate_resource({'resourceType': 'Patient', 'id': 'p', 'gender': 'sometimes'})]))",
        ],
        site,
        env,
    )
    core_file, schema, findings = json.loads(probe.stdout)
    assert core_file.startswith(str(env_dir)) and schema.startswith(str(env_dir))
    assert findings == ["Patient/p: gender: is not one of the allowed codes"]

    shutil.copy(FEED / "02-a01-admit-rivera.hl7", site / "admit.hl7")
    converted = run([str(bin_dir / "carehub"), "convert", "admit.hl7"], site, env)
    bundle = json.loads(converted.stdout)
    assert bundle["resourceType"] == "Bundle" and "issue:" not in converted.stderr

    # The shipped sample config validates once its webhook recipients have secrets (it commits none).
    secrets = {secret_variable(r): "s" * 64 for r in load_recipients(CONFIG / "recipients.yaml")}
    checked = run([str(bin_dir / "carehub"), "routes", "validate"], site, clean_env(**secrets))
    assert ": ok - routing map" in checked.stdout
    # An operator's own copy, to edit and run with --config-dir.
    run([str(bin_dir / "carehub"), "config", "init", "etc"], site, env)
    copied = run([str(bin_dir / "carehub"), "routes", "validate", "etc"], site, clean_env(**secrets))
    assert copied.stdout.startswith("etc: ok - routing map")

    shown = run([str(bin_dir / "carehub"), "demo", "--json"], site, env)
    report = json.loads(shown.stdout)
    assert report["acked"]["AA"] == report["sent"] > 0
    assert report["delivered"] > 0 and report["failed"] == 0
    # every webhook is signed; the rest of the deliveries went to the hub's own logistics desk (the orders)
    assert report["signatures_verified"] == sum(report["per_recipient"].values()) > 0
    assert (site / "var" / "demo" / "journal.db").is_file()

    # The service itself, as an operator starts it: embedded broker and SQLite, MLLP in, /health up, AA back,
    # and a clean stop on SIGTERM.
    mllp_port, http_port = free_port(), free_port()
    service = subprocess.Popen(
        [str(bin_dir / "carehub"), "run", "--config-dir", "etc", "--mllp-port", str(mllp_port),
         "--http-port", str(http_port)],
        cwd=site, env=clean_env(**secrets), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert _eventually_healthy(http_port, service), "carehub run from the wheel never answered /health"
        ack = _mllp_exchange(mllp_port, (FEED / "02-a01-admit-rivera.hl7").read_bytes())
        assert b"MSA|AA|RGH0002" in ack, ack[:200]
    finally:
        service.send_signal(signal.SIGTERM)
        _, err = service.communicate(timeout=60)
    assert service.returncode in (0, 3), err[-3000:]


def _eventually_healthy(port: int, proc: subprocess.Popen[str], timeout_s: float = 120) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                if answer.status == 200:
                    return True
        except OSError:
            time.sleep(0.5)
    return False


def _mllp_exchange(port: int, message: bytes) -> bytes:
    """One MLLP block out, its ACK back (a plain socket: nothing of the repository's on this side)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as peer:
        peer.sendall(b"\x0b" + message + b"\x1c\r")
        answer = b""
        while not answer.endswith(b"\x1c\r"):
            chunk = peer.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer
