"""The offer cascade against real HTTP vendor endpoints over a controllable clock (issue 19).

A hub (real broker, stream workers, journal, Task endpoint with token auth) offers orders to the
shipped directory's transport vendors, whose endpoints are aiohttp servers here. The vendors
answer as vendors do, on the hub's Task endpoint with their own tokens: one declines, one stays
silent, one accepts late (refused: the offer was withdrawn), one completes late. Time moves
only when the test says so (core.clock.ManualClock); the engine ticks when the test asks.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from carehub.broker import free_port
from carehub.core.clock import ManualClock
from carehub.core.principal import OPS_READ, OPS_WRITE, PHI_READ
from carehub.core.records import Delivery
from carehub.hub import Hub
from carehub.journal import Journal
from carehub.journal.logistics import Order
from carehub.ops_http import HTTPServer
from carehub.streams.logistics.engine import LogisticsEngine
from carehub.streams.logistics.fhir import order_bundle
from carehub.streams.routing.model import LOGISTICS_DESK
from tests.authkit import RECIPIENT, Issuer
from tests.delivery.helpers import produce
from tests.delivery.test_faults import settings, start_hub
from tests.integration.conftest import eventually

pytestmark = pytest.mark.integration
CAREHUB = str(Path(sys.executable).parent / "carehub")
START = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)  # a Tuesday, 08:00 at UTC-06:00


@dataclass
class Endpoint:
    """A vendor's (or the care team's) webhook: records every Bundle it receives."""

    port: int = field(default_factory=free_port)
    received: list[dict[str, Any]] = field(default_factory=list)
    server: HTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir/$process-message"

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(json.loads(await request.read()))
        return web.json_response({"resourceType": "OperationOutcome", "issue": []})

    def offers(self, order_id: str) -> list[str]:
        """The Task ids of the offers of one order received (one per offer, repeats included)."""
        found = []
        for b in self.received:
            resources = [e["resource"] for e in b["entry"] if e.get("request", {}).get("method") == "POST"]
            orders = [r["identifier"][0]["value"] for r in resources if r["resourceType"] == "ServiceRequest"]
            tasks = [r["identifier"][0]["value"] for r in resources if r["resourceType"] == "Task"]
            found += tasks if order_id in orders else []
        return found

    def steps(self, order_id: str) -> list[str]:
        """The steps of one order this member of the care team was told, in order."""
        return [
            b["entry"][0]["resource"]["eventCoding"]["code"]
            for b in self.received
            if b["type"] == "message" and b["entry"][0]["resource"]["focus"][0]["reference"].endswith(f"/{order_id}")
        ]

    async def start(self) -> None:
        self.server = HTTPServer([web.post("/fhir/{op}", self.handle)], "127.0.0.1", self.port)
        await self.server.start()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()


def order(order_id: str, zip_code: str = "62704", window: str = "2026-12-02T10:00:00-06:00") -> Order:
    bare = Order(
        id=order_id, patient_key="RGH|L1", service="nemt", capability="wheelchair", payer="PAYER-ACME",
        zip=zip_code, county="17167", window_start=window, window_end=window.replace("T10:", "T12:"),
        offer_s=1800.0, schedule_s=4 * 3600.0, max_offers=5, notify=("pcp-riverside",),
    )  # fmt: skip
    patient = {"resourceType": "Patient", "address": [{"line": ["88 RIVER RD"], "postalCode": zip_code}]}
    return replace(bare, resource=order_bundle(bare, patient, "88 RIVER RD", "2026-12-01T14:00:00Z"))


def holders(journal: Journal, order_id: str) -> list[str]:
    return [o.vendor_id for o in journal.logistics.offers(order_id) if o.state in ("offered", "accepted", "scheduled")]


@pytest.fixture(scope="module")
async def running(broker: str, tmp_path_factory: pytest.TempPathFactory, issuer: Issuer) -> Any:
    """One hub for the module (the vendors' endpoints named in the directory through the environment)."""
    endpoints = {name: Endpoint() for name in ("nemt-metro", "nemt-prairie", "pcp-riverside")}
    with pytest.MonkeyPatch.context() as env:
        for name, endpoint in endpoints.items():
            env.setenv(f"CAREHUB_ENDPOINT_{name.upper().replace('-', '_')}", endpoint.url)
            await endpoint.start()
        hub = await start_hub(settings(tmp_path_factory.mktemp("logistics"), broker))
        parts = hub._delivery
        assert parts is not None and parts.logistics is not None and parts.journal is not None
        assert parts._logistics is not None
        parts._logistics.cancel()  # the engine ticks when a test says so
        yield hub, parts.logistics, parts.journal, endpoints
        await hub.stop()
    for endpoint in endpoints.values():
        await endpoint.stop()


@pytest.fixture
def world(running: Any) -> Any:
    """The module's hub with a fresh clock, at START, and a fresh timer lease."""
    hub, engine, journal, endpoints = running
    clock = ManualClock(START)
    engine.clock = clock  # the engine's timers run on the test's clock
    engine.holder = uuid.uuid4().hex
    journal.db.execute("DELETE FROM logistics_lease")  # the hub's start-up tick held it on the real clock
    return hub, engine, journal, clock, endpoints


async def answer(hub: Hub, issuer: Issuer, vendor: str, task_id: str, body: dict[str, Any]) -> int:
    url = f"http://127.0.0.1:{hub.http_port}/fhir/Task/{task_id}"
    headers = issuer.headers(*RECIPIENT, recipient=vendor)
    async with aiohttp.ClientSession(headers=headers) as http:
        for _ in range(50):  # the hub knows the Task once the offer's delivery is journaled, a moment after the POST
            async with http.patch(url, json=body) as response:
                if response.status != 404:
                    return response.status
            await asyncio.sleep(0.1)
        return 404


async def test_decline_silence_and_a_late_accept_cascade_to_the_end(world: Any, issuer: Issuer) -> None:
    hub, engine, journal, clock, ep = world
    metro, prairie, pcp = ep["nemt-metro"], ep["nemt-prairie"], ep["pcp-riverside"]
    assert journal.logistics.place(order("o-decline"), "2026-12-01T14:00:00Z")
    await engine.tick()
    assert holders(journal, "o-decline") == ["nemt-metro"], "in network, rank 1: Metro first"
    await eventually(lambda: len(metro.offers("o-decline")) == 1)
    task = metro.offers("o-decline")[0]
    assert await answer(hub, issuer, "nemt-prairie", task, {"status": "accepted"}) == 403, "not Prairie's offer"
    declined = {"status": "rejected", "statusReason": {"text": "no wheelchair van free on 12/2"}}
    assert await answer(hub, issuer, "nemt-metro", task, declined) == 200
    await engine.tick()
    assert holders(journal, "o-decline") == ["nemt-prairie"]
    await eventually(lambda: len(prairie.offers("o-decline")) == 1)
    late = prairie.offers("o-decline")[0]
    clock.advance(29 * 60)
    await engine.tick()
    assert holders(journal, "o-decline") == ["nemt-prairie"], "the offer window has a minute left"
    clock.advance(2 * 60)  # Prairie stays silent past its 30 minutes
    await engine.tick()
    assert holders(journal, "o-decline") == []
    assert journal.logistics.get("o-decline").state == "exhausted"
    assert await answer(hub, issuer, "nemt-prairie", late, {"status": "accepted"}) == 422, "accepted late: withdrawn"
    offers = journal.logistics.offers("o-decline")
    assert [(o.vendor_id, o.state) for o in offers] == [("nemt-metro", "declined"), ("nemt-prairie", "expired")]
    assert offers[0].reason == "no wheelchair van free on 12/2"
    steps = [s["step"] for s in journal.logistics.steps("o-decline")]
    assert steps == ["placed", "offered", "declined", "offered", "expired", "exhausted"]
    await eventually(lambda: len(pcp.steps("o-decline")) == 6)
    assert pcp.steps("o-decline") == [f"order-{s}" for s in steps], "the PCP is told of each step, in order"
    assert metro.offers("o-decline") == [task] and prairie.offers("o-decline") == [late], (
        "each offer reached its vendor once"
    )


async def test_accept_schedule_and_complete_late_raise_the_sla_alerts(world: Any, issuer: Issuer) -> None:
    hub, engine, journal, clock, ep = world
    metro, pcp = ep["nemt-metro"], ep["pcp-riverside"]
    journal.logistics.place(order("o-late"), "2026-12-01T14:00:00Z")
    await engine.tick()
    await eventually(lambda: len(metro.offers("o-late")) == 1)
    task = metro.offers("o-late")[0]
    assert await answer(hub, issuer, "nemt-metro", task, {"status": "accepted"}) == 200
    await engine.tick()
    assert journal.logistics.get("o-late").state == "accepted"
    clock.advance(4 * 3600 + 1)  # accepted, not scheduled within 4 h
    await engine.tick()
    assert await answer(hub, issuer, "nemt-metro", task, {"status": "in-progress"}) == 200
    await engine.tick()
    assert journal.logistics.get("o-late").state == "scheduled"
    clock.moment = datetime(2026, 12, 2, 18, 30, tzinfo=UTC)  # 12:30 local: the window closed at 12:00
    await engine.tick()
    assert await answer(hub, issuer, "nemt-metro", task, {"status": "completed"}) == 200
    await engine.tick()
    done = journal.logistics.get("o-late")
    assert done.state == "completed" and done.late and done.vendor_id == "nemt-metro"
    steps = [s["step"] for s in journal.logistics.steps("o-late")]
    assert steps == ["placed", "offered", "accepted", "accepted-not-scheduled", "scheduled",
                     "not-completed-in-window", "completed-late"]  # fmt: skip
    await eventually(lambda: "order-completed-late" in pcp.steps("o-late"))
    stats = journal.logistics.performance("nemt")["nemt-metro"]
    assert stats["finished"] == 1 and stats["on_time"] == 0 and stats["on_time_rate"] == 0.0


async def test_a_restart_mid_offer_neither_loses_nor_duplicates_it(world: Any) -> None:
    hub, engine, journal, clock, ep = world
    metro = ep["nemt-metro"]

    async def crash(_: object) -> None:
        raise ConnectionError("the worker died before it published the offer")

    dying = LogisticsEngine(journal, engine.directory, crash, hub_url="http://hub", clock=clock, holder="dying")
    engine.holder = "survivor"
    journal.db.execute("DELETE FROM logistics_lease")  # the hub's start-up tick held it on the real clock
    journal.logistics.place(order("o-restart"), "2026-12-01T14:00:00Z")
    with pytest.raises(ConnectionError):
        await dying.tick()
    assert holders(journal, "o-restart") == ["nemt-metro"], "the offer is journaled before it is published"
    assert not await engine.tick(), "the dying worker's lease still runs"
    clock.advance(16)
    assert await engine.tick(), "its lease ran out: the survivor takes over"
    await engine.tick()
    await eventually(lambda: len(metro.offers("o-restart")) == 1)
    assert [o.seq for o in journal.logistics.offers("o-restart")] == [1], "the same offer, not a second one"
    published = journal.logistics.offers("o-restart")[0].published_at
    assert published is not None
    engine.store.db.execute("UPDATE offers SET published_at = NULL WHERE order_id = 'o-restart'")
    await engine.tick()  # died after publishing, before marking: published again with the same delivery id
    await eventually(lambda: hub.metrics.total("delivery_redelivered_skipped") >= 1)
    assert len(metro.offers("o-restart")) == 1, "the vendor gets the offer once"
    assert holders(journal, "o-restart") == ["nemt-metro"]


async def test_a_planner_places_an_order_by_hand_and_follows_it(world: Any, issuer: Issuer) -> None:
    hub, engine, journal, clock, ep = world
    base = f"http://127.0.0.1:{hub.http_port}"
    body = {
        "patient_key": "RGH|L2", "service": "nemt", "capability": "stretcher", "zip": "62704",
        "window": {"start": "2026-12-03T09:00:00-06:00", "end": "2026-12-03T10:00:00-06:00"},
        "address": "88 RIVER RD", "notify": ["pcp-riverside"],
    }  # fmt: skip
    planner = issuer.headers(OPS_WRITE, PHI_READ, sub="planner-7")
    async with aiohttp.ClientSession(headers=planner) as http:
        async with http.post(f"{base}/logistics/orders", json={**body, "capability": "sedan", "zip": "627"}) as r:
            problems = (await r.json())["problems"]
            assert r.status == 422 and len(problems) == 2, problems  # every problem at once
        async with http.post(f"{base}/logistics/orders", json=body) as r:
            placed = await r.json()
            assert r.status == 201 and placed["state"] == "open" and placed["placed_by"].endswith("planner-7")
        async with http.post(f"{base}/logistics/orders", json=body) as r:
            assert r.status == 200, "the same order again is the same order"
    await engine.tick()
    # only Prairie has a stretcher: Metro is never offered it
    await eventually(lambda: len(ep["nemt-prairie"].offers(placed["id"])) == 1)
    env = {**os.environ, "CAREHUB_TOKEN": issuer.token(OPS_READ, PHI_READ)}

    async def cli(*argv: str, token: bool = True) -> subprocess.CompletedProcess[str]:
        bare = {k: v for k, v in env.items() if token or k != "CAREHUB_TOKEN"}
        run = [CAREHUB, "orders", *argv, "--hub", base]
        return await asyncio.to_thread(subprocess.run, run, env=bare, capture_output=True, text=True, timeout=60)

    shown = await cli("show", placed["id"])
    assert shown.returncode == 0, shown.stderr
    assert "offer 1 to nemt-prairie: offered" in shown.stdout and "placed" in shown.stdout
    listed = await cli("list", "--state", "offered", "--json")
    offered = json.loads(listed.stdout)
    assert placed["id"] in [o["id"] for o in offered] and {o["state"] for o in offered} == {"offered"}
    nobody = await cli("list", token=False)
    assert nobody.returncode == 2 and "HTTP 401" in nobody.stderr


def withdrawn(endpoint: Endpoint) -> list[str]:
    """Task ids the endpoint got back as cancelled (a withdrawn offer)."""
    return [
        e["resource"]["identifier"][0]["value"]
        for b in endpoint.received
        if b["type"] == "transaction"
        for e in b["entry"]
        if e["request"]["method"] == "PUT" and e["resource"]["status"] == "cancelled"
    ]


async def test_a_cancelled_visit_cancels_its_order_and_withdraws_the_offer(world: Any, issuer: Issuer) -> None:
    """An order reaches the desk as a delivery (consent gate, journal); the visit's cancel follows it there."""
    hub, engine, journal, clock, ep = world
    metro = ep["nemt-metro"]
    desk = Delivery(
        delivery_id="o-desk", idempotency_key="o-desk", event_id="e-discharge", patient_key="RGH|L1",
        recipient_id=LOGISTICS_DESK.id, action="order", channel=LOGISTICS_DESK.channel,
        endpoint=LOGISTICS_DESK.endpoint, content_type="application/fhir+json",
        payload=order("o-desk").resource or {}, rule_id="heart-failure-logistics", map_version="t",
    )  # fmt: skip
    await produce(hub.bootstrap, hub.topics.deliveries, [desk])
    await eventually(lambda: journal.logistics.get("o-desk") is not None)
    await engine.tick()
    await eventually(lambda: len(metro.offers("o-desk")) == 1)
    task = metro.offers("o-desk")[0]
    cancel = replace(desk, delivery_id="c-desk", idempotency_key="c-desk", event_id="e-cancel", corrects="o-desk",
                     payload={"resourceType": "Bundle", "type": "message", "entry": []})  # fmt: skip
    await produce(hub.bootstrap, hub.topics.deliveries, [cancel])
    await eventually(lambda: journal.logistics.get("o-desk").state == "cancelled")
    assert [o.state for o in journal.logistics.offers("o-desk")] == ["withdrawn"]
    await engine.tick()
    await eventually(lambda: task in withdrawn(metro))
    assert await answer(hub, issuer, "nemt-metro", task, {"status": "accepted"}) == 422
    # the offer that expired in the first test's way is withdrawn at its vendor too
    journal.logistics.place(order("o-expire"), "2026-12-01T14:00:00Z")
    await engine.tick()
    await eventually(lambda: len(metro.offers("o-expire")) == 1)
    clock.advance(31 * 60)
    await engine.tick()
    await eventually(lambda: metro.offers("o-expire")[0] in withdrawn(metro))
