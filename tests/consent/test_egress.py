"""The egress inventory is enforced: every connector and channel is listed, and no send reaches a
connector without the send-time gate.

Statically, from the source: every connector class is in ``streams.consent.egress.INVENTORY``, the
channels the hub wires and the directory schema allows are exactly the inventory's, and the only
road to ``Destination.send`` runs through ``DeliveryFlow._try`` after ``SendGate.check``.
At the boundary: a Part 2 delivery on every channel, against a real peer for each (HTTP for webhook
and FHIR REST, an MLLP listener, a Kafka topic), is sent under a consent with its AuditEvent
journaled before the peer sees a byte, and after the revocation reaches nobody.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import pkgutil
import random
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

import carehub.connectors as connectors
from carehub.adapters.httpauth.rules import RULES
from carehub.connectors.base import Destination
from carehub.connectors.fhir_rest import FhirRestDestination
from carehub.connectors.kafka_topic import KafkaTopicDestination
from carehub.connectors.mllp import MLLPDestination
from carehub.connectors.webhook import WebhookDestination
from carehub.core.metrics import Metrics
from carehub.core.records import Delivery, Record
from carehub.core.settings import Settings
from carehub.core.topics import Topics
from carehub.delivery_wiring import DeliveryParts
from carehub.journal import Journal, open_journal
from carehub.streams.consent.codes import ACT_CODE, PART2, coding, restricted_with_basis
from carehub.streams.consent.deps import ConsentDeps
from carehub.streams.consent.egress import HL7V2, INVENTORY, SendGate, channels
from carehub.streams.consent.emergency import Attestation
from carehub.streams.consent.model import ConsentDirective, parse_consent
from carehub.streams.consent.policy import load_policy
from carehub.streams.delivery_flow import DeliveryFlow
from carehub.streams.delivery_policy import RetryPolicy
from carehub.streams.logistics.place import LOGISTICS_CHANNEL
from carehub.streams.routing.source import ReloadingRoutingMap
from tests.conftest import CONFIG, REPO
from tests.consent.consents import consent
from tests.consent.egress_kit import HttpSink, MllpSink, external_topics, markers

ROOMS = ("carehub",)  # every room is a folder of the one package
PATIENT = ("urn:carehub:authority:RGH", "MRN1")
LABELS = [restricted_with_basis(), coding(ACT_CODE, PART2, "42 CFR Part2")]


def _sources() -> dict[str, ast.Module]:
    found = {}
    for room in ROOMS:
        for path in sorted((REPO / room).rglob("*.py")):
            found[str(path.relative_to(REPO))] = ast.parse(path.read_text(), str(path))
    return found


def test_every_connector_class_is_in_the_inventory() -> None:
    listed = {e.where for e in INVENTORY if e.kind == "channel"}
    found = set()
    for info in pkgutil.iter_modules(connectors.__path__):
        module = importlib.import_module(f"carehub.connectors.{info.name}")
        for name, cls in inspect.getmembers(module, inspect.isclass):
            send = getattr(cls, "send", None)
            if getattr(cls, "_is_protocol", False) or cls.__module__ != module.__name__:
                continue  # the Destination interface itself, or an import
            if send and "delivery" in inspect.signature(send).parameters:
                found.add(f"{module.__name__}:{name}")
    assert found, "no connector found: the scan is broken"
    assert found == listed, f"connectors not in the egress inventory: {found - listed}; stale: {listed - found}"


def test_the_channels_wired_and_allowed_are_the_inventory() -> None:
    schema = json.loads((CONFIG / "schemas" / "recipients.schema.json").read_text())
    allowed = set(schema["properties"]["recipients"]["items"]["properties"]["channel"]["enum"])
    parts = DeliveryParts(Settings(config_dir=CONFIG), ReloadingRoutingMap(CONFIG), Topics(), "127.0.0.1:1", "t")
    wired = {"webhook", *parts.destinations}  # the hub adds the webhook destination (carehub/hub.py)
    # the logistics desk is the hub's own channel (an order to journal): no directory recipient may name it
    assert LOGISTICS_CHANNEL not in allowed
    assert allowed | {LOGISTICS_CHANNEL} == wired == set(channels()), (allowed, wired, set(channels()))


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and
            (getattr(n.func, "id", None) == name or getattr(n.func, "attr", None) == name)]  # fmt: skip


def test_no_road_to_a_connector_bypasses_the_send_time_gate() -> None:
    sources = _sources()
    # 1. one attempt function calls Destination.send; only the delivery flow calls it
    users = {p for p, t in sources.items() for n in ast.walk(t) if isinstance(n, ast.Name) and n.id == "attempt_once"}
    assert users == {"carehub/streams/delivery_flow.py"}, users
    # 2. nothing but the flow's attempt, and the in-line form kept for tests, calls .send(delivery)
    senders = {
        p for p, t in sources.items() for c in _calls(t, "send")
        if c.args and isinstance(c.args[0], ast.Name) and c.args[0].id in ("delivery", "d")
    }  # fmt: skip
    assert senders == {"carehub/streams/delivery_policy.py"}, senders
    inline = {p for p, t in sources.items() if p != "carehub/streams/delivery_policy.py" and _calls(t, "deliver")}
    assert not inline, f"the in-line deliver() (no gate) is used outside tests: {inline}"
    # the Kafka channel's raw publish writes internal topics only (task events, the deliveries topic)
    raw = {p for p, t in sources.items() for c in _calls(t, "publish")
           if isinstance(c.func, ast.Attribute) and getattr(c.func.value, "attr", "") == "kafka"}  # fmt: skip
    assert raw == {"carehub/delivery_wiring.py"}, raw
    parts = sources["carehub/delivery_wiring.py"]
    topics = [ast.unparse(c.args[0]) for c in _calls(parts, "publish") if ast.unparse(c.func) == "self.publish"]
    assert topics and all(t.startswith("self.topics.") for t in topics), topics
    # 3. in the flow, _attempt is reached only from _try, after SendGate.check, whose refusal returns
    flow = sources["carehub/streams/delivery_flow.py"]
    functions = {n.name: n for n in ast.walk(flow) if isinstance(n, ast.AsyncFunctionDef)}
    callers = {name for name, fn in functions.items() if _calls(fn, "_attempt")}
    assert callers == {"_try"}, callers
    body = functions["_try"].body
    gate_at = next(i for i, s in enumerate(body) if _calls(s, "check"))
    attempt_at = next(i for i, s in enumerate(body) if _calls(s, "_attempt"))
    refused = body[gate_at + 1]
    assert gate_at < attempt_at and isinstance(refused, ast.If) and isinstance(refused.body[-1], ast.Return)


# --- at the boundary ---------------------------------------------------------------------------------


@dataclass
class Consents:
    """The consent table's reading side (ConsentLookup), held in memory."""

    on_file: list[ConsentDirective] = field(default_factory=list)
    attested: list[Attestation] = field(default_factory=list)

    def for_patient(self, patient_key: str) -> list[ConsentDirective]:
        return [c for c in self.on_file if c.patient_key == patient_key]

    def emergencies_for(self, patient_key: str) -> list[Attestation]:
        return [a for a in self.attested if a.patient_key == patient_key]


@dataclass
class Published:
    """The flow's internal topics (outcomes, retries, dead letters, audit): recorded, not read by anyone outside."""

    records: list[tuple[str, bytes]] = field(default_factory=list)

    async def send(self, topic_name: str, key: str, record: Record) -> None:
        self.records.append((topic_name, record.to_json()))

    async def audit(self, key: str, document: dict[str, Any]) -> None:
        self.records.append(("audit.events", json.dumps(document).encode()))


def _delivery(n: int, channel: str, endpoint: str, *, hl7: bool = False) -> Delivery:
    key = f"egress-{channel}-{n}"
    payload: dict[str, Any] = (
        {"hl7": "MSH|^~\\&|A|RGH|B|PCP|20261101||ADT^A01|C1|P|2.5.1\rPID|1||MRN1^^^RGH\rDG1|1||F11.20^Opioid^I10\r"}
        if hl7 else
        {"resourceType": "Bundle", "type": "message", "id": key, "meta": {"security": LABELS},
         "entry": [{"resource": {"resourceType": "Condition", "id": "c1", "code": {"text": "F11.20 Opioid"}}}]}
    )  # fmt: skip
    return Delivery(
        delivery_id=key, idempotency_key=key, event_id=f"e{n}", patient_key="RGH|MRN1", recipient_id="pcp-riverside",
        action="forward" if hl7 else "notify", channel=channel, endpoint=endpoint,
        content_type=HL7V2 if hl7 else "application/fhir+json", payload=payload, rule_id="r", map_version="v",
        labels=list(LABELS),
    )  # fmt: skip


class AuditFirstSink(HttpSink):
    """Records, for every body it receives, whether the journal already held the permit for it."""

    def __init__(self, journal: Journal) -> None:
        super().__init__()
        self.journal = journal
        self.audited_before: list[bool] = []

    async def handle(self, request: Any) -> Any:
        rows = self.journal.audit.disclosures("RGH|MRN1")
        key = request.headers.get("Idempotency-Key", "")
        self.audited_before.append(any(r.delivery_id == key and r.phase == "send" and r.outcome == "permit"
                                       for r in rows))  # fmt: skip
        return await super().handle(request)


@pytest.fixture
def journal(tmp_path: Path) -> Any:
    j = open_journal(f"sqlite:///{tmp_path}/journal.db")
    yield j
    j.close()


async def test_every_channel_sends_part2_only_under_a_current_consent_audited_first(
    broker: str, journal: Journal
) -> None:
    http, mllp = AuditFirstSink(journal), MllpSink()
    await http.start()
    await mllp.start()
    topics = Topics(f"egress{random.randrange(10**9)}.")
    routing = ReloadingRoutingMap(CONFIG)
    destinations: dict[str, Destination] = {
        "webhook": WebhookDestination(5.0, secret_for=lambda _: "egress-test-signing-secret"),
        "fhir-rest": FhirRestDestination(5.0), "mllp": MLLPDestination(5.0),
        "kafka": KafkaTopicDestination(broker, 5.0),
    }  # fmt: skip
    lookup = Consents()
    published = Published()
    gate = SendGate(ConsentDeps(load_policy(CONFIG), lookup), routing, journal, published.audit,
                    clock=lambda: "2026-11-01T12:00:00.000Z")  # fmt: skip
    flow = DeliveryFlow(published, topics, journal, destinations, RetryPolicy(max_attempts=1), Metrics(), gate=gate)
    hie_topic = f"{topics.prefix}out.hie.pcp-riverside"
    endpoints = {"webhook": http.url("hook"), "fhir-rest": http.url("fhir"), "mllp": mllp.url,
                 "kafka": f"kafka:{hie_topic}"}  # fmt: skip
    try:
        # no consent: nothing leaves, on any channel
        for n, (channel, endpoint) in enumerate(endpoints.items()):
            await flow.fresh(_delivery(n, channel, endpoint, hl7=channel == "mllp"))
        assert http.received == [] and mllp.received == []
        assert all(v == [] for v in (await external_topics(broker, topics)).values())

        # a consent naming the recipient: every channel delivers, each permit journaled before the bytes left
        granted = consent("c-egress", named=("pcp-riverside",), patient=PATIENT)
        lookup.on_file.append(parse_consent(granted))
        for n, (channel, endpoint) in enumerate(endpoints.items(), start=10):
            await flow.fresh(_delivery(n, channel, endpoint, hl7=channel == "mllp"))
        assert len(http.received) == 2 and len(mllp.received) == 1
        assert http.audited_before == [True, True]
        assert len((await external_topics(broker, topics))[hie_topic]) == 1

        # raw HL7v2 never goes onto a topic, consent or not
        await flow.fresh(_delivery(30, "kafka", f"kafka:{hie_topic}", hl7=True))
        on_topic = (await external_topics(broker, topics))[hie_topic]
        assert len(on_topic) == 1 and b"MSH|" not in on_topic[0]
        assert journal.outcome_status("egress-kafka-30") == "suppressed"

        # revoked: every channel stops again, and each refusal is audited as suppressed at send time
        lookup.on_file = [parse_consent({**granted, "status": "inactive"})]
        for n, (channel, endpoint) in enumerate(endpoints.items(), start=20):
            await flow.fresh(_delivery(n, channel, endpoint, hl7=channel == "mllp"))
        assert len(http.received) == 2 and len(mllp.received) == 1
        assert len((await external_topics(broker, topics))[hie_topic]) == 1
        refused = [r for r in journal.audit.disclosures("RGH|MRN1") if r.delivery_id.startswith("egress-")
                   and int(r.delivery_id.rsplit("-", 1)[1]) >= 20]  # fmt: skip
        assert len(refused) == 4 and {(r.outcome, r.delivery) for r in refused} == {("deny", "suppressed at send time")}
        assert all(markers(b) for b in http.bodies()), "what was permitted went whole"
    finally:
        for destination in destinations.values():
            await destination.close()
        await http.stop()
        await mllp.stop()


def test_a_delivery_labelled_only_in_its_payload_is_gated_too() -> None:
    """A Task overdue alert or an old record without ``labels``: the payload's own labels decide."""
    from carehub.streams.consent.gate import needs_consent

    bare = replace(_delivery(1, "webhook", "http://x/"), labels=[])
    assert needs_consent(bare)
    clean = replace(bare, payload={"resourceType": "Bundle", "entry": []})
    assert not needs_consent(clean)


def test_every_http_route_that_answers_with_data_is_in_the_inventory() -> None:
    """A new GET route is an egress: it is listed (with what keeps Part 2 data out) or this test fails."""
    listed = {token for e in INVENTORY if e.kind in ("api", "metric") for token in re.split(r"[\s,()]+", e.name)}
    unlisted = [f"{r.method} {r.path}" for r in RULES if r.method == "GET" and not r.public and r.path not in listed]
    assert not unlisted, f"routes missing from streams.consent.egress.INVENTORY: {unlisted}"


def test_docs_state_the_inventory() -> None:
    doc = (REPO / "docs" / "part2.md").read_text()
    missing = [e.name for e in INVENTORY if e.name not in doc]
    assert not missing, f"docs/part2.md does not list: {missing}"


def test_a_task_keeps_its_labels_so_its_overdue_alert_is_gated() -> None:
    """The Task read API and the overdue alert to the requester carry the labels the Task was disclosed under."""
    from carehub.streams.consent.gate import needs_consent
    from carehub.streams.task_alerts import overdue_alert, task_from_delivery

    task = {"resourceType": "Task", "id": "t1", "status": "requested", "requester": {"reference": "Organization/rgh"}}
    bundle = {"resourceType": "Bundle", "type": "transaction", "meta": {"security": LABELS},
              "entry": [{"resource": task}]}  # fmt: skip
    disclosed = replace(_delivery(1, "webhook", "http://x/"), action="task", payload=bundle)
    stored = task_from_delivery(disclosed)
    assert stored is not None and stored["meta"]["security"] == LABELS
    alert = replace(disclosed, labels=[], payload=overdue_alert(stored, "http://hub/fhir", "2026-11-05T00:00:00Z"))
    assert needs_consent(alert), "an overdue alert about a Part 2 Task needs a consent for its requester"
