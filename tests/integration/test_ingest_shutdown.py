"""SIGTERM on an ingest process: it answers what it received and exits within the drain time,
also while the broker is away (it used to hang for minutes)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from carehub.broker import EmbeddedBroker, free_port
from carehub.connectors.mllp import MLLPClient, ack_code
from tests.conftest import CONFIG, FEED
from tests.integration.test_cli import CAREHUB

pytestmark = pytest.mark.integration
DRAIN_S = 3.0


async def _start_ingest(bootstrap: str, config: Path, mllp_port: int) -> asyncio.subprocess.Process:
    """``carehub run --role ingest`` as a user starts it, on ``bootstrap``."""
    env = {**os.environ, "CAREHUB_KAFKA_BOOTSTRAP": bootstrap, "CAREHUB_TOPIC_PREFIX": f"stop{os.getpid()}."}
    proc = await asyncio.create_subprocess_exec(
        CAREHUB,
        "run",
        "--role",
        "ingest",
        "--config-dir",
        str(config),
        "--mllp-port",
        str(mllp_port),
        "--http-port",
        str(free_port()),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    assert b"carehub running" in line, line
    return proc


@pytest.mark.parametrize("broker_state", ["up", "down"])
async def test_sigterm_drains_and_exits_within_the_drain_time(tmp_path: Path, broker_state: str) -> None:
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config, ignore=shutil.ignore_patterns("schemas"))
    (config / "carehub.yaml").write_text((config / "carehub.yaml").read_text() + f"drain_s: {DRAIN_S}\n")
    own = EmbeddedBroker()
    own.start()
    mllp_port = free_port()
    proc = await _start_ingest(own.bootstrap, config, mllp_port)
    client = MLLPClient("127.0.0.1", mllp_port, timeout_s=30)
    try:
        assert ack_code(await client.send((FEED / "02-a01-admit-rivera.hl7").read_bytes())) == "AA"
        if broker_state == "down":
            own.stop()
            assert ack_code(await client.send((FEED / "03-a02-transfer-rivera.hl7").read_bytes())) == "AR"
        # Five pipelined frames: once the first is answered all five were received, so SIGTERM
        # must still answer the other four before the process exits.
        reader, writer = await asyncio.open_connection("127.0.0.1", mllp_port)
        payload = (FEED / "04-a03-discharge-rivera.hl7").read_bytes()
        writer.write(b"".join(b"\x0b" + payload + b"\x1c\r" for _ in range(5)))
        await writer.drain()
        answers = [await asyncio.wait_for(reader.readuntil(b"\x1c\r"), 30)]
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        answers += [await asyncio.wait_for(reader.readuntil(b"\x1c\r"), 30) for _ in range(4)]
        code = await asyncio.wait_for(proc.wait(), DRAIN_S + 15)
        took = time.monotonic() - began
        writer.close()
        expected = b"MSA|AA|" if broker_state == "up" else b"MSA|AR|"
        assert all(expected + b"RGH0004" in answer for answer in answers), answers
    finally:
        await client.close()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        own.stop()
    assert code == 0
    assert took < DRAIN_S + 10, f"SIGTERM took {took:.1f} s (drain {DRAIN_S} s)"
