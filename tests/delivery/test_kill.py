"""SIGKILL a stream worker mid-stream, start another: all arrives, repeats keep their key (twice: test_kill_twice)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web

from carehub.broker import free_port
from carehub.core.topics import Topics
from tests.conftest import CONFIG
from tests.delivery.helpers import delivery, produce
from tests.delivery.recipients import HttpRecipient
from tests.integration.conftest import eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CAREHUB = str(Path(sys.executable).parent / "carehub")


class SlowRecipient(HttpRecipient):
    """Takes a few milliseconds per request, so a kill lands while deliveries are in flight."""

    async def handle(self, request: web.Request) -> web.Response:
        await asyncio.sleep(0.004)
        return await super().handle(request)


async def _worker(config: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        CAREHUB, "run", "--role", "streams", "--config-dir", str(config),
        "--mllp-port", "0", "--http-port", str(free_port()), "--log-level", "ERROR",
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    assert b"carehub running" in await asyncio.wait_for(proc.stdout.readline(), 60)
    return proc


async def test_a_killed_worker_loses_nothing_and_repeats_keep_their_key(broker: str, tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config, ignore=shutil.ignore_patterns("schemas"))
    prefix = f"kill{os.getpid()}."
    env = {
        **os.environ,
        "CAREHUB_KAFKA_BOOTSTRAP": broker,
        "CAREHUB_TOPIC_PREFIX": prefix,
        "CAREHUB_DATABASE_URL": f"sqlite:///{tmp_path / 'journal.db'}",
    }
    recipient = SlowRecipient()
    env["CAREHUB_ENDPOINT_PCP_RIVERSIDE"] = recipient.url + "/$process-message"  # read at send time
    await recipient.start()
    first = await _worker(config, env)
    second = None
    try:
        records = [
            delivery(n, patient=f"RGH|MRN{n % 20}", endpoint=recipient.url + "/$process-message") for n in range(400)
        ]
        await produce(broker, Topics(prefix).deliveries, records)
        await eventually(lambda: len(recipient.counts()) >= 60, timeout_s=60)
        first.send_signal(signal.SIGKILL)
        await first.wait()
        at_kill = len(recipient.counts())
        assert at_kill < len(records), "the kill must land mid-stream"
        second = await _worker(config, env)
        await eventually(lambda: len(recipient.counts()) == len(records), timeout_s=90)
        counts = recipient.counts()
        assert set(counts) == {r.idempotency_key for r in records}, "every delivery arrived, no unknown keys"
        repeats = [key for key, n in counts.items() if n > 1]
        print(f"killed after {at_kill} of {len(records)} distinct deliveries; {len(repeats)} repeated with their key")
    finally:
        for proc in (first, second):
            if proc is not None and proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(proc.wait(), 60)
        await recipient.stop()
