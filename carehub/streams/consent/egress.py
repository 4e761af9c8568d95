"""Every way data leaves carehub, and the one gate every recipient send passes.

``INVENTORY`` is the list docs/part2.md prints and tests/consent/test_egress.py
holds the code to: every connector class and every channel the hub wires must
be listed here, and a send can only reach a connector through
``SendGate.check`` (called by streams.delivery_flow before every attempt:
first try, retry, a delivery queued behind a retry, a dead-letter replay).

The gate re-decides on the consents and §2.51 attestations in force at that
moment (streams.consent.gate.gate_send), writes the AuditEvent of a Part 2
decision to the journal *before* the delivery may leave, and refuses payloads
a channel must never carry (raw HL7v2 on a Kafka topic, JSON on MLLP).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from carehub.core.records import Delivery, JSONObject
from carehub.journal import Journal
from carehub.streams.consent.audit import SEND, audit_event
from carehub.streams.consent.decide import DENY, PERMIT, ConsentDecision, Disclosure
from carehub.streams.consent.deps import ConsentDeps
from carehub.streams.consent.gate import gate_send, needs_consent
from carehub.streams.consent.policy import NO_PROGRAMS
from carehub.streams.routing.model import RoutingMap

log = logging.getLogger(__name__)
FHIR_JSON = "application/fhir+json"
HL7V2 = "application/hl7-v2"


@dataclass(frozen=True, slots=True)
class Egress:
    """One way data leaves: what it is, who may read it, and what keeps Part 2 data out."""

    name: str
    kind: str  # channel | topic | api | log | metric | answer
    external: bool
    guard: str
    #: The code that sends it (module or module:class).
    where: str
    #: For a channel: the payload content types it may carry.
    content_types: tuple[str, ...] = ()


SEND_GATE = "send-time consent gate (streams.consent.egress.SendGate), AuditEvent journaled first"

INVENTORY: tuple[Egress, ...] = (
    Egress("webhook", "channel", True, SEND_GATE, "carehub.connectors.webhook:WebhookDestination", (FHIR_JSON,)),
    Egress("fhir-rest", "channel", True, SEND_GATE, "carehub.connectors.fhir_rest:FhirRestDestination", (FHIR_JSON,)),
    Egress("mllp", "channel", True, SEND_GATE + "; HL7v2 of the disclosed event, never raw bytes of a redacted one",
           "carehub.connectors.mllp:MLLPDestination", (HL7V2,)),  # fmt: skip
    Egress("kafka", "channel", True, SEND_GATE + "; FHIR JSON only, never source_hl7",
           "carehub.connectors.kafka_topic:KafkaTopicDestination", (FHIR_JSON,)),  # fmt: skip
    Egress("logistics", "channel", False,
           SEND_GATE + "; the hub's logistics desk journals the order; its offers to vendors leave as Task "
           "deliveries through the same gate",
           "carehub.connectors.logistics:LogisticsDesk", (FHIR_JSON,)),  # fmt: skip
    Egress("GET /logistics/orders, /logistics/orders/{id}", "api", True,
           "orders, offers and steps (patient keys, addresses) to planners holding phi.read; no clinical data",
           "carehub.adapters.logisticsapi"),  # fmt: skip
    Egress("recipient topics (kafka channel, e.g. HIE topics carehub.out.hie.<id>)", "topic", True,
           "written only by the kafka channel, i.e. behind the send-time gate", "carehub.connectors.kafka_topic"),
    Egress("dead-letter replay (carehub dlq replay, POST /admin/dlq/replay)", "api", True,
           "republishes to the deliveries topic: the send-time gate decides again", "carehub.adapters.dlqapi"),
    Egress("GET /admin/dlq, GET /admin/deliveries/{id}", "api", True,
           "ids, codes and reasons only, never payloads", "carehub.adapters.dlqapi"),
    Egress("GET /fhir/Task, /fhir/Task/{id} (the hub's Task endpoint)", "api", True,
           "only Tasks already delivered to their owner through the gate, to that owner (docs/security.md); "
           "labels travel on Task.meta",
           "carehub.adapters.taskapi"),
    Egress("GET /fhir/Consent, /fhir/Consent/{id}, /fhir/Consent/{id}/_history", "api", True,
           "consents themselves (no clinical data); consent administrators only (docs/security.md)",
           "carehub.adapters.consentapi"),
    Egress("POST /admin/part2/emergency", "api", True, "echoes the attestation only", "carehub.adapters.part2api"),
    Egress("GET /console, /console/messages, /console/messages/{ref}", "api", True,
           "the message journal (control ids, types, facilities, patient keys, times, ACK codes, delivery states) to "
           "the hub's own signed-in operators; no clinical payload", "carehub.adapters.console"),
    Egress("GET /console/messages/{ref}/raw", "api", True,
           "the raw HL7v2 and the FHIR it becomes, to console users holding phi.read only; every view is journaled "
           "as an AuditEvent", "carehub.adapters.console"),
    Egress("GET /fhir/MeasureReport, /console/scorecard", "api", True,
           "counts and rates (ops.read); the subject-list's and worklists' patient keys also need phi.read; "
           "no clinical content", "carehub.adapters.measureapi"),
    Egress("GET /admin/config, /logistics/vendors", "api", True,
           "the routing map, directory and vendor list as loaded; no patient data, secrets never shown",
           "carehub.adapters.configapi"),
    Egress("OperationOutcomes and MLLP ACK/ERR texts", "answer", True,
           "codes and positions, never payload content", "carehub.adapters.fhirhttp"),
    Egress("logs", "log", True, "ids, codes and counts; no PHI (docs/part2.md)", "logging"),
    Egress("GET /metrics", "metric", True, "counts labelled by recipient, rule and outcome; no PHI",
           "carehub.ops_http"),
    Egress("carehub audit disclosures", "api", True, "the accounting itself: decisions, no clinical data",
           "carehub.commands.audit"),
)  # fmt: skip

#: Topics only carehub's own principals read (ACLs: docs/deploy.md). They may carry raw HL7v2 and Part 2 data.
INTERNAL_TOPICS = (
    "hl7v2_inbound", "fhir_inbound", "care_events", "deliveries", "delivery_outcomes", "dead_letters",
    "delivery_dead_letters", "subscription_state", "fhir_encounters", "visits_seen", "consents", "audit_events",
    "task_events", "delivery_retry", "inbound_refused", "part2_status",
)  # fmt: skip


def channels() -> dict[str, Egress]:
    return {e.name: e for e in INVENTORY if e.kind == "channel"}


class RoutingSource(Protocol):
    def current(self) -> RoutingMap: ...


AuditSink = Callable[[str, JSONObject], Awaitable[None]]


class SendGate:
    """Decides on one send of a delivery; a Part 2 decision is journaled before the answer."""

    def __init__(
        self,
        consent: ConsentDeps | None,
        routing: RoutingSource,
        journal: Journal,
        publish_audit: AuditSink | None = None,
        *,
        clock: Callable[[], str],
    ) -> None:
        self._policy = consent.policy if consent is not None else NO_PROGRAMS
        self._consents = consent.consents if consent is not None else None
        self._routing = routing
        self._journal = journal
        self._publish_audit = publish_audit
        self._clock = clock
        self._channels = channels()

    def _disclosure(self, d: Delivery) -> Disclosure:
        recipient = self._routing.current().recipients.get(d.recipient_id)
        kind = recipient.kind if recipient is not None else ""
        return Disclosure(d.recipient_id, kind, d.action, self._policy.purposes.get(kind, "TREAT"))

    def _channel_refusal(self, d: Delivery) -> str:
        channel = self._channels.get(d.channel)
        if channel is None:
            return f"channel {d.channel!r} is not in the egress inventory"
        if d.content_type not in channel.content_types:
            return f"the {d.channel} channel never carries {d.content_type}"
        return ""

    async def check(self, d: Delivery, attempt: int) -> ConsentDecision:
        """The decision for this send; its AuditEvent is durable before a permit is returned."""
        refusal = self._channel_refusal(d)
        if refusal:
            return ConsentDecision(DENY, "egress-inventory", refusal)
        if not needs_consent(d):
            return ConsentDecision(PERMIT, "not-part2", "no 42 CFR Part 2 data in the payload")
        now = self._clock()
        lookup = self._consents
        consents = lookup.for_patient(d.patient_key) if lookup is not None else []
        attestations = lookup.emergencies_for(d.patient_key) if lookup is not None else []
        disclosure = self._disclosure(d)
        decision = gate_send(d, disclosure, consents, attestations, now)
        audit = audit_event(decision, disclosure, event_id=d.event_id, patient_key=d.patient_key, recorded=now,
                            map_version=d.map_version, delivery_id=d.delivery_id, phase=SEND,
                            attempt=attempt)  # fmt: skip
        await self._journal.db.run(self._journal.audit.record, audit)
        if self._publish_audit is not None:
            await self._publish_audit(d.patient_key, audit)
        return decision
