"""Webhook delivery against a real HTTP server: retries, permanence, signatures."""

from __future__ import annotations

import hmac
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from carehub.broker import free_port
from carehub.ops_http import HTTPServer
from connectors.webhook import WebhookDestination, signature
from core.records import Delivery
from streams.deliver import RetryPolicy, deliver

SECRET = "0123456789abcdef-secret"


@dataclass
class Recipient:
    statuses: list[int]
    seen: list[dict[str, str]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(dict(request.headers))
        self.bodies.append(await request.read())
        status = self.statuses.pop(0) if self.statuses else 200
        return web.json_response({"resourceType": "OperationOutcome", "issue": []}, status=status)


@pytest.fixture
async def recipient() -> AsyncIterator[tuple[Recipient, str]]:
    fake = Recipient(statuses=[])
    server = HTTPServer([web.post("/notify", fake.handle)], "127.0.0.1", 0)
    await server.start()
    yield fake, f"http://127.0.0.1:{server.port}/notify"
    await server.stop()


def _delivery(endpoint: str) -> Delivery:
    return Delivery(
        delivery_id="d1",
        idempotency_key="idem-1",
        event_id="e1",
        patient_key="RGH|MRN1",
        recipient_id="pcp",
        action="notify",
        channel="webhook",
        endpoint=endpoint,
        content_type="application/fhir+json",
        payload={"resourceType": "Bundle", "type": "message"},
        rule_id="r1",
        map_version="v1",
    )


async def _no_sleep(_: float) -> None:
    return None


POLICY = RetryPolicy(max_attempts=4, initial_s=0.01, max_s=0.05)


async def test_transient_errors_are_retried_with_the_same_idempotency_key(recipient: tuple[Recipient, str]) -> None:
    fake, url = recipient
    fake.statuses = [503, 429, 200]
    destination = WebhookDestination(5.0, secret_for=lambda _: SECRET)
    outcome = await deliver(_delivery(url), destination, POLICY, sleep=_no_sleep)
    await destination.close()
    assert (outcome.status, outcome.attempts, outcome.http_status) == ("delivered", 3, 200)
    assert {h["Idempotency-Key"] for h in fake.seen} == {"idem-1"}
    last = fake.seen[-1]
    expected = signature(SECRET, last["X-Carehub-Timestamp"], fake.bodies[-1])
    assert hmac.compare_digest(last["X-Carehub-Signature"], expected)
    assert last["Content-Type"] == "application/fhir+json"


async def test_a_4xx_answer_is_permanent(recipient: tuple[Recipient, str]) -> None:
    fake, url = recipient
    fake.statuses = [400]
    destination = WebhookDestination(5.0)
    outcome = await deliver(_delivery(url), destination, POLICY, sleep=_no_sleep)
    await destination.close()
    assert (outcome.status, outcome.attempts, outcome.http_status) == ("failed", 1, 400)
    assert outcome.reason.startswith("permanent")
    assert "X-Carehub-Signature" not in fake.seen[0], "no secret, no signature"


async def test_an_unreachable_recipient_exhausts_retries() -> None:
    destination = WebhookDestination(1.0)
    outcome = await deliver(_delivery(f"http://127.0.0.1:{free_port()}/x"), destination, POLICY, sleep=_no_sleep)
    await destination.close()
    assert (outcome.status, outcome.attempts) == ("failed", 4)
    assert "retries exhausted" in outcome.reason


def test_backoff_is_bounded_full_jitter() -> None:
    policy = RetryPolicy(max_attempts=10, initial_s=0.5, max_s=4.0)
    rng = random.Random(7)
    waits = [policy.backoff(attempt, rng) for attempt in range(1, 10)]
    assert all(0.0 <= w <= min(4.0, 0.5 * 2 ** (i)) for i, w in enumerate(waits))
    assert max(waits) > 0.5
