"""Demo recipients: local FHIR ``$process-message`` endpoints over real HTTP.

They stand in for the PCP practice, payer, pharmacy and CBO during ``carehub
demo``: they accept Da Vinci notification Bundles and task transaction
Bundles, check the HMAC signature when they share a secret with the hub, discard repeats by Idempotency-Key, and keep
what they received so the demo can show what reached whom. The logistics vendors (``DemoVendor``)
also answer the offers they receive, on the hub's Task endpoint, as a vendor's system would.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
from aiohttp import web

from carehub.connectors.webhook import SIGNATURE_HEADER, verify
from carehub.core.clock import now
from carehub.ops_http import HTTPServer

OK_OUTCOME = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "information", "code": "informational", "diagnostics": "notification accepted"}],
}


@dataclass
class Received:
    event_code: str
    focus: str
    idempotency_key: str
    signature_ok: bool | None
    bundle: dict[str, Any] = field(repr=False, default_factory=dict)


def _summary(bundle: dict[str, Any]) -> tuple[str, str]:
    """(event code, focus) of a notification (message Bundle) or a task (transaction Bundle with a Task).

    A task's code is ``task:`` plus its ServiceRequest code (tcm-contact, sdoh-referral, ...); a Task
    update (a correction) is ``task-<status>`` (``task-cancelled``) with the Task identifier as focus.
    """
    assert bundle["resourceType"] == "Bundle"
    if bundle["type"] == "transaction":
        found = {e["resource"]["resourceType"]: e["resource"] for e in bundle["entry"]}
        if "ServiceRequest" not in found:
            task = found["Task"]
            return f"task-{task['status']}", str(task["identifier"][0]["value"])
        task, request = found["Task"], found["ServiceRequest"]
        return "task:" + request["code"]["coding"][0]["code"], task["focus"]["reference"]
    header = bundle["entry"][0]["resource"]
    assert bundle["type"] == "message" and header["resourceType"] == "MessageHeader"
    return header["eventCoding"]["code"], header.get("focus", [{}])[0].get("reference", "")


@dataclass
class DemoRecipient:
    recipient_id: str
    secret: str | None = None
    received: list[Received] = field(default_factory=list)
    duplicates: int = 0
    rejected: int = 0
    server: HTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}/fhir/$process-message"

    def _verify(self, request: web.Request, body: bytes) -> bool | None:
        if not self.secret:
            return None
        return verify(self.secret, request.headers.get(SIGNATURE_HEADER, ""), body)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            bundle: dict[str, Any] = json.loads(body)
            code, focus = _summary(bundle)
        except (ValueError, KeyError, IndexError, TypeError, AssertionError):
            self.rejected += 1
            return web.json_response(
                {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid"}]}, status=400
            )
        verified = self._verify(request, body)
        if verified is False:
            self.rejected += 1
            return web.json_response(
                {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "security"}]}, status=401
            )
        key = request.headers.get("Idempotency-Key", "")
        if any(r.idempotency_key == key for r in self.received):
            self.duplicates += 1
            return web.json_response(OK_OUTCOME)
        self.received.append(Received(code, focus, key, verified, bundle))
        return web.json_response(OK_OUTCOME)

    async def start(self) -> None:
        self.server = HTTPServer([web.post("/fhir/$process-message", self.handle)], "127.0.0.1", 0)
        await self.server.start()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()


#: How each demo vendor answers an offer: the first transport vendor declines, everyone else takes it.
DEMO_ANSWERS = {"nemt-metro": "no wheelchair van free that afternoon"}
#: Pause between a vendor's answers, so the logistics engine (a tick a second) sees each step.
STEP_PAUSE_S = 1.2


def offered_task(bundle: dict[str, Any]) -> str | None:
    """The Task id of an offer (a transaction Bundle whose Task is businessStatus offered)."""
    if bundle.get("type") != "transaction":
        return None
    for entry in bundle.get("entry", []):
        task = entry.get("resource", {})
        codes = [c.get("code") for c in task.get("businessStatus", {}).get("coding", [])]
        if task.get("resourceType") == "Task" and "offered" in codes:
            return str(task["identifier"][0]["value"])
    return None


def window_start(bundle: dict[str, Any]) -> datetime:
    """When the offer's window opens (its ServiceRequest's occurrencePeriod.start)."""
    for entry in bundle.get("entry", []):
        resource = entry.get("resource", {})
        if resource.get("resourceType") == "ServiceRequest":
            return datetime.fromisoformat(str(resource["occurrencePeriod"]["start"]).replace("Z", "+00:00"))
    return now()


@dataclass
class DemoVendor(DemoRecipient):
    """A logistics vendor: answers each offer on the hub's Task endpoint with its own token.

    ``decline``: the reason it declines with; empty, it accepts and schedules, and completes when the
    order's window has opened on the hub's clock (the oxygen at discharge; the ride on its own day).
    """

    decline: str = ""
    hub_url: str = ""
    token: str = ""
    answers: list[tuple[str, str, int]] = field(default_factory=list)
    _work: set[asyncio.Task[None]] = field(default_factory=set)

    async def handle(self, request: web.Request) -> web.Response:
        before = len(self.received)
        response = await super().handle(request)
        if len(self.received) > before and self.hub_url:
            task_id = offered_task(self.received[-1].bundle)
            if task_id is not None:
                work = asyncio.create_task(self._answer(task_id, window_start(self.received[-1].bundle)))
                self._work.add(work)
                work.add_done_callback(self._work.discard)
        return response

    async def _patch(self, http: aiohttp.ClientSession, task_id: str, body: dict[str, Any]) -> int:
        url = f"{self.hub_url}/fhir/Task/{task_id}"
        for _ in range(100):  # the Task is known to the hub once the delivery is journaled: a moment after this
            async with http.patch(url, json=body) as r:
                if r.status != 404:
                    self.answers.append((task_id, str(body["status"]), r.status))
                    return r.status
            await asyncio.sleep(0.1)
        return 404

    async def _answer(self, task_id: str, starts: datetime) -> None:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {self.token}"}) as http:
            if self.decline:
                await self._patch(http, task_id, {"status": "rejected", "statusReason": {"text": self.decline}})
                return
            for status in ("accepted", "in-progress", "completed"):
                if status == "completed" and now() < starts:
                    return  # a ride on the day of the follow-up: scheduled now, completed then
                await asyncio.sleep(STEP_PAUSE_S)
                if await self._patch(http, task_id, {"status": status}) != 200:
                    return

    async def stop(self) -> None:
        for work in list(self._work):
            work.cancel()
        await super().stop()
