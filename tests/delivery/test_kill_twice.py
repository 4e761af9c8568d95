"""SIGKILL a stream worker mid-stream and again mid-recovery, behind a real ingest: every AA'd admission arrives,
repeats keep their key."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web

from carehub.broker import free_port
from carehub.connectors.mllp import MLLPClient, ack_code
from tests.conftest import CONFIG, FEED
from tests.delivery.recipients import HttpRecipient
from tests.integration.conftest import eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CAREHUB = str(Path(sys.executable).parent / "carehub")


class RecordingRecipient(HttpRecipient):
    """A FHIR $process-message endpoint that records (Idempotency-Key, focus) of every notification."""

    def __init__(self) -> None:
        super().__init__()
        self.notifications: list[tuple[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        header = body["entry"][0]["resource"]
        self.notifications.append((request.headers["Idempotency-Key"], header["focus"][0]["reference"]))
        return web.json_response({"resourceType": "OperationOutcome", "issue": []})

    def keys(self) -> set[str]:
        return {key for key, _ in self.notifications}


def _admit(n: int) -> bytes:
    text = (FEED / "02-a01-admit-rivera.hl7").read_bytes()
    text = text.replace(b"MRN100234", b"MRN8%05d" % n).replace(b"RGH0002", b"KILL%05d" % n)
    return text.replace(b"V77001", b"V8%05d" % n)


async def _started(role: str, config: Path, env: dict[str, str], mllp: int = 0) -> asyncio.subprocess.Process:
    log = (config.parent / f"{role}-{free_port()}.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        CAREHUB, "run", "--role", role, "--config-dir", str(config),
        "--mllp-port", str(mllp), "--http-port", str(free_port()), "--log-level", "WARNING",
        stdout=subprocess.PIPE, stderr=log, env=env,
    )  # fmt: skip
    log.close()
    assert proc.stdout is not None
    assert b"carehub running" in await asyncio.wait_for(proc.stdout.readline(), 60)
    return proc


async def _kill(proc: asyncio.subprocess.Process) -> None:
    proc.send_signal(signal.SIGKILL)
    await proc.wait()


async def test_a_stream_worker_killed_mid_stream_and_again_mid_recovery_loses_nothing(
    broker: str, tmp_path: Path
) -> None:
    """MLLP -> ingest -> streams (normalize, route with its tables, deliver) -> a real HTTP recipient.

    The streams worker is SIGKILLed mid-stream, restarted, SIGKILLed again while it rejoins the group
    and recovers its tables from their changelogs, and restarted: every AA'd admission reaches the PCP
    and the payer, and a repeat is only ever the same delivery with the same idempotency key.
    """
    total = 600
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config, ignore=shutil.ignore_patterns("schemas"))
    recipient = RecordingRecipient()
    await recipient.start()
    endpoint = recipient.url + "/$process-message"
    env = {
        **os.environ,
        "CAREHUB_KAFKA_BOOTSTRAP": broker,
        "CAREHUB_TOPIC_PREFIX": f"kill2x{os.getpid()}.",
        "CAREHUB_DATABASE_URL": f"sqlite:///{tmp_path / 'journal.db'}",
        "CAREHUB_ENDPOINT_PCP_RIVERSIDE": endpoint,
        "CAREHUB_ENDPOINT_PAYER_ACME": endpoint,
    }
    mllp = free_port()
    ingest = await _started("ingest", config, env, mllp)
    workers = [await _started("streams", config, env)]
    acked: list[str] = []

    async def send_all() -> None:
        client = MLLPClient("127.0.0.1", mllp)
        try:
            for n in range(total):
                acked.append(ack_code(await client.send(_admit(n))))
        finally:
            await client.close()

    sender = asyncio.create_task(send_all())
    try:
        await eventually(lambda: len(recipient.keys()) >= total // 4, timeout_s=120)
        await _kill(workers[0])
        at_first_kill = len(recipient.keys())
        workers.append(await _started("streams", config, env))
        await asyncio.sleep(0.5)  # rejoining the group, recovering patient-signals and visits-seen
        await _kill(workers[1])
        at_second_kill = len(recipient.keys())
        workers.append(await _started("streams", config, env))
        await sender
        assert acked == ["AA"] * total
        try:
            await eventually(lambda: len(recipient.keys()) >= 2 * total, timeout_s=240)
        except AssertionError:
            raise AssertionError(f"{len(recipient.keys())} of {2 * total} arrived (logs in {tmp_path})") from None
        await asyncio.sleep(1.0)
        keys_per_visit: dict[str, set[str]] = {}
        for key, focus in recipient.notifications:
            keys_per_visit.setdefault(focus, set()).add(key)
        assert len(keys_per_visit) == total, "every acknowledged admission was delivered"
        assert all(len(keys) == 2 for keys in keys_per_visit.values()), "one key per recipient, repeats keep it"
        repeats = len(recipient.notifications) - len(recipient.keys())
        print(
            f"{total} AA; {2 * total} deliveries expected; killed at {at_first_kill} and at {at_second_kill} "
            f"(mid-recovery); all {len(recipient.keys())} arrived, {repeats} repeats, each with the key it had"
        )
    finally:
        sender.cancel()
        for proc in (*workers, ingest):
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(proc.wait(), 60)
        await recipient.stop()
