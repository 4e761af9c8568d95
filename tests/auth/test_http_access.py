"""Access control on a running hub's HTTP API: tokens from a real JWKS server, minted with PyJWT.

Each case is an attacker's request against the real listener: an expired
token, another audience, another issuer, a forged signature, a missing scope,
another recipient's Task, a forged actor header; each must be refused with
401/403, an OperationOutcome, a ``WWW-Authenticate`` challenge, and a
security event in the journal that carries no PHI.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from carehub.core.principal import CONSENT_READ, CONSENT_WRITE, OPS_READ, OPS_WRITE, TASK_READ, TASK_WRITE
from carehub.hub import Hub
from carehub.journal import Journal
from tests.authkit import AUDIENCE, CONSENT_ADMIN, RECIPIENT, Issuer
from tests.conftest import CONFIG, REPO
from tests.integration.conftest import hub_settings

pytestmark = pytest.mark.integration
CONSENT = json.loads((REPO / "demo" / "consents" / "harper-part2-consent.json").read_text())


def _task(task_id: str, owner: str) -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "id": task_id,
        "status": "requested",
        "intent": "order",
        "authoredOn": "2026-03-01T10:00:00Z",
        "requester": {"reference": "Organization/hub"},
        "owner": {"reference": f"Organization/{owner}"},
    }


@pytest.fixture(scope="module")
async def hub(broker: str, issuer: Issuer, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Hub]:
    config = tmp_path_factory.mktemp("access") / "config"
    shutil.copytree(CONFIG, config, ignore=shutil.ignore_patterns("schemas"))
    running = Hub(hub_settings(config, broker))
    await running.start()
    journal = _journal(running)
    await journal.db.run(journal.tasks.put, _task("task-food", "cbo-foodbank"), "cbo-foodbank")
    await journal.db.run(journal.tasks.put, _task("task-pcp", "pcp-riverside"), "pcp-riverside")
    yield running
    await running.stop()


def _journal(hub: Hub) -> Journal:
    assert hub._delivery is not None and hub._delivery.journal is not None
    return hub._delivery.journal


async def _call(
    hub: Hub, method: str, path: str, headers: dict[str, str] | None = None, body: Any = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    url = f"http://127.0.0.1:{hub.http_port}{path}"
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url, headers=headers or {}, json=body) as response,
    ):
        text = await response.text()
        return response.status, json.loads(text) if text.startswith("{") else {}, dict(response.headers)


def _refused(status: int, body: dict[str, Any], headers: dict[str, str], want: int) -> str:
    assert status == want, body
    assert body["resourceType"] == "OperationOutcome"
    assert headers["WWW-Authenticate"].startswith('Bearer realm="carehub"')
    return str(body["issue"][0]["details"]["text"])


async def test_tokens_that_must_not_verify_get_401_with_the_reason(hub: Hub, issuer: Issuer) -> None:
    stranger = Issuer(issuer="https://evil.example/idp")  # another key, another issuer
    impostor = Issuer()  # the trusted issuer's name, another key (and the same kid)
    impostor.kid = issuer.kid
    cases = {
        "expired": issuer.token(*CONSENT_ADMIN, lifetime_s=-120),
        "another audience": issuer.token(*CONSENT_ADMIN, aud="https://other-service.test"),
        "not yet valid": issuer.token(*CONSENT_ADMIN, nbf=int(time.time()) + 600),
        "untrusted issuer": stranger.token(*CONSENT_ADMIN),
        "forged signature": impostor.token(*CONSENT_ADMIN),
        "not a JWT": "definitely-not-a-jwt",
    }
    reasons = {}
    for name, token in cases.items():
        status, body, headers = await _call(
            hub, "GET", "/fhir/Consent?patient=RRC|RRC-20931", {"Authorization": f"Bearer {token}"}
        )
        reasons[name] = _refused(status, body, headers, 401)
        assert 'error="invalid_token"' in headers["WWW-Authenticate"], name
    assert "expired" in reasons["expired"]
    assert "audience" in reasons["another audience"]
    assert "not valid yet" in reasons["not yet valid"]
    assert "issuer" in reasons["untrusted issuer"]
    assert "signature" in reasons["forged signature"]
    status, body, headers = await _call(hub, "GET", "/fhir/Consent", {"Authorization": "Basic dXNlcjpwYXNz"})
    _refused(status, body, headers, 401)
    # the right token works, so the refusals above are the checks, not a broken setup
    ok, _, _ = await _call(hub, "GET", "/fhir/Consent?patient=RRC|RRC-20931", issuer.headers(CONSENT_READ))
    assert ok == 200
    assert AUDIENCE in issuer.auth_settings().issuers[0].audience


async def test_a_forged_consent_is_refused_and_nothing_is_stored(hub: Hub, issuer: Issuer) -> None:
    status, body, headers = await _call(hub, "POST", "/fhir/Consent", body=CONSENT)
    _refused(status, body, headers, 401)
    status, body, headers = await _call(hub, "POST", "/fhir/Consent", issuer.headers(TASK_WRITE), CONSENT)
    assert "system/Consent.write" in _refused(status, body, headers, 403)
    assert 'error="insufficient_scope", scope="system/Consent.write"' in headers["WWW-Authenticate"]
    status, body, headers = await _call(hub, "POST", "/fhir/Consent", issuer.headers(CONSENT_READ), CONSENT)
    _refused(status, body, headers, 403)
    assert hub.consents.read(CONSENT["id"]) is None, "a refused consent must not take effect"
    status, body, headers = await _call(hub, "GET", "/fhir/Consent?patient=RRC|RRC-20931")
    _refused(status, body, headers, 401)
    status, stored, _ = await _call(hub, "POST", "/fhir/Consent", issuer.headers(CONSENT_WRITE), CONSENT)
    assert status == 201 and stored["id"] == CONSENT["id"]
    status, found, _ = await _call(hub, "GET", "/fhir/Consent?patient=RRC|RRC-20931", issuer.headers("system/*.read"))
    assert status == 200 and found["total"] == 1, "SMART wildcard scopes grant the matching resource scope"


async def test_a_recipient_sees_and_changes_only_its_own_tasks(hub: Hub, issuer: Issuer) -> None:
    food = issuer.headers(*RECIPIENT, recipient="cbo-foodbank", sub="foodbank-client")
    status, bundle, _ = await _call(hub, "GET", "/fhir/Task", food)
    assert status == 200 and [e["resource"]["id"] for e in bundle["entry"]] == ["task-food"]
    status, bundle, _ = await _call(hub, "GET", "/fhir/Task?owner=Organization/pcp-riverside", food)
    assert status == 200 and bundle["total"] == 0, "searching by another owner finds nothing"
    status, body, headers = await _call(hub, "GET", "/fhir/Task/task-pcp", food)
    _refused(status, body, headers, 403)
    forged = {**food, "X-Carehub-Actor": "pcp-riverside"}
    status, body, headers = await _call(hub, "PATCH", "/fhir/Task/task-pcp", forged, {"status": "completed"})
    _refused(status, body, headers, 403)
    journal = _journal(hub)
    pcp_task = await journal.db.run(journal.tasks.get, "task-pcp")
    assert pcp_task is not None and pcp_task["status"] == "requested", "another recipient's Task is untouched"

    status, task, _ = await _call(hub, "PATCH", "/fhir/Task/task-food", forged, {"status": "accepted"})
    assert status == 200 and task["status"] == "accepted"
    history = await journal.db.run(journal.tasks.history, "task-food")
    assert history[-1] == ("requested", "accepted", "token:cbo-foodbank"), "the actor comes from the token"
    assert all("pcp-riverside" not in source for _, _, source in history), "never from the header"

    unbound = issuer.headers(TASK_READ)
    status, body, headers = await _call(hub, "GET", "/fhir/Task", unbound)
    assert "bound to a recipient" in _refused(status, body, headers, 403)
    not_in_directory = issuer.headers(TASK_READ, recipient="cbo-elsewhere")
    status, body, headers = await _call(hub, "GET", "/fhir/Task", not_in_directory)
    _refused(status, body, headers, 403)
    no_scope = issuer.headers(TASK_READ, recipient="cbo-foodbank")
    status, body, headers = await _call(hub, "PATCH", "/fhir/Task/task-food", no_scope, {"status": "in-progress"})
    _refused(status, body, headers, 403)


async def test_operations_routes_need_the_ops_role(hub: Hub, issuer: Issuer) -> None:
    for method, path in [("GET", "/metrics"), ("GET", "/admin/dlq"), ("GET", "/admin/deliveries/x")]:
        status, body, headers = await _call(hub, method, path, issuer.headers(*CONSENT_ADMIN))
        _refused(status, body, headers, 403)
    status, body, headers = await _call(hub, "POST", "/admin/dlq/replay", issuer.headers(OPS_READ), {"all": True})
    _refused(status, body, headers, 403)
    status, body, _ = await _call(hub, "POST", "/admin/dlq/replay", issuer.headers(OPS_WRITE), {"all": True})
    assert status == 200 and body["replayed"] == []
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{hub.http_port}/metrics", headers=issuer.headers(OPS_READ)) as response,
    ):
        assert response.status == 200 and response.content_type == "text/plain"


async def test_every_refusal_is_journaled_without_phi(hub: Hub, issuer: Issuer) -> None:
    journal = _journal(hub)
    before = len(await journal.db.run(journal.security.events))
    expired = {"Authorization": f"Bearer {issuer.token(*CONSENT_ADMIN, lifetime_s=-120)}"}
    await _call(hub, "GET", "/fhir/Consent?patient=RRC|RRC-20931", expired)
    await _call(hub, "GET", "/fhir/Consent/harper-rrc-2026")
    await _call(hub, "GET", "/fhir/Task/task-pcp", issuer.headers(*RECIPIENT, recipient="cbo-foodbank"))
    events = (await journal.db.run(journal.security.events))[before:]
    assert len(events) == 3
    assert [e["entity"][0]["what"]["display"] for e in events] == [
        "GET /fhir/Consent",
        "GET /fhir/Consent/{id}",
        "GET /fhir/Task/{id}",
    ]
    assert [e["entity"][0]["detail"][0]["valueString"] for e in events] == ["401", "401", "403"]
    assert events[2]["agent"][0]["who"]["identifier"]["value"] == "test-client"
    text = json.dumps(events)
    for phi in ("RRC-20931", "harper", "task-pcp", "Bearer"):
        assert phi not in text, f"{phi!r} must not be in a security event"


async def test_health_and_ready_stay_open(hub: Hub) -> None:
    for path in ("/health", "/ready"):
        status, _, _ = await _call(hub, "GET", path)
        assert status == 200


async def test_admin_refusals_are_rendered_like_every_other_http_error(hub: Hub, issuer: Issuer) -> None:
    """The DLQ API's own 400/404 answers are OperationOutcomes, as the FHIR endpoints' and the auth layer's."""
    for path, want, code in [("/admin/dlq?state=bogus", 400, "invalid"), ("/admin/deliveries/nope", 404, "not-found")]:
        status, body, headers = await _call(hub, "GET", path, issuer.headers(OPS_READ))
        assert status == want and headers["Content-Type"].startswith("application/fhir+json")
        (issue,) = body["issue"]
        assert body["resourceType"] == "OperationOutcome" and issue["code"] == code
        assert issue["details"]["coding"] == [{"system": "urn:carehub:error", "code": code}]
