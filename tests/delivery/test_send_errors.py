"""Failures without an HTTP answer, classified on real sockets: what a resend cannot fix is permanent."""

from __future__ import annotations

import gc
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from aiohttp import web

from carehub.broker import free_port
from carehub.connectors.webhook import WebhookDestination
from carehub.core.errors import DeliveryError
from tests.delivery.helpers import delivery


async def _error(endpoint: str) -> DeliveryError:
    destination = WebhookDestination(5.0, secret_for=lambda _: "test-secret")
    try:
        with pytest.raises(DeliveryError) as caught:
            await destination.send(delivery(1, endpoint=endpoint))
    finally:
        await destination.close()
    return caught.value


@pytest.fixture
async def untrusted_https(tmp_path: Path) -> AsyncIterator[str]:
    """An HTTPS recipient whose certificate comes from a CA the hub does not trust."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)

    async def ok(_: web.Request) -> web.Response:
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/fhir", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    yield f"https://127.0.0.1:{port}/fhir"
    await runner.cleanup()


async def test_a_host_that_does_not_resolve_is_permanent() -> None:
    error = await _error("https://nonexistent.invalid/fhir")
    assert error.permanent and "DNS lookup failed" in error.message


async def test_a_tls_failure_is_permanent(untrusted_https: str) -> None:
    error = await _error(untrusted_https)
    assert error.permanent and "TLS failure" in error.message


async def test_connection_refused_is_transient() -> None:
    error = await _error(f"http://127.0.0.1:{free_port()}/fhir")
    assert not error.permanent and "ClientConnectorError" in error.message


async def test_a_refused_attempt_leaves_no_cycle_holding_the_delivery() -> None:
    """aiohttp's connection attempt keeps each error in a list its frame holds (error -> traceback -> frame ->
    list -> error); left alone, only the cyclic collector frees it, with the delivery and its body, and a
    worker sending to a recipient that is down grew by hundreds of MB between passes (docs/benchmarks.md)."""
    destination = WebhookDestination(5.0, secret_for=lambda _: "test-secret")
    endpoint = f"http://127.0.0.1:{free_port()}/fhir"  # nothing listens
    await _error(endpoint)  # warm: whatever the first connection makes once
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for n in range(5):
            with pytest.raises(DeliveryError):
                await destination.send(delivery(n, endpoint=endpoint))
        gc.collect()
        left = [type(o).__name__ for o in gc.garbage]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        await destination.close()
    assert "frame" not in left and "traceback" not in left, sorted(set(left))
