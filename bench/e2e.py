"""End to end on the SHIPPED routing map, carehub beside a naive reference measured in the same run.

A temporary copy of config/ (routes, directory, rosters as shipped) with the bench patients added to
``rosters/attribution.csv`` (PCP, payer and pharmacy, so the discharge's med-rec task resolves too);
every webhook recipient of the directory points at this process's HTTP recipient (one path per
recipient, signatures checked, repeats dropped by Idempotency-Key). The load alternates A01
admissions and A03 discharges, one new patient each. A message counts when ALL the deliveries
carehub planned for it (learned from a warm-up) have arrived; its latency is from the MLLP send to
the arrival of its last delivery.

Processes, as deployed: ``carehub run --role ingest``, ``--workers`` ``carehub run --role streams``,
the load generator, and this process (the recipients). The naive reference (``bench.e2e_reference``:
MLLP -> Kafka -> plain aiokafka consumer -> the same POSTs) runs first with the same number of
worker processes, against the same recipients and broker.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from bench.messages import KINDS, kind, mrn
from bench.procs import carehub_process, load, percentile, stop_all, stream_worker
from bench.rss import rss_line
from carehub.connectors.webhook import SIGNATURE_HEADER, verify
from carehub.demo import endpoint_variable, secret_variable
from carehub.kafka import ensure_topics
from carehub.ops_http import HTTPServer

SHIPPED = Path(__file__).resolve().parents[1] / "config"
MRN = re.compile(rb"MRN(\d{8})")
OK = {"resourceType": "OperationOutcome", "issue": []}
WARM = 1_000  # warm-up patients: MRN00001000.. (the paced and flood runs use their own ranges)
WARM_COUNT = 20
PACED = 10_000_000
FLOOD = 50_000_000


@dataclass
class Recipients:
    """Every webhook recipient of the directory, served here: who got what for which patient, and when."""

    secrets: dict[str, str]
    expected: dict[str, int] = field(default_factory=dict)  # deliveries per message, by trigger
    count: Counter[int] = field(default_factory=Counter)
    seen: dict[int, list[str]] = field(default_factory=dict)  # recipients per patient (the warm-up's plan)
    done: dict[int, float] = field(default_factory=dict)  # patient -> arrival of its last delivery
    keys: set[str] = field(default_factory=set)
    duplicates: int = 0
    rejected: int = 0
    server: HTTPServer | None = None

    def url(self, recipient: str) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}/r/{recipient}"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        now = time.time()
        recipient = request.match_info["recipient"]
        secret = self.secrets.get(recipient, "")
        found = MRN.search(body)
        if not verify(secret, request.headers.get(SIGNATURE_HEADER, ""), body) or found is None:
            self.rejected += 1
            return web.json_response(OK, status=401 if found else 400)
        key = request.headers.get("Idempotency-Key", "")
        if key in self.keys:
            self.duplicates += 1
            return web.json_response(OK)
        self.keys.add(key)
        n = int(found.group(1))
        self.count[n] += 1
        self.seen.setdefault(n, []).append(recipient)
        if self.count[n] == self.expected.get(kind(n), 0):
            self.done[n] = now
        return web.json_response(OK)

    def reset(self) -> None:
        self.count.clear()
        self.seen.clear()
        self.done.clear()
        self.keys.clear()

    async def start(self) -> None:
        self.server = HTTPServer([web.post("/r/{recipient}", self.handle)], "127.0.0.1", 0)
        await self.server.start()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()


async def serve_recipients(webhook_secrets: dict[str, str]) -> Recipients:
    """The recipients served here, and the hub processes started after this pointed at them (environment)."""
    recipients = Recipients(webhook_secrets)
    await recipients.start()
    for recipient, secret in webhook_secrets.items():
        os.environ[endpoint_variable(recipient)] = recipients.url(recipient)
        os.environ[secret_variable(recipient)] = secret
    return recipients


def bench_config(root: Path, patients: list[range]) -> tuple[Path, dict[str, str]]:
    """A copy of the shipped config/ with the bench patients attributed; answers it and the webhook secrets."""
    target = root / "e2e-config"
    shutil.copytree(SHIPPED, target)
    with (target / "rosters" / "attribution.csv").open("a", encoding="utf-8") as roster:
        for span in patients:
            roster.writelines(f"RGH,{mrn(n)},pcp-riverside,payer-acme,,pharmacy-mainst\n" for n in span)
    directory = yaml.safe_load((target / "recipients.yaml").read_text(encoding="utf-8"))
    webhooks = [r["id"] for r in directory["recipients"] if r.get("channel") == "webhook"]
    return target, {r: secrets.token_hex(32) for r in webhooks}


async def _until_complete(recipients: Recipients, wanted: set[int], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not wanted <= recipients.done.keys() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


async def _until_quiet(recipients: Recipients, timeout_s: float, quiet_s: float = 2.0) -> bool:
    """Until no delivery arrived for ``quiet_s``: the warm-up (before the plan per trigger is known),
    and between runs, so a backlog one run left behind does not slow the next one's figures."""
    deadline = time.monotonic() + timeout_s
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        total = sum(recipients.count.values())
        if total != last:
            last, since = total, time.monotonic()
        elif total and time.monotonic() - since >= quiet_s:
            return True
        await asyncio.sleep(0.1)
    return False


async def _drain(recipients: Recipients, lines: list[str], timeout_s: float = 120.0) -> None:
    started = time.monotonic()
    if not await _until_quiet(recipients, timeout_s):
        lines.append(f"    (backlog still arriving after {timeout_s:.0f} s: the next figures include it)")
    elif time.monotonic() - started > 10:
        lines.append(f"    (backlog drained in {time.monotonic() - started:.0f} s before the next run)")


def _latencies(result: dict[str, Any], recipients: Recipients) -> list[float]:
    return [
        (recipients.done[int(n)] - sent) * 1000
        for n, sent in zip(result["ids"], result["sent"], strict=True)
        if int(n) in recipients.done
    ]


async def warm_up(recipients: Recipients, port: int, warm: int = WARM_COUNT) -> dict[str, list[str]]:
    """Send ``warm`` messages and learn what a message of each trigger plans: the recipients per trigger
    (``recipients.expected`` is set to their count, so later messages count as complete)."""
    recipients.reset()
    recipients.expected = {}
    await load(port, 2, warm, 0, "W", WARM, mix=True)
    await _until_quiet(recipients, 60)
    plan: dict[str, list[str]] = {}
    for k in KINDS:
        counts = Counter(len(recipients.seen.get(n, [])) for n in range(WARM, WARM + warm) if kind(n) == k)
        typical = counts.most_common(1)[0][0] if counts else 0
        recipients.expected[k] = typical
        sample = next((n for n in range(WARM, WARM + warm) if len(recipients.seen.get(n, [])) == typical), None)
        plan[k] = sorted(recipients.seen.get(sample, [])) if sample is not None else []
    return plan


@dataclass
class System:
    """One side of the comparison: how to start it (answers its MLLP port and its processes by name)."""

    label: str
    start: Callable[[], Awaitable[tuple[int, dict[str, asyncio.subprocess.Process]]]]


async def _measure(
    system: System, recipients: Recipients, seconds: float, rate: float, flood: int, broker_pid: int | None
) -> tuple[list[str], dict[str, list[str]]]:
    """Warm-up (learns the plan per trigger), paced 50 and ``rate`` msgs/s, then a flood on 8 connections."""
    port, procs = await system.start()
    lines = [f"  {system.label}: " + ", ".join(procs)]
    plan: dict[str, list[str]] = {}
    try:
        plan = await warm_up(recipients, port)
        lines.append(
            "    deliveries per message (warm-up): "
            + ", ".join(f"{k} {recipients.expected[k]} ({', '.join(plan[k])})" for k in KINDS)
        )
        first = PACED
        for offered in sorted({50.0, rate}):
            count = int(offered * seconds)
            result = await load(port, 4, count, offered, f"P{int(offered)}", first, mix=True)
            wanted = set(range(first, first + count))
            await _until_complete(recipients, wanted, max(60.0, count / 20))
            first += count
            ms = _latencies(result, recipients)
            lines.append(
                f"    paced {offered:>5.0f} msgs/s x {count:>5}: last delivery p50 {percentile(ms, 0.5):8.1f} ms   "
                f"p99 {percentile(ms, 0.99):8.1f} ms   complete {len(ms)}/{count}"
            )
            await _drain(recipients, lines)
        result = await load(port, 8, flood, 0, "F", FLOOD, mix=True)
        wanted = set(range(FLOOD, FLOOD + flood))
        await _until_complete(recipients, wanted, max(90.0, flood / 20))
        finished = [recipients.done[n] for n in wanted if n in recipients.done]
        span = max(finished) - min(result["sent"]) if finished else float("nan")
        deliveries = sum(recipients.count[n] for n in wanted)
        lines.append(
            f"    sustained, 8 connections x {flood}: {len(finished) / span:8,.0f} msgs/s complete "
            f"({deliveries / span:,.0f} deliveries/s; ingest ACKed {len(result['sent']) / result['elapsed']:,.0f} "
            f"msgs/s meanwhile), complete {len(finished)}/{flood}"
        )
        pids = {name: proc.pid for name, proc in procs.items()}
        pids["recipients + bench"] = os.getpid()
        if broker_pid is not None:
            pids["broker"] = broker_pid
        lines.append("  " + rss_line("RSS after the sustained run", pids))
    finally:
        await stop_all(list(procs.values()))
    return lines, {k: plan[k] for k in plan}


async def _reference_process(args: list[str], ready: bytes) -> tuple[asyncio.subprocess.Process, bytes]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.e2e_reference", *args, stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    if not line.startswith(ready):
        raise RuntimeError(f"bench.e2e_reference {args[0]} did not start: {line!r}")
    return proc, line


async def bench_e2e(
    bootstrap: str, root: Path, seconds: float, rate: float = 200.0, workers: int = 2, broker_pid: int | None = None
) -> list[str]:
    flood = max(1000, int(300 * seconds))
    counts = [int(offered * seconds) for offered in sorted({50.0, rate})]
    patients = [range(WARM, WARM + WARM_COUNT), range(PACED, PACED + sum(counts)), range(FLOOD, FLOOD + flood)]
    config_dir, webhook_secrets = bench_config(root, patients)
    recipients = await serve_recipients(webhook_secrets)
    lines = [
        "end to end on the shipped routing map (MLLP in -> normalize -> route -> consent -> every delivery received"
        " by its HTTP recipient), A01/A03 alternating, one new patient each;",
        f"  a message counts when all its deliveries arrived; {workers} worker process(es) on each side",
    ]
    plan: dict[str, list[str]] = {}

    async def start_carehub() -> tuple[int, dict[str, asyncio.subprocess.Process]]:
        ingest, port = await carehub_process("ingest", config_dir, bootstrap, "bench.e2e.", 0)
        procs = {"ingest": ingest}
        for n in range(workers):
            procs[f"streams worker {n + 1}"] = await stream_worker(config_dir, bootstrap, "bench.e2e.", n)
        await asyncio.sleep(4 if workers > 1 else 0)  # let the group settle with every member
        return port, procs

    async def start_reference() -> tuple[int, dict[str, asyncio.subprocess.Process]]:
        topic = f"bench.e2e-ref.{int(time.time())}"
        ensure_topics(bootstrap, [topic], 4)
        ingest, line = await _reference_process(["ingest", bootstrap, topic], b"port ")
        procs = {"reference ingest": ingest}
        routes = {k: [[r, recipients.url(r), webhook_secrets[r]] for r in plan[k]] for k in plan}
        for n in range(workers):
            worker, _ = await _reference_process(["worker", bootstrap, topic, topic, json.dumps(routes)], b"ready")
            procs[f"reference worker {n + 1}"] = worker
        await asyncio.sleep(4 if workers > 1 else 0)
        return int(line.split()[1]), procs

    try:
        found, plan = await _measure(
            System("carehub (ingest + streams processes)", start_carehub), recipients, seconds, rate, flood, broker_pid
        )
        lines += found
        found, _ = await _measure(
            System("naive reference (MLLP -> Kafka -> aiokafka consumer -> same POSTs)", start_reference),
            recipients, seconds, rate, flood, broker_pid,
        )  # fmt: skip
        lines += found
        lines.append(
            f"  targets: >= 1,000 msgs/s sustained; p99 <= 100 ms at 200 msgs/s offered "
            f"(recipients: {recipients.rejected} rejected, {recipients.duplicates} repeats dropped)"
        )
    finally:
        await recipients.stop()
    return lines
