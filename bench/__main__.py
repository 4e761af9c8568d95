"""``make bench``: conversion, ingest-to-ACK, end-to-end and soak figures on this machine.

Everything runs on one embedded broker; the load generator runs in its own
process (``bench.load``). Ingest-to-ACK measures ``carehub run --role ingest``
and carehub's ingest in this process; end to end (``bench.e2e``) runs ingest and
stream workers as their own processes on the shipped routing map. Each section
prints a naive reference measured in the same run. Figures are printed, never
asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.procs import carehub_process, load, percentile, stream_worker
from bench.reference import ReferenceServer
from bench.rss import cpu_seconds, rss_line, rss_mb
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


def ingest_line(label: str, result: dict[str, Any]) -> str:
    n = len(result["latency"])
    ms = [x * 1000 for x in result["latency"]]
    ok = int(sum(result["codes"]))
    cpu = "".join(f"   {name} {seconds / n * 1e6:4.0f} us" for name, seconds in result.get("cpu", {}).items())
    return (
        f"  {label:<50} {n / result['elapsed']:>8,.0f} msgs/s   ACK p50 {percentile(ms, 0.5):6.2f} ms"
        f"   p99 {percentile(ms, 0.99):6.2f} ms   ({ok}/{n} AA){cpu}"
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


async def bench_ingest(bootstrap: str, config_dir: Path, quick: bool, broker_pid: int | None = None) -> list[str]:
    """The naive reference, carehub's ingest in this process, and ``carehub run --role ingest`` (deployed).

    The three take turns on the same broker, and the reference runs again at the end, so a drift in
    the machine's load shows up as two different reference figures rather than as a ratio. Each line
    also gives the CPU time per message of the process that answered (the reference and the
    in-process ingest: this process) and of the broker: on a shared machine rates swing 2x, CPU per
    message much less.
    """
    n1, n8 = (1000, 4000) if quick else (3000, 12000)
    lines = ["ingest-to-ACK (MLLP in, acks=all write, ACK out; stop-and-wait clients in another process)"]
    ensure_topics(bootstrap, ["bench.ref"], 4)
    results: dict[str, dict[int, dict[str, Any]]] = {}

    async def measure(label: str, port: int, tag: str, server_pid: int) -> None:
        await load(port, 1, 200, 0, "W")
        results.setdefault(label, {})
        pids = {"server CPU": server_pid, **({"broker": broker_pid} if broker_pid is not None else {})}
        for connections, count, first in ((1, n1, 0), (8, n8, n1)):
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            result = await load(port, connections, count, 0, tag, first)
            result["cpu"] = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
            results[label][connections] = result
            lines.append(ingest_line(f"{label}, {connections} connection{'s' if connections > 1 else ''}", result))

    async def reference_run(label: str) -> None:
        reference = ReferenceServer(bootstrap, "bench.ref")
        await reference.start()
        try:
            await measure(label, reference.port, "R", os.getpid())
        finally:
            await reference.stop()

    await reference_run("naive reference")
    deployed, port = await carehub_process("ingest", config_dir, bootstrap, "bench.ingest.", 0)
    try:
        await measure("carehub run --role ingest", port, "D", deployed.pid)
        lines.append(rss_line("RSS after the 8-connection run", {"ingest process": deployed.pid}))
    finally:
        deployed.terminate()
        await deployed.wait()
    hub = Hub(bench_settings(config_dir, bootstrap, "bench.ingest."), roles=("ingest",))
    await hub.start()
    try:
        await measure("carehub ingest in the bench process", hub.mllp_port, "I", os.getpid())
    finally:
        await hub.stop()
    await reference_run("naive reference, again")

    def rate(label: str, connections: int) -> float:
        result = results[label][connections]
        return len(result["latency"]) / float(result["elapsed"])

    def server_cpu(label: str, connections: int) -> float:
        result = results[label][connections]
        return float(result["cpu"]["server CPU"]) / len(result["latency"])

    lines.append("  ingest-to-ACK / naive reference (the mean of its runs before and after; target >= 0.9x):")
    for connections in (1, 8):
        ref = (rate("naive reference", connections) + rate("naive reference, again", connections)) / 2
        deployed_ratio = rate("carehub run --role ingest", connections) / ref
        lines.append(
            f"    {connections} connection{'s' if connections > 1 else ' '}: deployed {deployed_ratio:.2f}x "
            f"({'met' if deployed_ratio >= 0.9 else 'NOT met'}), in-process "
            f"{rate('carehub ingest in the bench process', connections) / ref:.2f}x, reference {ref:,.0f} msgs/s"
        )
    lines.append("  server CPU per message, carehub run --role ingest / naive reference (the mean of its runs):")
    for connections in (1, 8):
        ref_cpu = (server_cpu("naive reference", connections) + server_cpu("naive reference, again", connections)) / 2
        deployed_cpu = server_cpu("carehub run --role ingest", connections)
        lines.append(
            f"    {connections} connection{'s' if connections > 1 else ' '}: {deployed_cpu * 1e6:.0f} us / "
            f"{ref_cpu * 1e6:.0f} us = {deployed_cpu / ref_cpu:.2f}x"
        )
    return lines


async def _until_received(receiver: Receiver, expected: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while len(receiver.arrivals) < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


def process_pids(pool: list[asyncio.subprocess.Process], broker_pid: int | None) -> dict[str, int]:
    pids = {"ingest (this process)": os.getpid()}
    pids.update({f"streams worker {n + 1}": worker.pid for n, worker in enumerate(pool)})
    if broker_pid is not None:
        pids["broker"] = broker_pid
    return pids


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
        if "scorecard" in sections:  # not in the default set: the journal's queries, run on request
            from bench.scorecard import bench_scorecard

            print("\n".join(bench_scorecard(args.quick)), flush=True)
        if "packet" in sections:  # not in the default set: the transition-of-care packet's costs
            from bench.packet import bench_packet

            print("\n".join(await bench_packet(args.quick)), flush=True)
        if "consumers" in sections:  # not in the default set: a design measurement, run on request
            from bench.consumers import bench_consumers

            print("\n".join(await bench_consumers(broker.bootstrap, args.quick)), flush=True)
        if "ingest" in sections:
            print("\n".join(await bench_ingest(broker.bootstrap, config_dir, args.quick, broker.pid)), flush=True)
        if "e2e" in sections:
            from bench.e2e import bench_e2e

            seconds = args.seconds or (5.0 if args.quick else 15.0)
            lines = await bench_e2e(broker.bootstrap, config_dir, seconds, args.rate, args.workers, broker.pid)
            print("\n".join(lines), flush=True)
        if "cpu" in sections:  # not in the default set: CPU per message, to compare versions of the stream path
            from bench.cpu import bench_cpu

            print("\n".join(await bench_cpu(broker.bootstrap, config_dir, args.cpu_messages, broker.pid)), flush=True)
        if "idle" in sections:  # not in the default set: what an idle deployment's polling costs
            from bench.idle import bench_idle

            print("\n".join(await bench_idle(broker.bootstrap, config_dir, 10.0, broker.pid)), flush=True)
        if "soak" in sections:
            lines = await bench_soak(broker.bootstrap, config_dir, args.soak, args.soak_rate, broker.pid)
            print("\n".join(lines), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer messages (for a smoke run)")
    parser.add_argument(
        "--only", default="", help="convert,ingest,e2e,soak; or cpu, idle, consumers, scorecard, packet"
    )
    parser.add_argument("--cpu-messages", type=int, default=1000, help="messages flooded for --only cpu")
    parser.add_argument("--soak", type=float, default=60.0, help="seconds of mixed load with RSS figures (600: 10 min)")
    parser.add_argument("--soak-rate", type=float, default=50.0, help="offered rate during the soak")
    parser.add_argument("--rate", type=float, default=200.0, help="offered rate for the paced end-to-end run")
    parser.add_argument("--workers", type=int, default=2, help="stream worker processes for the end-to-end run")
    parser.add_argument(
        "--seconds", type=float, default=0.0,
        help="end to end: seconds of each paced run (the flood is 300 msgs per second of it); default 15, 5 --quick",
    )  # fmt: skip
    loop.run(main(parser.parse_args()))
