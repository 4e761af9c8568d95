"""From MLLP bytes to a notification received over HTTP, through a real broker."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from carehub.connectors.mllp import MLLPClient, ack_code
from carehub.core.records import Delivery, DeliveryOutcome
from carehub.demo_receivers import DemoRecipient
from carehub.hub import Hub
from carehub.journal.messages import MessageQuery, MessageRow
from tests.conftest import FEED
from tests.core.test_record_versions import schema_of
from tests.delivery.test_faults import read_keyed
from tests.integration.conftest import ON_EACH_JOURNAL, eventually

pytestmark = pytest.mark.integration
MLLP_SEND = Path(sys.executable).parent / "mllp_send"


def _bundle_resources(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{e['resource']['resourceType']}/{e['resource']['id']}": e["resource"] for e in bundle["entry"]}


@ON_EACH_JOURNAL
async def test_external_mllp_client_gets_aa_and_the_pcp_gets_an_admit_notification(
    hub: Hub, recipients: dict[str, DemoRecipient], tmp_path: Path
) -> None:
    message = FEED / "02-a01-admit-rivera.hl7"
    proc = await asyncio.create_subprocess_exec(
        str(MLLP_SEND),
        "--loose",
        "--file",
        str(message),
        "--port",
        str(hub.mllp_port),
        "127.0.0.1",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    ack = out.decode()
    assert "MSA|AA|RGH0002" in ack.replace("\n", "\r"), ack

    pcp, payer = recipients["pcp-riverside"], recipients["payer-acme"]
    await eventually(lambda: pcp.received and payer.received)
    got = pcp.received[0]
    assert got.event_code == "notification-admit"
    assert got.signature_ok is True, "the PCP shares a secret: the hub signs"
    assert got.focus.startswith("Encounter/")
    assert len(got.idempotency_key) == 32

    # the records the router and the delivery worker wrote hold to their published contracts
    await eventually(lambda: hub.metrics.total("delivered") >= 2)
    for topic, cls in [(hub.topics.deliveries, Delivery), (hub.topics.delivery_outcomes, DeliveryOutcome)]:
        written = await read_keyed(hub.bootstrap, topic, 2)
        assert len(written) >= 2, f"{topic}: {len(written)} record(s)"
        for key, value in written:
            errors = [e.message for e in jsonschema.Draft202012Validator(schema_of(cls)).iter_errors(json.loads(value))]
            assert not errors, (topic, errors)
            assert key == b"RGH|MRN100234", f"{topic} is keyed by patient key, as documented"

    # the journal (SQLite or PostgreSQL) holds the receipt, both deliveries and their attempts
    journal = hub._delivery.journal  # type: ignore[union-attr]
    assert journal is not None

    def found() -> list[MessageRow]:
        return journal.messages.search(MessageQuery(control_id="RGH0002"))[0]

    await eventually(lambda: found() and found()[0].status == "delivered", 30)
    (row,) = found()
    assert (row.source, row.message_type, row.ack_code, row.patient_key) == ("mllp", "ADT^A01", "AA", "RGH|MRN100234")
    outcomes = journal.db.query("SELECT recipient_id, status FROM delivery_outcomes WHERE event_id = ?",
                                (row.event_id,))  # fmt: skip
    assert {r for r, _ in outcomes} == {"payer-acme", "pcp-riverside"}
    assert {status for _, status in outcomes} == {"delivered"}
    attempts = journal.db.query("SELECT COUNT(*) FROM delivery_attempts")
    assert attempts[0][0] >= 2


async def test_notification_content_matches_the_message(hub: Hub, recipients: dict[str, DemoRecipient]) -> None:
    client = MLLPClient("127.0.0.1", hub.mllp_port)
    ack = await client.send((FEED / "04-a03-discharge-rivera.hl7").read_bytes())
    await client.close()
    assert ack_code(ack) == "AA"
    pcp = recipients["pcp-riverside"]
    await eventually(lambda: pcp.received)
    bundle = pcp.received[0].bundle
    resources = _bundle_resources(bundle)
    header = bundle["entry"][0]["resource"]
    assert header["eventCoding"]["code"] == "notification-discharge"
    assert header["destination"][0]["endpoint"] == pcp.url
    encounter = resources[header["focus"][0]["reference"]]
    assert encounter["status"] == "finished"
    assert encounter["period"]["end"].startswith("2026-11-05T14:00:00")
    patient = resources[encounter["subject"]["reference"]]
    assert any(i["value"] == "MRN100234" for i in patient["identifier"])
    assert patient["name"][0]["family"] == "RIVERA"
    references = {r for res in resources.values() for r in _refs(res)}
    assert references <= set(resources), f"unresolved: {references - set(resources)}"


def _refs(value: Any) -> set[str]:
    if isinstance(value, dict):
        own = {value["reference"]} if isinstance(value.get("reference"), str) else set()
        return own.union(*(_refs(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_refs(v) for v in value))
    return set()
