"""SIGTERM stops a stream worker within its drain time, with the broker there and with it gone."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from carehub.broker import EmbeddedBroker, free_port

pytestmark = pytest.mark.integration
CAREHUB = str(Path(sys.executable).parent / "carehub")


async def _streams_worker(
    config_dir: Path, bootstrap: str, prefix: str, log: Path | None = None
) -> asyncio.subprocess.Process:
    env = {**os.environ, "CAREHUB_KAFKA_BOOTSTRAP": bootstrap, "CAREHUB_TOPIC_PREFIX": prefix}
    stderr = log.open("wb") if log is not None else subprocess.DEVNULL
    proc = await asyncio.create_subprocess_exec(
        CAREHUB, "run", "--role", "streams", "--config-dir", str(config_dir),
        "--mllp-port", "0", "--http-port", str(free_port()), "--log-level", "WARNING",
        stdout=subprocess.PIPE, stderr=stderr, env=env,
    )  # fmt: skip
    if log is not None:
        stderr.close()  # type: ignore[union-attr]
    assert proc.stdout is not None
    assert b"carehub running" in await asyncio.wait_for(proc.stdout.readline(), 60)
    return proc


async def _seconds_to_exit(proc: asyncio.subprocess.Process, limit_s: float) -> tuple[float, int]:
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code = await asyncio.wait_for(proc.wait(), limit_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"still running {limit_s:g} s after SIGTERM") from None
    return time.monotonic() - started, code


async def test_sigterm_stops_a_stream_worker_within_the_default_drain_time(broker: str, config_dir: Path) -> None:
    proc = await _streams_worker(config_dir, broker, f"term{os.getpid()}.")
    await asyncio.sleep(2)  # joined its group, consuming
    took, code = await _seconds_to_exit(proc, 15 + 5)
    assert code == 0, "a clean drain exits 0"
    print(f"SIGTERM with the broker up: exited {code} after {took:.1f} s")


async def test_sigterm_with_the_broker_gone_exits_within_the_configured_drain_time(
    tmp_path: Path, config_dir: Path
) -> None:
    settings = config_dir / "carehub.yaml"
    settings.write_text(settings.read_text() + "drain_s: 4\n")
    own = EmbeddedBroker(log_file=tmp_path / "broker.log")
    bootstrap = await asyncio.to_thread(own.start)
    try:
        proc = await _streams_worker(config_dir, bootstrap, "gone.")
        await asyncio.sleep(2)
    finally:
        await asyncio.to_thread(own.stop)
    await asyncio.sleep(1)  # the worker notices the broker is gone
    took, code = await _seconds_to_exit(proc, 4 + 6)
    assert code in (0, 3), code
    print(f"SIGTERM with the broker gone: exited {code} after {took:.1f} s")
