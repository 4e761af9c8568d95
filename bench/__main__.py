"""``make bench``: ingest-to-ACK, end-to-end and conversion figures on this machine.

The hub runs in this process on the embedded broker; the load generator runs
in a separate process (``bench.load``) so the two do not share an event loop.
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.reference import ReferenceServer
from bench.rss import rss_line, rss_mb
from carehub import loop
from carehub.broker import EmbeddedBroker
from carehub.core.settings import HTTPSettings, KafkaSettings, Settings
from carehub.hub import Hub
from carehub.kafka import ensure_topics
from carehub.logs import configure
from carehub.ops_http import HTTPServer

ROUTES = """version: bench
rules:
  - id: all-admits
    when: {kind: [admit]}
    actions:
      - notify: bench-recipient
"""
RECIPIENTS = """recipients:
  - id: bench-recipient
    name: Bench recipient
    kind: pcp
    channel: webhook
    endpoint: ${CAREHUB_BENCH_ENDPOINT}
    secret: ${CAREHUB_BENCH_SECRET}
"""


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def load(port: int, connections: int, count: int, rate: float, run_id: str, first: int = 0) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.load",
        str(port),
        str(connections),
        str(count),
        str(rate),
        run_id,
        str(first),
        stdout=subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    result: dict[str, Any] = json.loads(out)
    return result


def ingest_line(label: str, result: dict[str, Any]) -> str:
    n = len(result["latency"])
    ms = [x * 1000 for x in result["latency"]]
    ok = int(sum(result["codes"]))
    return (
        f"  {label:<50} {n / result['elapsed']:>8,.0f} msgs/s   ACK p50 {percentile(ms, 0.5):6.2f} ms"
        f"   p99 {percentile(ms, 0.99):6.2f} ms   ({ok}/{n} AA)"
    )


class Receiver:
    """The bench's webhook recipient: records the arrival time per patient."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.server = HTTPServer([web.post("/notify", self.handle)], "127.0.0.1", 0)

    async def handle(self, request: web.Request) -> web.Response:
        bundle = await request.json()
        now = time.time()
        for entry in bundle["entry"]:
            resource = entry["resource"]
            if resource["resourceType"] == "Patient":
                self.arrivals.setdefault(resource["identifier"][0]["value"], now)
        return web.json_response({"resourceType": "OperationOutcome", "issue": []})


def bench_settings(config_dir: Path, bootstrap: str, prefix: str) -> Settings:
    s = Settings(config_dir=config_dir, kafka=KafkaSettings(bootstrap=bootstrap, topic_prefix=prefix))
    return replace(s, mllp=replace(s.mllp, port=0), http=HTTPSettings("127.0.0.1", 0))


async def bench_ingest(bootstrap: str, config_dir: Path, quick: bool) -> list[str]:
    """The naive reference, carehub's ingest in this process, and ``carehub run --role ingest`` (deployed).

    The three take turns on the same broker, and the reference runs again at the end, so a drift in
    the machine's load shows up as two different reference figures rather than as a ratio.
    """
    n1, n8 = (1000, 4000) if quick else (3000, 12000)
    lines = ["ingest-to-ACK (MLLP in, acks=all write, ACK out; stop-and-wait clients in another process)"]
    ensure_topics(bootstrap, ["bench.ref"], 4)
    results: dict[str, dict[int, dict[str, Any]]] = {}

    async def measure(label: str, port: int, tag: str) -> None:
        await load(port, 1, 200, 0, "W")
        results.setdefault(label, {})
        for connections, count, first in ((1, n1, 0), (8, n8, n1)):
            result = await load(port, connections, count, 0, tag, first)
            results[label][connections] = result
            lines.append(ingest_line(f"{label}, {connections} connection{'s' if connections > 1 else ''}", result))

    async def reference_run(label: str) -> None:
        reference = ReferenceServer(bootstrap, "bench.ref")
        await reference.start()
        try:
            await measure(label, reference.port, "R")
        finally:
            await reference.stop()

    await reference_run("naive reference")
    deployed, port = await carehub_process("ingest", config_dir, bootstrap, "bench.ingest.", 0)
    try:
        await measure("carehub run --role ingest", port, "D")
        lines.append(rss_line("RSS after the 8-connection run", {"ingest process": deployed.pid}))
    finally:
        deployed.terminate()
        await deployed.wait()
    hub = Hub(bench_settings(config_dir, bootstrap, "bench.ingest."), roles=("ingest",))
    await hub.start()
    try:
        await measure("carehub ingest in the bench process", hub.mllp_port, "I")
    finally:
        await hub.stop()
    await reference_run("naive reference, again")

    def rate(label: str, connections: int) -> float:
        result = results[label][connections]
        return len(result["latency"]) / float(result["elapsed"])

    for connections in (1, 8):
        ref = (rate("naive reference", connections) + rate("naive reference, again", connections)) / 2
        lines.append(
            f"  {connections} connection(s) vs the mean reference: deployed "
            f"{rate('carehub run --role ingest', connections) / ref:.2f}x, in-process "
            f"{rate('carehub ingest in the bench process', connections) / ref:.2f}x (target >= 0.9x)"
        )
    return lines


async def _until_received(receiver: Receiver, expected: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while len(receiver.arrivals) < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


def e2e_latencies(result: dict[str, Any], receiver: Receiver) -> list[float]:
    from bench.messages import mrn

    return [
        (receiver.arrivals[mrn(int(n))] - sent) * 1000
        for n, sent in zip(result["ids"], result["sent"], strict=True)
        if mrn(int(n)) in receiver.arrivals
    ]


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


def process_pids(pool: list[asyncio.subprocess.Process], broker_pid: int | None) -> dict[str, int]:
    pids = {"ingest (this process)": os.getpid()}
    pids.update({f"streams worker {n + 1}": worker.pid for n, worker in enumerate(pool)})
    if broker_pid is not None:
        pids["broker"] = broker_pid
    return pids


async def bench_e2e(
    bootstrap: str,
    config_dir: Path,
    quick: bool,
    rate: float = 200.0,
    workers: int = 2,
    broker_pid: int | None = None,
) -> list[str]:
    receiver = Receiver()
    await receiver.server.start()
    os.environ["CAREHUB_BENCH_ENDPOINT"] = f"http://127.0.0.1:{receiver.server.port}/notify"
    hub = Hub(bench_settings(config_dir, bootstrap, "bench.e2e."), roles=("ingest",))
    await hub.start()
    pool = [await stream_worker(config_dir, bootstrap, "bench.e2e.", n) for n in range(workers)]
    await asyncio.sleep(4 if workers > 1 else 0)  # let the group settle with every member
    lines = [
        "end to end (MLLP in -> normalize -> route -> consent -> webhook received):",
        f"  an ingest process (this one) and {workers} `carehub run --role streams` worker process(es)",
    ]
    try:
        await load(hub.mllp_port, 1, 50, 0, "W", 900_000_000)
        await _until_received(receiver, 50, 30)
        first = 0
        for offered in sorted({50.0, rate}):
            count = int(offered * (5 if quick else 15))
            before = len(receiver.arrivals)
            result = await load(hub.mllp_port, 4, count, offered, f"P{int(offered)}", first)
            await _until_received(receiver, before + count, 90)
            first += count
            ms = e2e_latencies(result, receiver)
            lines.append(
                f"  paced {offered:.0f} msgs/s x {count}: p50 {percentile(ms, 0.5):7.1f} ms   "
                f"p99 {percentile(ms, 0.99):7.1f} ms   received {len(ms)}/{count}"
            )
        flood = 3000 if quick else 10000
        first = 100_000_000
        before = len(receiver.arrivals)
        result = await load(hub.mllp_port, 8, flood, 0, "F", first)
        await _until_received(receiver, before + flood, 120)
        sent = result["sent"]
        arrived = [receiver.arrivals[k] for k in receiver.arrivals if k >= f"MRN{first:08d}"]
        span = max(arrived) - min(sent) if arrived else float("nan")
        lines.append(
            f"  sustained, 8 connections x {flood}: {len(arrived) / span:8,.0f} msgs/s end to end "
            f"(ingest alone {len(sent) / result['elapsed']:,.0f} msgs/s while streams ran), "
            f"received {len(arrived)}/{flood}"
        )
        lines.append(rss_line("RSS after the sustained run", process_pids(pool, broker_pid)))
    finally:
        for worker in pool:
            worker.terminate()
        for worker in pool:
            await worker.wait()
        await hub.stop()
        await receiver.server.stop()
    return lines


SOAK_ROUTES = (
    ROUTES
    + """      - notify: bench-down
"""
)
SOAK_RECIPIENTS = (
    RECIPIENTS
    + """  - id: bench-down
    name: A recipient that is down (its deliveries back up on the retry topics)
    kind: payer
    channel: webhook
    endpoint: http://127.0.0.1:9/down
    secret: ${CAREHUB_BENCH_SECRET}
"""
)


async def bench_soak(
    bootstrap: str, config_dir: Path, seconds: float, rate: float, broker_pid: int | None
) -> list[str]:
    """A mixed load for ``seconds``: paced admits delivered to one recipient while a second is down.

    RSS of every process at the start, the middle and the end: it should stay flat while the down
    recipient's deliveries back up (retry topics, journal queue), not grow with the backlog.
    """
    soak_dir = config_dir / "soak"
    soak_dir.mkdir(exist_ok=True)
    (soak_dir / "routes.yaml").write_text(SOAK_ROUTES)
    (soak_dir / "recipients.yaml").write_text(SOAK_RECIPIENTS)
    receiver = Receiver()
    await receiver.server.start()
    os.environ["CAREHUB_BENCH_ENDPOINT"] = f"http://127.0.0.1:{receiver.server.port}/notify"
    hub = Hub(bench_settings(soak_dir, bootstrap, "bench.soak."), roles=("ingest",))
    await hub.start()
    pool = [await stream_worker(soak_dir, bootstrap, "bench.soak.", 0)]
    count = int(rate * seconds)
    lines = [
        f"soak: {seconds:.0f} s of paced admits at {rate:.0f} msgs/s ({count}), each to a live recipient and to one "
        "that is down",
    ]
    samples: list[tuple[float, dict[str, float]]] = []
    pids = process_pids(pool, broker_pid)

    async def sample() -> None:
        started = time.monotonic()
        while True:
            samples.append((time.monotonic() - started, {name: rss_mb(pid) for name, pid in pids.items()}))
            await asyncio.sleep(max(1.0, seconds / 20))

    sampler = asyncio.create_task(sample())
    try:
        result = await load(hub.mllp_port, 4, count, rate, "S", 200_000_000)
        await _until_received(receiver, count, 60)
    finally:
        sampler.cancel()
        for worker in pool:
            worker.terminate()
        for worker in pool:
            await worker.wait()
        await hub.stop()
        await receiver.server.stop()
    ok = int(sum(result["codes"]))
    lines.append(f"  {ok}/{count} AA, {len(receiver.arrivals)} delivered to the live recipient")
    for label, (at, rss) in (("start", samples[0]), ("middle", samples[len(samples) // 2]), ("end", samples[-1])):
        lines.append(f"  RSS at {label:<6} ({at:5.0f} s): " + ", ".join(f"{n} {v:,.0f} MB" for n, v in rss.items()))
    peak = {name: max(s[1][name] for s in samples) for name in pids}
    lines.append("  RSS peak:              " + ", ".join(f"{n} {v:,.0f} MB" for n, v in peak.items()))
    return lines


async def main(args: argparse.Namespace) -> None:
    configure("WARNING")
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        config_dir = Path(tmp)
        (config_dir / "routes.yaml").write_text(ROUTES)
        (config_dir / "recipients.yaml").write_text(RECIPIENTS)
        os.environ.setdefault("CAREHUB_BENCH_ENDPOINT", "http://127.0.0.1:9/unused")
        os.environ.setdefault("CAREHUB_BENCH_SECRET", secrets.token_hex(32))  # webhooks are always signed
        print(
            f"carehub bench on {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
            f"embedded broker {broker.bootstrap}"
        )
        sections = [s for s in args.only.split(",") if s] if args.only else ["convert", "ingest", "e2e", "soak"]
        if "convert" in sections:
            from bench.convert import bench_convert

            print("\n".join(bench_convert(args.quick)), flush=True)
        if "consumers" in sections:  # not in the default set: a design measurement, run on request
            from bench.consumers import bench_consumers

            print("\n".join(await bench_consumers(broker.bootstrap, args.quick)), flush=True)
        if "ingest" in sections:
            print("\n".join(await bench_ingest(broker.bootstrap, config_dir, args.quick)), flush=True)
        if "e2e" in sections:
            lines = await bench_e2e(broker.bootstrap, config_dir, args.quick, args.rate, args.workers, broker.pid)
            print("\n".join(lines), flush=True)
        if "soak" in sections:
            lines = await bench_soak(broker.bootstrap, config_dir, args.soak, args.soak_rate, broker.pid)
            print("\n".join(lines), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer messages (for a smoke run)")
    parser.add_argument("--only", default="", help="convert,ingest,e2e,soak; or consumers")
    parser.add_argument("--soak", type=float, default=60.0, help="seconds of mixed load with RSS figures (600: 10 min)")
    parser.add_argument("--soak-rate", type=float, default=50.0, help="offered rate during the soak")
    parser.add_argument("--rate", type=float, default=200.0, help="offered rate for the paced end-to-end run")
    parser.add_argument("--workers", type=int, default=2, help="stream worker processes for the end-to-end run")
    loop.run(main(parser.parse_args()))
