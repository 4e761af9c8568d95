"""The same code as several workers: two stream processes share the partitions."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from carehub.broker import free_port
from carehub.connectors.mllp import MLLPClient, ack_code
from carehub.core.principal import OPS_READ
from carehub.demo_receivers import DemoRecipient
from tests.authkit import TEST_ISSUER, Issuer, trust_test_issuer
from tests.conftest import FEED
from tests.integration.conftest import eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CAREHUB = str(Path(sys.executable).parent / "carehub")


def _admit(n: int) -> bytes:
    text = (FEED / "02-a01-admit-rivera.hl7").read_bytes()
    return (
        text.replace(b"MRN100234", b"MRN9%05d" % n)
        .replace(b"RGH0002", b"SCALE%05d" % n)
        .replace(b"V77001", b"V9%05d" % n)
    )


def _normalized(http_port: int) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{http_port}/metrics", headers=TEST_ISSUER.headers(OPS_READ))
    body = urllib.request.urlopen(request, timeout=5).read().decode()
    return sum(
        int(float(line.rsplit(" ", 1)[1])) for line in body.splitlines() if line.startswith("carehub_normalized")
    )


async def _worker(role: str, config_dir: Path, env: dict[str, str], mllp: int, http: int) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        CAREHUB, "run", "--role", role, "--config-dir", str(config_dir),
        "--mllp-port", str(mllp), "--http-port", str(http), "--log-level", "WARNING",
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    assert b"carehub running" in line, line
    return proc


async def test_two_stream_workers_split_the_work_and_every_event_is_delivered_once(
    broker: str, config_dir: Path, recipients: dict[str, DemoRecipient], issuer: Issuer
) -> None:
    trust_test_issuer(config_dir, issuer)
    env = {**os.environ, "CAREHUB_KAFKA_BOOTSTRAP": broker, "CAREHUB_TOPIC_PREFIX": f"scale{os.getpid()}."}
    ports = [(free_port(), free_port()) for _ in range(3)]
    workers = [await _worker("streams", config_dir, env, *ports[i]) for i in (0, 1)]
    ingest = await _worker("ingest", config_dir, env, *ports[2])
    try:
        await asyncio.sleep(8)  # let the group settle with both members (Tansu: session timeout / 2 per join)
        client = MLLPClient("127.0.0.1", ports[2][0])
        acks = [ack_code(await client.send(_admit(n))) for n in range(40)]
        await client.close()
        assert acks == ["AA"] * 40
        pcp = recipients["pcp-riverside"]
        await eventually(lambda: len(pcp.received) >= 40, timeout_s=60)
        await asyncio.sleep(1.0)
        assert len(pcp.received) == 40 and pcp.duplicates == 0
        shares = [await asyncio.to_thread(_normalized, ports[i][1]) for i in (0, 1)]
        assert sum(shares) == 40 and all(share > 0 for share in shares), f"work split {shares}"
    finally:
        for proc in (*workers, ingest):
            proc.send_signal(signal.SIGTERM)
        for proc in (*workers, ingest):
            await asyncio.wait_for(proc.wait(), 60)
