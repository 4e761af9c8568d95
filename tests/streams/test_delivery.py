"""Webhook delivery against a real HTTP server: retries, permanence, signatures, redirects, https."""

from __future__ import annotations

import random
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from carehub.broker import free_port
from carehub.connectors.webhook import SIGNATURE_HEADER, WebhookDestination, verify
from carehub.core.records import Delivery
from carehub.ops_http import HTTPServer
from carehub.streams.delivery_policy import RetryPolicy, deliver
from tests.conftest import REPO

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
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", last[SIGNATURE_HEADER])
    assert verify(SECRET, last[SIGNATURE_HEADER], fake.bodies[-1])
    assert not verify("another-secret-0000", last[SIGNATURE_HEADER], fake.bodies[-1])
    assert not verify(SECRET, last[SIGNATURE_HEADER], fake.bodies[-1] + b" ")
    assert last["Content-Type"] == "application/fhir+json"


def _documented_verifier() -> Any:
    """The verification snippet of docs/delivery.md, run as a recipient would copy it."""
    doc = (REPO / "docs" / "delivery.md").read_text()
    snippet = doc.split("## Verifying webhook signatures", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    scope: dict[str, Any] = {}
    exec(compile(snippet, "docs/delivery.md", "exec"), scope)
    return scope["verify_carehub_signature"]


async def test_the_documented_snippet_verifies_what_a_recipient_received(recipient: tuple[Recipient, str]) -> None:
    fake, url = recipient
    destination = WebhookDestination(5.0, secret_for=lambda _: SECRET)
    outcome = await deliver(_delivery(url), destination, POLICY, sleep=_no_sleep)
    await destination.close()
    assert outcome.status == "delivered"
    check = _documented_verifier()
    header, body = fake.seen[0][SIGNATURE_HEADER], fake.bodies[0]
    assert check(SECRET, header, body)
    assert not check(SECRET, header, body.replace(b"message", b"massage")), "a changed body fails"
    assert not check("wrong-secret-0000000", header, body)
    stamp = int(header.split(",")[0][2:])
    old = header.replace(f"t={stamp}", f"t={stamp - 301}")
    assert not check(SECRET, old, body), "a stale timestamp fails (and the signature covers it anyway)"
    assert not verify(SECRET, header, body, now=stamp + 301), "the hub's verifier has the same window"


async def test_a_recipient_without_a_secret_gets_nothing_unsigned(recipient: tuple[Recipient, str]) -> None:
    fake, url = recipient
    destination = WebhookDestination(5.0)
    outcome = await deliver(_delivery(url), destination, POLICY, sleep=_no_sleep)
    await destination.close()
    assert (outcome.status, outcome.attempts) == ("failed", 1) and "signing secret" in outcome.reason
    assert fake.seen == [], "nothing is sent unsigned"


async def test_a_4xx_answer_is_permanent(recipient: tuple[Recipient, str]) -> None:
    fake, url = recipient
    fake.statuses = [400]
    destination = WebhookDestination(5.0, secret_for=lambda _: SECRET)
    outcome = await deliver(_delivery(url), destination, POLICY, sleep=_no_sleep)
    await destination.close()
    assert (outcome.status, outcome.attempts, outcome.http_status) == ("failed", 1, 400)
    assert outcome.reason.startswith("permanent")


async def test_a_307_is_a_failure_and_the_redirect_target_receives_nothing(recipient: tuple[Recipient, str]) -> None:
    third_party, third_url = recipient  # a real server the redirect points at

    async def redirect(_: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(third_url)

    redirector = HTTPServer([web.post("/notify", redirect)], "127.0.0.1", 0)
    await redirector.start()
    destination = WebhookDestination(5.0, secret_for=lambda _: SECRET)
    try:
        outcome = await deliver(
            _delivery(f"http://127.0.0.1:{redirector.port}/notify"), destination, POLICY, sleep=_no_sleep
        )
    finally:
        await destination.close()
        await redirector.stop()
    assert (outcome.status, outcome.attempts, outcome.http_status) == ("failed", 1, 307)
    assert "redirects are not followed" in outcome.reason
    assert third_party.seen == [] and third_party.bodies == [], "the body must not be re-sent to the redirect target"


async def test_plain_http_to_a_non_loopback_endpoint_is_refused_before_sending() -> None:
    destination = WebhookDestination(1.0, secret_for=lambda _: SECRET)
    for endpoint in ("http://recipient.example.org/notify", "http://10.1.2.3/notify", "ftp://127.0.0.1/x"):
        outcome = await deliver(_delivery(endpoint), destination, POLICY, sleep=_no_sleep)
        assert (outcome.status, outcome.attempts) == ("failed", 1), endpoint
        assert "refused" in outcome.reason
    await destination.close()


async def test_an_unreachable_recipient_exhausts_retries() -> None:
    destination = WebhookDestination(1.0, secret_for=lambda _: SECRET)
    outcome = await deliver(_delivery(f"http://127.0.0.1:{free_port()}/x"), destination, POLICY, sleep=_no_sleep)
    await destination.close()
    assert (outcome.status, outcome.attempts) == ("failed", 4)
    assert "retries exhausted" in outcome.reason


def test_backoff_is_bounded_jitter_above_a_minimum() -> None:
    policy = RetryPolicy(max_attempts=10, initial_s=0.5, max_s=4.0)
    rng = random.Random(7)
    waits = [policy.backoff(attempt, rng) for attempt in range(1, 10)]
    assert all(0.5 <= w <= min(4.0, 0.5 * 2 ** (i)) for i, w in enumerate(waits)), "never below backoff_initial_s"
    assert all(w >= min(4.0, 0.5 * 2**i) / 2 for i, w in enumerate(waits)), "at least half the cap"
    assert max(waits) > 0.5
