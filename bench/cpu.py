"""CPU per message, per process, end to end on the shipped routing map (``python -m bench --only cpu``).

Rates swing with whatever else the machine runs; CPU-seconds per message move much less, so this is
the figure to compare two versions of the stream path by. One ``carehub run --role ingest`` and one
``--role streams`` process, as deployed, the recipients of ``bench.e2e`` in this process; after a
warm-up (which also learns the deliveries per message), ``count`` messages (A01/A03 alternating)
flooded over 8 connections; each process's user + system CPU-seconds over the flood, until every
delivery arrived, divided by the messages.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench.e2e import FLOOD, WARM, WARM_COUNT, _until_complete, bench_config, serve_recipients, warm_up
from bench.procs import carehub_process, load, stop_all, stream_worker
from bench.rss import cpu_seconds


async def bench_cpu(bootstrap: str, root: Path, count: int, broker_pid: int | None) -> list[str]:
    patients = [range(WARM, WARM + WARM_COUNT), range(FLOOD, FLOOD + count)]
    config_dir, webhook_secrets = bench_config(root / "cpu", patients)
    recipients = await serve_recipients(webhook_secrets)
    ingest, port = await carehub_process("ingest", config_dir, bootstrap, "bench.cpu.", 0)
    procs = {"ingest": ingest, "streams worker": await stream_worker(config_dir, bootstrap, "bench.cpu.", 0)}
    try:
        plan = await warm_up(recipients, port)
        pids = {name: proc.pid for name, proc in procs.items()}
        pids["recipients + bench"] = os.getpid()
        if broker_pid is not None:
            pids["broker"] = broker_pid
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        started = time.monotonic()
        await load(port, 8, count, 0, "C", FLOOD, mix=True)
        wanted = set(range(FLOOD, FLOOD + count))
        await _until_complete(recipients, wanted, max(120.0, count / 10))
        elapsed = time.monotonic() - started
        used = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    finally:
        await stop_all(list(procs.values()))
        await recipients.stop()
    done = len(wanted & recipients.done.keys())
    deliveries = ", ".join(f"{k} {len(v)}" for k, v in plan.items())
    return [
        f"CPU per message, one ingest and one streams process, shipped map ({deliveries} deliveries), "
        f"{count} messages flooded on 8 connections: {done}/{count} complete in {elapsed:.1f} s "
        f"({done / elapsed:,.0f} msgs/s; recipients: {recipients.rejected} rejected, "
        f"{recipients.duplicates} repeats dropped)",
        *(
            f"  {name:<20} {seconds:7.2f} CPU-s  {seconds / count * 1000:7.2f} ms per message"
            for name, seconds in used.items()
        ),  # fmt: skip
    ]
