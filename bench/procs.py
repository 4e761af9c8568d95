"""The bench's child processes: the load generator and ``carehub run --role ROLE``, as deployed."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.load import RESULT_FILE


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def load(
    port: int, connections: int, count: int, rate: float, run_id: str, first: int = 0, mix: bool = False
) -> dict[str, Any]:
    """Run ``bench.load`` in its own process and answer its JSON (send times, ACK latencies, codes)."""
    args = [str(port), str(connections), str(count), str(rate), run_id, str(first), *(["mixed"] if mix else [])]
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "load.json"
        env = {**os.environ, RESULT_FILE: str(target)}
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bench.load", *args, env=env)
        if await proc.wait() != 0:
            raise RuntimeError(f"the load generator exited with {proc.returncode}")
        result: dict[str, Any] = json.loads(target.read_text(encoding="utf-8"))
    return result


async def carehub_process(
    role: str, config_dir: Path, bootstrap: str, prefix: str, n: int
) -> tuple[asyncio.subprocess.Process, int]:
    """``carehub run --role ROLE`` as its own process, as deployed; answers it and its MLLP port."""
    env = {
        **os.environ,
        "CAREHUB_KAFKA_BOOTSTRAP": bootstrap,
        "CAREHUB_TOPIC_PREFIX": prefix,
        "CAREHUB_DATABASE_URL": f"sqlite:///{config_dir}/{role}-journal-{n}.db",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "carehub.cli", "run", "--role", role, "--config-dir", str(config_dir),
        "--mllp-port", "0", "--http-port", "0", "--log-level", "ERROR",
        stdout=subprocess.PIPE, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    found = re.search(rb"carehub running: MLLP on [^:]+:(\d+)", line)
    if found is None:
        raise RuntimeError(f"carehub --role {role} did not start: {line!r}")
    return proc, int(found.group(1))


async def stream_worker(config_dir: Path, bootstrap: str, prefix: str, n: int) -> asyncio.subprocess.Process:
    """``carehub run --role streams`` as its own process, as deployed."""
    proc, _port = await carehub_process("streams", config_dir, bootstrap, prefix, n)
    return proc


async def stop_all(procs: list[asyncio.subprocess.Process]) -> None:
    for proc in procs:
        if proc.returncode is None:
            proc.terminate()
    for proc in procs:
        await proc.wait()
