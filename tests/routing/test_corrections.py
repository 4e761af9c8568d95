"""Corrections through a running hub (real broker, real HTTP recipients): cancels, merges, tasks by patient.

A13 after an A03: every recipient told of the discharge is told it was cancelled and its Tasks are
cancelled (at the recipient and in the journal), and the open follow-up signal is cleared. A11: the
admission's recipients get the cancelled Encounter. A40: the retired record's recipients hear of
the merge, and its Tasks and signals follow the survivor. Tasks are found by patient; an overdue
Task reaches the configured care manager and shows businessStatus overdue.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from carehub.connectors.mllp import MLLPClient, ack_code
from carehub.core.records import TaskEvent
from carehub.demo_receivers import DemoRecipient, Received
from carehub.hub import Hub
from carehub.streams.task_alerts import check_overdue
from tests.authkit import RECIPIENT, Issuer
from tests.conftest import FEED, REPO
from tests.integration.conftest import eventually, hub_settings

pytestmark = pytest.mark.integration
PATIENT = "RGH|MRN100871"
CM_SECRET = "care-manager-test-secret-0001"


@pytest.fixture
async def others(monkeypatch: pytest.MonkeyPatch, config_dir: Path) -> AsyncIterator[dict[str, DemoRecipient]]:
    """Pharmacy, food bank and a care manager (added to the directory as the overdue owner)."""
    with (config_dir / "recipients.yaml").open("a", encoding="utf-8") as f:
        f.write(
            "  - id: cm-springfield\n    name: Springfield Care Management\n    kind: care-manager\n"
            "    channel: webhook\n    endpoint: ${CAREHUB_ENDPOINT_CM_SPRINGFIELD}\n"
            "    secret: ${CAREHUB_SECRET_CM_SPRINGFIELD}\n    formats: [davinci-notification]\n"
        )
    started = {
        "pharmacy-mainst": DemoRecipient("pharmacy-mainst"),
        "cbo-foodbank": DemoRecipient("cbo-foodbank"),
        "cm-springfield": DemoRecipient("cm-springfield", CM_SECRET),
    }
    for recipient in started.values():
        await recipient.start()
    monkeypatch.setenv("CAREHUB_ENDPOINT_PHARMACY_MAINST", started["pharmacy-mainst"].url)
    monkeypatch.setenv("CAREHUB_ENDPOINT_CBO_FOODBANK", started["cbo-foodbank"].url)
    monkeypatch.setenv("CAREHUB_ENDPOINT_CM_SPRINGFIELD", started["cm-springfield"].url)
    monkeypatch.setenv("CAREHUB_SECRET_CM_SPRINGFIELD", CM_SECRET)
    yield started
    for recipient in started.values():
        await recipient.stop()


@pytest.fixture
async def hub(
    broker: str, config_dir: Path, recipients: dict[str, DemoRecipient], others: dict[str, DemoRecipient],
    issuer: Issuer,
) -> AsyncIterator[Hub]:  # fmt: skip
    settings = hub_settings(config_dir, broker)
    running = Hub(replace(settings, delivery=replace(settings.delivery, overdue_owner="cm-springfield")))
    await running.start()
    yield running
    await running.stop()


async def _send(port: int, *messages: bytes) -> None:
    client = MLLPClient("127.0.0.1", port)
    try:
        for message in messages:
            assert ack_code(await client.send(message)) == "AA"
    finally:
        await client.close()


def _feed(name: str, **swap: str) -> bytes:
    raw = (FEED / name).read_bytes()
    for old, new in swap.items():
        raw = raw.replace(old.encode(), new.encode())
    return raw


def _as(raw: bytes, trigger: str, structure: str, control: str) -> bytes:
    """The message re-typed as another trigger (MSH-9, EVN-1) with its own control id."""
    header, _, rest = raw.partition(b"\r")
    fields = header.split(b"|")
    fields[8], fields[9] = f"ADT^{trigger}^{structure}".encode(), control.encode()
    evn = rest.split(b"\r", 1)
    evn[0] = b"EVN|" + trigger.encode() + evn[0][len(b"EVN|A01") :]
    return b"|".join(fields) + b"\r" + b"\r".join(evn)


def _resource(got: Received, resource_type: str) -> dict[str, Any]:
    return next(e["resource"] for e in got.bundle["entry"] if e["resource"]["resourceType"] == resource_type)


def _codes(recipient: DemoRecipient) -> list[str]:
    return [r.event_code for r in recipient.received]


def _signal(hub: Hub, flag: str) -> int:
    return hub.metrics.get("signal", flag=flag)


async def _tasks(hub: Hub, issuer: Issuer, recipient: str, query: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{hub.http_port}/fhir/Task?{query}"
    async with (
        aiohttp.ClientSession(headers=issuer.headers(*RECIPIENT, recipient=recipient)) as http,
        http.get(url) as r,
    ):
        assert r.status == 200, await r.text()
        return [e["resource"] for e in (await r.json())["entry"]]


async def test_a_cancelled_discharge_cancels_its_tasks_at_every_recipient(
    hub: Hub, recipients: dict[str, DemoRecipient], others: dict[str, DemoRecipient], issuer: Issuer
) -> None:
    pcp, payer = recipients["pcp-riverside"], recipients["payer-acme"]
    pharmacy, cbo, cm = others["pharmacy-mainst"], others["cbo-foodbank"], others["cm-springfield"]
    admit, discharge = _feed("05-a01-admit-okafor.hl7"), _feed("07-a03-discharge-okafor.hl7")
    await _send(hub.mllp_port, admit, discharge)
    # the PCP: A01, A03, two Tasks and the transition-of-care packet (last); the payer: A01, A03, the packet
    await eventually(lambda: len(pcp.received) == 5 and pharmacy.received and cbo.received and len(payer.received) == 3)
    assert _codes(pcp)[4] == _codes(payer)[2] == "toc-packet"
    task_keys = {r.bundle["entry"][-1]["resource"]["identifier"][0]["value"] for r in [*pcp.received[2:4],
                 pharmacy.received[0], cbo.received[0]]}  # fmt: skip
    sent_task = _resource(pcp.received[2], "Task")
    assert sent_task["for"]["identifier"] == {"system": "urn:carehub:patient", "value": PATIENT}

    # a coordinator lists the patient's open Tasks (a recipient sees only its own)
    mine = await _tasks(hub, issuer, "pcp-riverside", f"patient={PATIENT}&status=requested")
    assert len(mine) == 2 and all(t["for"] == {"identifier": {"system": "urn:carehub:patient", "value": PATIENT}}
                                  for t in mine)  # fmt: skip
    by_identifier = await _tasks(hub, issuer, "pcp-riverside", f"subject:identifier=urn:carehub:patient|{PATIENT}")
    assert sorted(t["id"] for t in by_identifier) == sorted(t["id"] for t in mine)
    assert await _tasks(hub, issuer, "pcp-riverside", "patient=RGH|NOBODY") == []
    assert len(await _tasks(hub, issuer, "cbo-foodbank", f"patient={PATIENT}")) == 1

    # overdue (the TCM contact was due two business days after 2026-11-06): the requester (the hub) is not
    # in the directory, so the configured care manager is told, and the Task says overdue
    journal = hub._delivery.journal if hub._delivery else None
    assert journal is not None
    raised: list[TaskEvent] = []

    async def sink(task: dict[str, Any], event: TaskEvent) -> None:
        raised.append(event)
        await hub._delivery._overdue_alert(task, event)  # type: ignore[union-attr]

    await check_overdue(journal, sink)
    await eventually(lambda: len(cm.received) >= 1)
    assert cm.received[0].event_code == "task-overdue" and cm.received[0].signature_ok
    overdue_id = cm.received[0].focus.rsplit("/", 1)[-1]
    flagged = _resource(cm.received[0], "Task")
    assert flagged["id"] == overdue_id and flagged["businessStatus"]["coding"][0]["code"] == "overdue"
    read = journal.tasks.get(overdue_id)
    assert read is not None and read["businessStatus"]["coding"][0]["code"] == "overdue"

    cancel = _as(discharge, "A13", "ADT_A01", "RGH0013")
    await _send(hub.mllp_port, cancel)
    await eventually(lambda: len(pcp.received) == 9 and len(pharmacy.received) == 2 and len(cbo.received) == 2
                     and len(payer.received) == 5)  # fmt: skip
    assert sorted(_codes(pcp)[5:]) == ["A13", "careplan-revoked", "task-cancelled", "task-cancelled"]
    assert _codes(payer)[3:] == ["A13", "careplan-revoked"]
    assert _codes(pharmacy)[1] == _codes(cbo)[1] == "task-cancelled"
    notice = next(r for r in pcp.received if r.event_code == "A13")
    assert _resource(notice, "Encounter")["status"] == "in-progress"  # A13: the patient is still in (v2-to-FHIR)
    cancelled = [r for r in [*pcp.received, pharmacy.received[1], cbo.received[1]] if r.event_code == "task-cancelled"]
    assert {r.focus for r in cancelled} == task_keys
    for got in cancelled:
        task = _resource(got, "Task")
        assert task["status"] == "cancelled" and "discharge was cancelled" in task["statusReason"]["text"]
        assert got.bundle["entry"][0]["request"]["method"] == "PUT"
        assert task["for"]["identifier"]["value"] == PATIENT
    assert all(t["status"] == "cancelled" for t in journal.tasks.search(patient_key=PATIENT))
    assert await _tasks(hub, issuer, "pcp-riverside", f"patient={PATIENT}&status=requested") == []

    # the open follow-up is gone: a later event for the patient is not flagged
    before = _signal(hub, "open-follow-up")
    await _send(hub.mllp_port, _feed("06-a08-update-okafor.hl7", RGH0006="RGH0106"))
    await eventually(lambda: hub.metrics.total("routed_events") == 4)
    assert _signal(hub, "open-follow-up") == before
    assert len(pcp.received) == 9, "an A08 that corrects nothing is not sent as a correction"


async def test_a_cancelled_admission_and_a_merge_reach_who_was_told(
    hub: Hub, recipients: dict[str, DemoRecipient], others: dict[str, DemoRecipient], issuer: Issuer
) -> None:
    pcp, payer = recipients["pcp-riverside"], recipients["payer-acme"]
    admit = _feed("05-a01-admit-okafor.hl7", MRN100871="MRN200001", V77002="V88001", RGH0005="RGH2005")
    await _send(hub.mllp_port, admit)
    await eventually(lambda: len(pcp.received) == 1 and len(payer.received) == 1)
    await _send(hub.mllp_port, _as(admit, "A11", "ADT_A09", "RGH2011"))
    await eventually(lambda: len(pcp.received) == 2 and len(payer.received) == 2)
    for recipient in (pcp, payer):
        assert recipient.received[1].event_code == "A11"
        assert _resource(recipient.received[1], "Encounter")["status"] == "cancelled"

    # A40: MRN300001 (discharged, tasks open) is merged into MRN300002
    swap = {"MRN100871": "MRN300001", "V77002": "V99001"}
    await _send(hub.mllp_port, _feed("05-a01-admit-okafor.hl7", RGH0005="RGH3005", **swap),
                _feed("07-a03-discharge-okafor.hl7", RGH0007="RGH3007", **swap))  # fmt: skip
    await eventually(lambda: len(pcp.received) == 7)  # A01, A03, two Tasks, the packet
    retired, survivor = "RGH|MRN300001", "RGH|MRN300002"
    assert len(await _tasks(hub, issuer, "pcp-riverside", f"patient={retired}")) == 2
    pid = next(s for s in _feed("05-a01-admit-okafor.hl7").split(b"\r") if s.startswith(b"PID|"))
    merge = b"\r".join([
        b"MSH|^~\\&|EPICADT|RGH^2.16.840.1.113883.3.9999.1^ISO|CAREHUB|CAREHUB|20261107090000-0500||ADT^A40^ADT_A39|"
        b"RGH3040|P|2.5.1",
        b"EVN|A40|20261107090000-0500",
        pid.replace(b"MRN100871", b"MRN300002"),
        b"MRG|MRN300001^^^RGH^MR",
    ]) + b"\r"  # fmt: skip
    await _send(hub.mllp_port, merge)
    await eventually(lambda: len(pcp.received) == 8)
    assert pcp.received[7].event_code == "A40"
    linked = _resource(pcp.received[7], "Patient")
    assert linked["identifier"][0]["value"] == "MRN300002"
    moved = await _tasks(hub, issuer, "pcp-riverside", f"patient={survivor}")
    assert len(moved) == 2 and all(t["for"]["identifier"]["value"] == survivor for t in moved)
    assert await _tasks(hub, issuer, "pcp-riverside", f"patient={retired}") == []
    journal = hub._delivery.journal if hub._delivery else None
    assert journal is not None and journal.retired_into(survivor) == [retired]

    # the retired record's open follow-up follows the survivor: its next event is flagged
    before = _signal(hub, "open-follow-up")
    update = _feed("06-a08-update-okafor.hl7", MRN100871="MRN300002", V77002="V99001", RGH0006="RGH3006")
    await _send(hub.mllp_port, update)
    await eventually(lambda: _signal(hub, "open-follow-up") == before + 1)


async def test_a_part2_visits_cancel_is_part2_and_passes_the_send_gate(
    hub: Hub, recipients: dict[str, DemoRecipient], others: dict[str, DemoRecipient]
) -> None:
    pcp, payer = recipients["pcp-riverside"], recipients["payer-acme"]
    consent = json.loads((REPO / "demo" / "consents" / "harper-part2-consent.json").read_text(encoding="utf-8"))
    await hub.consents.accept(consent, author="test")
    admit = _feed("09-a01-admit-recovery-center-part2.hl7")
    await _send(hub.mllp_port, admit)
    await eventually(lambda: len(pcp.received) == 1)
    await _send(hub.mllp_port, _as(admit, "A11", "ADT_A09", "RRC-4413"))
    await eventually(lambda: len(pcp.received) == 2)
    notice = pcp.received[1]
    assert notice.event_code == "A11"
    labels = [s.get("code") for e in notice.bundle["entry"] for s in e["resource"].get("meta", {}).get("security", [])]
    labels += [s.get("code") for s in notice.bundle.get("meta", {}).get("security", [])]
    assert "42CFRPart2" in labels, "the cancel of a Part 2 visit is Part 2 too (sticky label)"
    assert payer.received == [], "the payer never received the admission, so it gets no cancel either"
    journal = hub._delivery.journal if hub._delivery else None
    assert journal is not None
    rows = journal.audit.disclosures("RRC|RRC-20931")
    sent = [r for r in rows if r.phase == "send" and r.recipient_id == "pcp-riverside" and r.outcome == "permit"]
    assert len(sent) == 2, "admit and cancel were each re-decided at send time, with an AuditEvent first"
