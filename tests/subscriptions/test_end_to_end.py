"""Subscribe, handshake, id-only admit routed and delivered, a lost notification recovered, a silent source.

Everything real: the source server speaks FHIR over HTTP, carehub reads it with
fhirclient, notifications go through the hub's rest-hook endpoint onto the
session broker, and the PCP is a real HTTP recipient.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from pathlib import Path

import aiohttp
import jsonschema
import pytest

from carehub.commands import subscribe, subscriptions
from carehub.connectors.mllp import MLLPClient, ack_code
from carehub.core.principal import CONSENT_WRITE, NOTIFY_WRITE, OPS_READ
from carehub.core.records import CareEvent, FhirNotification
from carehub.demo_receivers import DemoRecipient
from carehub.fhir_subscriptions import read_states
from carehub.hub import Hub
from carehub.mappings import ids
from tests.authkit import TEST_ISSUER, Issuer
from tests.conftest import FEED
from tests.core.test_record_versions import schema_of
from tests.delivery.test_faults import read_keyed
from tests.integration.conftest import eventually, hub_settings
from tests.integration.test_console import page, signed_in
from tests.subscriptions.conftest import SECRET, subscriptions_yaml
from tests.subscriptions.fixtures import encounter
from tests.subscriptions.source_server import SourceServer

pytestmark = pytest.mark.integration
ADT_VISIT_ENCOUNTER = ids.resource_id("Encounter", "visit", "RGH", "V77001")


def _codes(recipient: DemoRecipient) -> list[str]:
    return [r.event_code for r in recipient.received]


async def _subscribe(config_dir: Path, source: str) -> int:
    return await asyncio.to_thread(subscribe.run, argparse.Namespace(source=source, config_dir=config_dir))


async def test_subscription_to_delivery_with_gap_and_heartbeat_recovery(
    broker: str,
    config_dir: Path,
    recipients: dict[str, DemoRecipient],
    source: SourceServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    issuer: Issuer,
) -> None:
    (config_dir / "subscriptions.yaml").write_text(subscriptions_yaml(source.base_url))
    hub = Hub(hub_settings(config_dir, broker))
    await hub.start()
    try:
        monkeypatch.setenv("CAREHUB_PUBLIC_URL", f"http://127.0.0.1:{hub.http_port}")
        pcp = recipients["pcp-riverside"]

        # 1. carehub subscribe creates the Subscription; the source's handshake is accepted
        assert await _subscribe(config_dir, "ehr") == 0
        sub_id = next(iter(source.subscriptions))
        assert source.subscriptions[sub_id].handshake_status == 200
        assert source.subscriptions[sub_id].headers == {"X-Carehub-Subscription-Secret": SECRET}
        assert await _subscribe(config_dir, "ehr") == 0, "a second run updates, it does not duplicate"
        assert len(source.subscriptions) == 1

        # 2. an id-only encounter-start notification becomes an admit, routed and delivered
        source.put(encounter(status="in-progress"))
        assert await source.event(sub_id, "Encounter/e-1") == 200
        await eventually(lambda: "notification-admit" in _codes(pcp))
        admit = pcp.received[0]
        assert admit.focus == f"Encounter/{ADT_VISIT_ENCOUNTER}", "same visit identity as the ADT A01"
        assert admit.signature_ok is True
        assert "GET /fhir/Encounter/e-1" in source.requests, "the focus was read from the source"

        # the same visit's A01 arriving over MLLP afterwards is recognised and not routed again
        client = MLLPClient("127.0.0.1", hub.mllp_port)
        assert ack_code(await client.send((FEED / "02-a01-admit-rivera.hl7").read_bytes())) == "AA"
        await client.close()
        await eventually(lambda: "duplicates_suppressed" in hub.metrics.render())
        assert _codes(pcp).count("notification-admit") == 1

        # 3. a lost notification (event 2: the discharge) is noticed at event 3 and recovered by $events
        source.put(encounter(status="finished"))
        assert await source.event(sub_id, "Encounter/e-1", deliver=False) is None
        source.put(encounter(eid="e-1", status="finished"))
        assert await source.event(sub_id, "Encounter/e-1") == 200
        await eventually(lambda: "notification-discharge" in _codes(pcp))
        assert any("$events" in r for r in source.requests)
        assert _codes(pcp).count("notification-discharge") == 1, "event 3 repeats event 2's state: one discharge"

        # FHIR-sourced care events and the stored notifications hold to their published contracts
        for written_to, cls, count in [
            (hub.topics.care_events, CareEvent, 2),
            (hub.topics.fhir_inbound, FhirNotification, 3),
        ]:
            written = await read_keyed(broker, written_to, count)
            assert len(written) >= count, f"{written_to}: {len(written)} record(s)"
            for _, value in written:
                errors = [
                    e.message for e in jsonschema.Draft202012Validator(schema_of(cls)).iter_errors(json.loads(value))
                ]
                assert not errors, (written_to, errors)
        fhir_sourced = [CareEvent.from_json(v) for _, v in await read_keyed(broker, hub.topics.care_events, 2)]
        assert {e.kind for e in fhir_sourced} >= {"admit", "discharge"}, [(e.kind, e.source) for e in fhir_sourced]

        topic = hub.topics.subscription_state

        states = await read_states(broker, topic)
        ehr = states["ehr|encounters"]
        assert (ehr.health, ehr.last_event_number, ehr.missing, ehr.recovered) == ("healthy", 3, (), 1)

        # `carehub subscriptions status` reads the same state from Kafka
        monkeypatch.setenv("CAREHUB_TOPIC_PREFIX", hub.settings.kafka.topic_prefix)
        status_args = argparse.Namespace(config_dir=config_dir, bootstrap=broker, json=True)
        capsys.readouterr()
        code = await asyncio.to_thread(subscriptions.run, status_args)
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert code == 1, f"quiet/starts has not been heard from: {rows}"
        assert rows[0] | {"last_heartbeat_at": "", "last_notification_at": ""} == {
            "source": "ehr",
            "subscription": "encounters",
            "health": "healthy",
            "last_event_number": 3,
            "last_heartbeat_at": "",
            "last_notification_at": "",
            "missing": 0,
            "recovered": 1,
            "reason": "recovered 1 event(s) by $events",
        }
        assert (rows[1]["subscription"], rows[1]["health"]) == ("starts", "unknown")

        # the console's dashboard shows the same health, read from the same topic
        http = await signed_in(hub, TEST_ISSUER.token(OPS_READ))
        try:
            status, html = await page(http, hub, "/console")
        finally:
            await http.close()
        assert status == 200
        assert re.search(r'id="health-ehr-encounters">healthy<', html), "subscription health on the dashboard"
        assert re.search(r'id="health-[a-z]+-starts">unknown<', html) and "recovered 1 event(s) by $events" in html

        # 4. a source that goes silent past its heartbeat period is marked unhealthy and searched
        assert await _subscribe(config_dir, "quiet") == 0
        quiet_id = max(source.subscriptions)
        assert source.subscriptions[quiet_id].handshake_status == 200

        async def quiet_health() -> str:
            found = (await read_states(broker, topic)).get("quiet|starts")
            return found.reason if found is not None and found.health == "unhealthy" else ""

        deadline = asyncio.get_running_loop().time() + 15
        while not (reason := await quiet_health()):
            assert asyncio.get_running_loop().time() < deadline, "heartbeat timeout not detected"
            await asyncio.sleep(0.3)
        assert reason.startswith("heartbeat overdue")
        await eventually(lambda: any(r.startswith("GET /fhir/Encounter?_lastUpdated=ge") for r in source.requests))
        assert await source.heartbeat(quiet_id) == 200
        await asyncio.sleep(0.5)

        # 5. bad requests to the endpoint get 4xx with an OperationOutcome
        url = f"http://127.0.0.1:{hub.http_port}/fhir/notify/ehr/encounters"
        async with aiohttp.ClientSession() as http:
            for headers, body, want in [
                ({"X-Carehub-Subscription-Secret": "wrong"}, b"{}", 401),
                ({"X-Carehub-Subscription-Secret": SECRET}, b"{not json", 400),
                ({"X-Carehub-Subscription-Secret": SECRET}, b'{"resourceType": "Patient"}', 422),
            ]:
                sent = {"Content-Type": "application/fhir+json", **headers}
                async with http.post(url, data=body, headers=sent) as res:
                    assert res.status == want
                    assert (await res.json())["resourceType"] == "OperationOutcome"
            async with http.post(url.replace("/ehr/", "/nobody/"), data=b"{}") as res:
                assert res.status == 401, "without credentials, no answer tells which subscriptions exist"
            # a source may present a bearer token instead of the secret header
            json_type = {"Content-Type": "application/fhir+json"}
            with_token = {**json_type, **TEST_ISSUER.headers(NOTIFY_WRITE)}
            async with http.post(url, data=b"{not json", headers=with_token) as res:
                assert res.status == 400, "the token stands in for the secret; the body is then checked"
            async with http.post(url.replace("/ehr/", "/nobody/"), data=b"{}", headers=with_token) as res:
                assert res.status == 404
            wrong_scope = {**json_type, **TEST_ISSUER.headers(CONSENT_WRITE)}
            async with http.post(url, data=b"{}", headers=wrong_scope) as res:
                assert res.status == 403
    finally:
        await hub.stop()
