"""Tasks worked on a recipient's own FHIR server are read back (real HTTP, a real journal) and reach the CarePlan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from carehub.connectors.auth import TokenSource
from carehub.core.records import TaskEvent
from carehub.journal import Journal, open_journal
from carehub.ops_http import HTTPServer
from carehub.streams.notify import Hub
from carehub.streams.packet.sync import plan_updates, record_packets
from carehub.streams.plan import plan_deliveries, task_requests
from carehub.streams.recipient_tasks import poll_once
from carehub.streams.routing.decide import decide
from carehub.streams.routing.load import load_routing_map
from carehub.streams.routing.model import Recipient
from carehub.streams.task_alerts import task_from_delivery
from tests.conftest import CONFIG
from tests.packet.events import discharge

HUB = Hub(base_url="https://hub.example.org/fhir")
TOKEN = "practice-server-token-0001"


class PracticeServer:
    """The practice's own FHIR server: Tasks by identifier, behind a bearer token."""

    def __init__(self) -> None:
        self.tasks: dict[str, dict[str, Any]] = {}
        self.server: HTTPServer | None = None
        self.seen: list[str] = []

    async def search(self, request: web.Request) -> web.Response:
        self.seen.append(request.headers.get("Authorization", ""))
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"resourceType": "OperationOutcome"}, status=401)
        wanted = request.query.get("identifier", "").partition("|")[2]
        found = [t for t in self.tasks.values() if t["identifier"][0]["value"] == wanted]
        return web.json_response({"resourceType": "Bundle", "type": "searchset",
                                  "entry": [{"resource": t} for t in found]})  # fmt: skip

    @property
    def base(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}/fhir"


@pytest.fixture
async def practice() -> AsyncIterator[PracticeServer]:
    server = PracticeServer()
    server.server = HTTPServer([web.get("/fhir/Task", server.search)], "127.0.0.1", 0)
    await server.server.start()
    yield server
    await server.server.stop()


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return open_journal(f"sqlite:///{tmp_path / 'journal.db'}")


async def test_a_task_completed_on_the_practice_server_updates_the_journal_and_the_careplan(
    practice: PracticeServer, journal: Journal
) -> None:
    event = discharge()
    routing_map = load_routing_map(CONFIG)
    decision = decide(event, routing_map)
    deliveries = plan_deliveries(event, decision, HUB, "2026-11-05T19:30:00Z")
    own_server = Recipient("pcp-riverside", "Riverside Family Practice", "pcp", "fhir-rest", practice.base,
                           formats=("davinci-notification", "fhir-task", "toc-packet"),
                           connection=(("bearer_token", TOKEN),))  # fmt: skip
    directory = {**routing_map.recipients, "pcp-riverside": own_server}
    for d in deliveries:
        task = task_from_delivery(d)
        if task is not None:  # delivered: the practice's server holds it too, by the hub's identifier
            journal.tasks.put(task, d.recipient_id, "hub", d.patient_key)
            practice.tasks[task["id"]] = {"resourceType": "Task", "id": f"srv-{len(practice.tasks)}",
                                          "identifier": task["identifier"], "status": "requested"}  # fmt: skip
    tasks = task_requests(event, decision)
    record_packets(journal, event, [d for d in deliveries if d.action == "packet"], tasks, HUB, "2026-11-05T19:30:00Z")
    published: list[TaskEvent] = []

    async def publish(change: TaskEvent) -> None:
        published.append(change)

    async with aiohttp.ClientSession() as http:
        tokens = TokenSource(5.0)
        assert await poll_once(journal, directory, tokens, http, publish) == 0, "nothing changed there yet"
        contact = tasks[0].key
        practice.tasks[contact]["status"] = "completed"
        practice.tasks[contact]["output"] = [{"type": {"text": "contact"}, "valueString": "called the patient"}]
        assert await poll_once(journal, directory, tokens, http, publish) == 1
        assert await poll_once(journal, directory, tokens, http, publish) == 0, "applied once"
        practice.tasks[tasks[1].key]["status"] = "draft"  # not a performer's status: refused, not applied
        assert await poll_once(journal, directory, tokens, http, publish) == 0
    assert all(seen == f"Bearer {TOKEN}" for seen in practice.seen)
    stored = journal.tasks.get(contact)
    assert stored is not None and stored["status"] == "completed" and stored["output"][0]["valueString"]
    assert journal.tasks.history(contact)[-1] == ("requested", "completed", "recipient-server:pcp-riverside")
    assert [(e.task_id, e.kind, e.to_status) for e in published] == [(contact, "status-changed", "completed")]
    updates = plan_updates(journal, published[0], hub=HUB, directory=routing_map.recipients, map_version="v")
    assert {u.recipient_id for u in updates} == {"pcp-riverside", "payer-acme"}, "the care team is told"
