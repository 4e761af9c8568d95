"""Demo recipients: local FHIR ``$process-message`` endpoints over real HTTP.

They stand in for the PCP practice, payer, pharmacy and CBO during ``carehub
demo``: they accept Da Vinci notification Bundles and task transaction
Bundles, check the HMAC signature when they share a secret with the hub, discard repeats by Idempotency-Key, and keep
what they received so the demo can show what reached whom.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from carehub.connectors.webhook import SIGNATURE_HEADER, verify
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
