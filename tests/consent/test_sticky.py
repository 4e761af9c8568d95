"""Sticky Part 2 status through a running hub (real broker, MLLP in, HTTP recipients out).

No consent is on file, so a Part 2-labelled event reaches no recipient: what
the PCP receives shows which events kept their labels. Each case has a
control that does reach the PCP, so a hub that denied everything would fail.
The last case restarts the hub against the broker holding ``part2.status``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from carehub.connectors.mllp import MLLPClient, ack_code
from carehub.demo_receivers import DemoRecipient
from carehub.hub import Hub
from tests.conftest import FEED
from tests.integration.conftest import eventually, hub_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ADMIT = "\r".join((FEED / "02-a01-admit-rivera.hl7").read_text().splitlines()) + "\r"
RRC_ADMIT = (FEED / "09-a01-admit-recovery-center-part2.hl7").read_bytes()
PV1_3 = "|4W^412^A^RGH^^^^MEDSURG|"


def adt(trigger: str, control: str, mrn: str, visit: str, unit: str = "5E^501^A^RGH", klass: str = "I") -> bytes:
    structure = {"A02": "ADT_A02", "A03": "ADT_A03", "A11": "ADT_A09", "A04": "ADT_A01"}.get(trigger, "ADT_A01")
    text = (
        ADMIT.replace("ADT^A01^ADT_A01|RGH0002", f"ADT^{trigger}^{structure}|{control}")
        .replace("EVN|A01|", f"EVN|{trigger}|")
        .replace("MRN100234^^^RGH^MR", f"{mrn}^^^RGH^MR")
        .replace(PV1_3, f"|{unit}|")
        .replace("PV1|1|I|", f"PV1|1|{klass}|")
        .replace("V77001^^^RGH^VN", f"{visit}^^^RGH^VN")
    )
    if trigger == "A03":
        text = text.replace("|20261101112500-0500\r", "|20261101112500-0500|20261105100000-0500\r")
    return text.encode()


def a40(control: str, survivor: str, retired: str, authority: str) -> bytes:
    lines = ADMIT.replace("ADT^A01^ADT_A01|RGH0002", f"ADT^A40^ADT_A39|{control}").split("\r")
    lines = [line.replace("EVN|A01|", "EVN|A40|") for line in lines if line[:3] in ("MSH", "EVN", "PID", "PD1")]
    lines = [line.replace("MRN100234^^^RGH^MR", f"{survivor}^^^RGH^MR") for line in lines]
    return ("\r".join([*lines, f"MRG|{retired}^^^{authority}^MR"]) + "\r").encode()


@pytest.fixture
def routed_config(config_dir: Path) -> Path:
    """The shipped config plus a rule that sends updates, cancels and merges to the PCP."""
    routes = yaml.safe_load((config_dir / "routes.yaml").read_text())
    routes["rules"].append({
        "id": "test-everything-to-pcp", "description": "updates, cancels and merges too",
        "when": {"kind": ["update", "cancel-admit", "cancel-discharge", "merge"]},
        "actions": [{"notify": "attributed:pcp"}],
    })  # fmt: skip
    (config_dir / "routes.yaml").write_text(yaml.safe_dump(routes, sort_keys=False))
    return config_dir


async def _send(hub: Hub, *messages: bytes) -> None:
    client = MLLPClient("127.0.0.1", hub.mllp_port)
    for message in messages:
        assert ack_code(await client.send(message)) == "AA"
    await client.close()


def _received(pcp: DemoRecipient, marker: str) -> list[Any]:
    return [r for r in pcp.received if marker in json.dumps(r.bundle)]


def _audit(hub: Hub, patient: str) -> list[dict[str, Any]]:
    carehub = Path(sys.executable).parent / "carehub"
    out = subprocess.run(
        [str(carehub), "audit", "disclosures", "--patient", patient, "--json",
         "--database-url", hub.settings.database_url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [json.loads(line) for line in out.splitlines()]


async def _settle(hub: Hub, decisions: int) -> None:
    await eventually(lambda: hub.metrics.total("consent") >= decisions, timeout_s=60)
    await eventually(lambda: hub.metrics.total("audited") >= hub.metrics.total("consent"), timeout_s=60)
    await asyncio.sleep(0.5)


def _rules(hub: Hub, patient: str) -> list[str]:
    """The rule of every decision on a notification to the PCP, oldest first."""
    rows = _audit(hub, patient)
    return [r["rule"] for r in rows if r["recipient_id"] == "pcp-riverside" and r["action"] == "notify"]


async def test_later_events_of_a_program_visit_keep_the_labels_also_after_a_restart(
    broker: str, routed_config: Path, recipients: dict[str, DemoRecipient]
) -> None:
    pcp = recipients["pcp-riverside"]
    settings = hub_settings(routed_config, broker)
    hub = Hub(settings)
    await hub.start()
    try:
        await _send(
            hub,
            adt("A01", "S-1", "MRN-S1", "V-S1", unit="4W-SUD^401^A^RGH"),  # admitted to the program unit
            adt("A08", "S-2", "MRN-S1", "V-S1"),  # the unit is gone from PV1-3
            adt("A02", "S-3", "MRN-S1", "V-S1", unit="6N^601^A^RGH"),  # out of the unit, PV1-6 empty
            adt("A11", "S-4", "MRN-S1", "V-S1"),
            adt("A13", "S-5", "MRN-S1", "V-S1"),
            adt("A08", "S-6", "MRN-S1", "V-S9"),  # control: another visit of the patient, general unit
        )
        await eventually(lambda: len(_received(pcp, "MRN-S1")) >= 1, timeout_s=60)
        await _settle(hub, 7)  # the admit also goes to the payer
        assert [r.event_code for r in _received(pcp, "MRN-S1")] == ["A08"], "only the other visit reaches the PCP"
        assert _rules(hub, "RGH|MRN-S1") == ["no-permitting-consent"] * 5 + ["not-part2"]
    finally:
        await hub.stop()

    restarted = Hub(settings)  # same topics and group: the status must come back from part2.status
    await restarted.start()
    try:
        await _send(restarted, adt("A03", "S-7", "MRN-S1", "V-S1"), adt("A03", "S-8", "MRN-S1", "V-S8"))
        await eventually(lambda: len(_received(pcp, "MRN-S1")) >= 4, timeout_s=60)
        await _settle(restarted, 6)  # each discharge: PCP and payer notifications, two TCM tasks
        codes = [r.event_code for r in _received(pcp, "MRN-S1")]
        # the general visit's packet too; the program visit's discharge sends nothing, its packet neither
        assert codes == ["A08", "notification-discharge", "task:tcm-contact", "task:tcm-visit", "toc-packet"], codes
        assert [r for r in _received(pcp, "MRN-S1") if "V-S1" in json.dumps(r.bundle)] == []
        assert _rules(restarted, "RGH|MRN-S1")[-2:] == ["no-permitting-consent", "not-part2"]
    finally:
        await restarted.stop()


async def test_merges_of_program_records_and_the_ed_visit_during_an_episode_keep_the_labels(
    broker: str, routed_config: Path, recipients: dict[str, DemoRecipient]
) -> None:
    pcp = recipients["pcp-riverside"]
    hub = Hub(hub_settings(routed_config, broker))
    await hub.start()
    try:
        await _send(hub, RRC_ADMIT)  # an open episode at the opioid treatment program (RRC|RRC-20931)
        await _send(hub, adt("A01", "M-0", "MRN-S2", "V-S2", unit="4W-SUD^402^A^RGH"))  # and at the hospital's unit
        await _settle(hub, 4)
        await _send(
            hub,
            a40("M-1", "MRN-H1", "RRC-20931", "RRC"),  # the hospital merges the program's MRN into its own
            a40("M-2", "MRN-H5", "MRN-S2", "RGH"),  # a hospital MRN with a program-unit visit (table state)
            adt("A04", "M-3", "MRN-H5", "V-ED5", unit="ED^1^A^RGH", klass="E"),  # ED visit during that episode
            adt("A04", "M-4", "MRN-H2", "V-ED2", unit="ED^2^A^RGH", klass="E"),  # control: nobody's episode
            a40("M-5", "MRN-H3", "MRN-H4", "RGH"),  # control: a merge of two ordinary hospital records
        )
        await eventually(lambda: len(_received(pcp, "MRN-H2")) == 1 and len(_received(pcp, "MRN-H3")) == 1, 60)
        await _settle(hub, 9)
        assert _rules(hub, "RGH|MRN-H1") == ["no-permitting-consent"], "the merge names the program's MRN"
        merge, ed = _rules(hub, "RGH|MRN-H5")
        assert merge == "no-permitting-consent", "the retired MRN had a program visit"
        assert ed != "not-part2", "the ED visit during the open episode is Part 2 (policy)"
        for received in _received(pcp, "MRN-H5"):  # only under an emergency exception, if at all: labelled
            assert "42CFRPart2" in json.dumps(received.bundle["meta"])
        assert _received(pcp, "MRN-H1") == [] and _received(pcp, "RRC-20931") == []
        assert _rules(hub, "RGH|MRN-H2") == ["not-part2"] and _rules(hub, "RGH|MRN-H3") == ["not-part2"]
    finally:
        await hub.stop()
