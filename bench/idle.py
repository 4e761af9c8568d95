"""CPU of an idle deployment (``python -m bench --only idle``): what polling costs with no traffic.

One ``carehub run --role ingest`` and two ``--role streams`` processes on the shipped routing map, warmed
up (the warm-up of ``bench.e2e``), then left alone: each process's and the broker's CPU over ``seconds``,
as a share of one core. The embedded broker holds an empty fetch for its whole wait, so every
latency-path consumer of a worker polls it every ``kafka.fetch_max_wait_ms`` (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.e2e import WARM, WARM_COUNT, bench_config, serve_recipients, warm_up
from bench.procs import carehub_process, stop_all, stream_worker
from bench.rss import cpu_seconds

SETTLE_S = 5.0


async def bench_idle(bootstrap: str, root: Path, seconds: float, broker_pid: int | None) -> list[str]:
    config_dir, webhook_secrets = bench_config(root / "idle", [range(WARM, WARM + WARM_COUNT)])
    recipients = await serve_recipients(webhook_secrets)
    ingest, port = await carehub_process("ingest", config_dir, bootstrap, "bench.idle.", 0)
    procs = {"ingest": ingest}
    try:
        for n in (1, 2):
            procs[f"streams worker {n}"] = await stream_worker(config_dir, bootstrap, "bench.idle.", n - 1)
        await warm_up(recipients, port)
        await asyncio.sleep(SETTLE_S)  # the warm-up's last commits and rebalances are over
        pids = {name: proc.pid for name, proc in procs.items()}
        if broker_pid is not None:
            pids["broker"] = broker_pid
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        await asyncio.sleep(seconds)
        used = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    finally:
        await stop_all(list(procs.values()))
        await recipients.stop()
    return [
        f"idle CPU, one ingest and two streams processes warmed up, no traffic for {seconds:g} s:",
        *(f"  {name:<20} {share / seconds * 100:5.1f}% of a core" for name, share in used.items()),
    ]
