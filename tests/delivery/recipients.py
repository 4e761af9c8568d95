"""The far side of delivery, speaking real protocols: an HTTP recipient that can go down."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from aiohttp import web

from carehub.broker import free_port
from carehub.ops_http import HTTPServer


@dataclass
class HttpRecipient:
    """Records (idempotency key, patient, seq) per request; answers ``status``; stops and restarts on one port."""

    status: int = 200
    port: int = field(default_factory=free_port)
    seen: list[tuple[str, str, int]] = field(default_factory=list)
    server: HTTPServer | None = None
    #: Extra response headers (e.g. Retry-After) and the loop time of every request.
    headers: dict[str, str] = field(default_factory=dict)
    arrivals: list[float] = field(default_factory=list)
    #: Idempotency keys answered 503 the first time they arrive (a recipient's passing hiccup).
    fail_first: set[str] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    async def handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        seq = int(body["entry"][0].get("seq", -1))
        patient = str(body["entry"][0].get("patient", ""))
        self.seen.append((request.headers["Idempotency-Key"], patient, seq))
        self.arrivals.append(asyncio.get_running_loop().time())
        outcome = {"resourceType": "OperationOutcome", "issue": []}
        key = request.headers["Idempotency-Key"]
        if key in self.fail_first:
            self.fail_first.discard(key)
            return web.json_response(outcome, status=503, headers=self.headers)
        return web.json_response(outcome, status=self.status, headers=self.headers)

    async def start(self) -> None:
        self.server = HTTPServer(
            [web.post("/fhir/{op}", self.handle), web.post("/fhir", self.handle)], "127.0.0.1", self.port
        )
        await self.server.start()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None

    def counts(self) -> dict[str, int]:
        """Idempotency key -> how many times it arrived."""
        counts: dict[str, int] = {}
        for key, _, _ in self.seen:
            counts[key] = counts.get(key, 0) + 1
        return counts
