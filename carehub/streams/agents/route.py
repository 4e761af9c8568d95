"""route: hl7v2.inbound and care.events -> deliveries, one record per recipient x action (a stage: streams.stage).

An inbound HL7v2 record is normalized here first (streams.agents.normalize), then routed: one hop from the
stored message to its deliveries. The two topics are co-partitioned by patient key, so the stores below
serve both.

Per-patient care-coordination state (recent discharges, ED visits, open
follow-up tasks) lives in the ``patient-signals`` store, keyed by patient key
like the topic, so each worker holds the state of its own partitions; beside
it the ``visits-seen`` store (streams.dedup) and, with Part 2 programs, the
``part2-status`` store. All three are streams.store tables on compacted topics
(provisioned by the hub), recovered when a partition is assigned.

A batch is routed in order, in chunks of ``CHUNK`` events: each event of a
chunk is decided and its journal writes (care facts, the discharge's CarePlan)
queued, then, in the same order, each event's outputs (AuditEvents,
deliveries, dead letters) are sent once its writes have committed. So the
journal writes of a chunk are one group commit instead of a round trip per
event, and no event's outputs leave before its writes are in the journal.
Its state changes are staged. Then, in this order: the
outputs are acknowledged, the state changes are applied and sent to their
changelogs and acknowledged, the offsets are committed (streams.stage). So
neither the changelog nor the committed offset is ever ahead of the outputs:
a worker killed mid-batch leaves the batch to be routed again from the state
before it, and the deliveries come out again with the same idempotency keys.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka.structs import ConsumerRecord

from carehub.core.clock import now_iso
from carehub.core.records import CareEvent, Delivery, JSONObject
from carehub.journal import Journal
from carehub.journal.carefacts import Cancel, CareFact, FactTask
from carehub.streams.agents import part2_status, visit_once
from carehub.streams.agents.normalize import normalizer, was_routed
from carehub.streams.agents.part2_status import Part2Statuses
from carehub.streams.agents.visit_once import VisitOnce
from carehub.streams.consent.deps import BatchLinks, following_merges
from carehub.streams.consent.enforce import Gatekeeper
from carehub.streams.context import AgentContext
from carehub.streams.corrections import IDENTITY_CORRECTIONS, TASK_CANCELS, originals
from carehub.streams.facts import cancel_of, fact_of, tasks_of
from carehub.streams.notify import Hub
from carehub.streams.outbox import CURRENT
from carehub.streams.packet.step import PacketStep, packets_sent, split
from carehub.streams.packet.sync import episode_changes, record_packets
from carehub.streams.plan import order_requests, task_requests
from carehub.streams.referrals import TaskRequest
from carehub.streams.risk import lace, with_lace
from carehub.streams.routing.decide import RoutingDecision, decide
from carehub.streams.signals import OpenTask, PatientState, Sent, merged, observe, signals
from carehub.streams.stage import Handler
from carehub.streams.store import ChangelogStore

log = logging.getLogger(__name__)
SIGNALS_TABLE = "patient-signals"
#: Events decided before their outputs are sent: their journal writes commit as one group.
CHUNK = 32


def _resource(delivery: Delivery, resource_type: str) -> dict[str, Any] | None:
    entries = delivery.payload.get("entry", [])
    return next((e["resource"] for e in entries if e.get("resource", {}).get("resourceType") == resource_type), None)


def opened_tasks(deliveries: list[Delivery]) -> list[OpenTask]:
    """The follow-up tasks a routing step opened (local code and due date read from the bundle)."""
    out = []
    for d in deliveries:
        task, request = _resource(d, "Task"), _resource(d, "ServiceRequest")
        if d.action == "task" and task is not None and request is not None:
            code = request["code"]["coding"][0]["code"]
            out.append(OpenTask(d.idempotency_key, code, d.recipient_id, task["restriction"]["period"]["end"]))
    return out


def sent_for_visit(deliveries: list[Delivery]) -> list[Sent]:
    """What routing sent (not corrections): a later correction of the visit follows these."""
    return [Sent(d.delivery_id, d.recipient_id, d.action) for d in deliveries if not d.corrects]


def report_unresolved(ctx: AgentContext, decision: RoutingDecision) -> None:
    for item in decision.unresolved:
        ctx.metrics.inc("route_unresolved", rule=item.rule_id)
        log.warning(
            "unresolved: event=%s rule=%s target=%s reason=%s",
            decision.event_id,
            item.rule_id,
            item.target,
            item.reason,
        )


def retired_of(event: CareEvent) -> list[str]:
    """The patient keys a merge or identifier change retires in favour of ``event.patient_key``."""
    if event.kind not in IDENTITY_CORRECTIONS:
        return []
    return [str(k) for k in event.attributes.get("merged_from", []) if str(k) != event.patient_key]


@dataclass(slots=True)
class PlannedPackets:
    """An event's transition-of-care packets, planned: sent once the event's journal writes committed."""

    verdicts: list[Any]
    audits: list[bytes]
    planned: list[Delivery]
    outputs: list[bytes]
    tasks: list[TaskRequest]


async def plan_packets(
    ctx: AgentContext,
    step: PacketStep,
    gatekeeper: Gatekeeper,
    care_event: CareEvent,
    packets: RoutingDecision,
    tasks: list[TaskRequest],
    orders: list[JSONObject],
) -> PlannedPackets:
    """The packets of an event (streams.packet.step), gated and encoded; not sent yet."""
    verdicts = await step.verdicts(care_event, packets, tasks, gatekeeper, ctx.deps.hub, now_iso(), orders)
    planned = [v.delivery for v in verdicts if v.delivery is not None]
    audits = [ctx.fit(orjson.dumps(v.audit), "an AuditEvent") for v in verdicts]
    outputs = [ctx.fit(item.to_json(), "a Delivery") for item in planned]
    return PlannedPackets(verdicts, audits, planned, outputs, tasks)


async def send_packets(ctx: AgentContext, care_event: CareEvent, packets: PlannedPackets) -> None:
    topics = ctx.deps.topics
    for verdict, audit in zip(packets.verdicts, packets.audits, strict=True):
        ctx.metrics.inc("consent", outcome=verdict.decision.outcome, rule=verdict.decision.rule)
        await ctx.send_bytes(topics.audit_events, care_event.patient_key, audit)
    for item, value in zip(packets.planned, packets.outputs, strict=True):
        ctx.metrics.inc("routed", recipient=item.recipient_id)
        ctx.metrics.inc("packets_planned", recipient=item.recipient_id)
        await ctx.send_bytes(topics.deliveries, item.patient_key, value)


def record_event(
    journal: Journal,
    facts: tuple[CareFact | None, list[FactTask], Cancel | None] | None,
    care_event: CareEvent,
    packets: PlannedPackets | None,
    hub: Hub,
    now: str,
) -> Exception | None:
    """An event's journal writes, one call: what the scorecard counts, then its CarePlan and who holds it
    (kept in step with its Tasks). A failing fact fails the call (the event is dead-lettered, nothing of
    it written); a failing CarePlan is rolled back alone and returned (only the packets are dead-lettered)."""
    if facts is not None:
        journal.facts.record(*facts)
    if packets is not None and packets.planned:
        try:
            with journal.db.transaction():
                record_packets(journal, care_event, packets.planned, packets.tasks, hub, now)
        except Exception as exc:  # noqa: BLE001 - handed back: the packets are dead-lettered, the event stands
            return exc
    return None


@dataclass(slots=True)
class Routed:
    """One event decided, its journal writes queued: what to send once they committed."""

    record: ConsumerRecord
    care_event: CareEvent
    decision: RoutingDecision
    flags: frozenset[str]
    verdicts: list[Any]
    audits: list[bytes]
    planned: list[Delivery]
    outputs: list[bytes]
    packets: PlannedPackets | None
    packet_error: Exception | None
    written: asyncio.Future[Exception | None] | None


def signals_changelog(app_id: str) -> str:
    """The patient-signals changelog (the name Faust gave it when the table was a Faust table)."""
    return f"{app_id}-{SIGNALS_TABLE}-changelog"


class RouteState:
    """The route stage's tables: one store per kind of state, recovered together."""

    def __init__(self, ctx: AgentContext, app_id: str) -> None:
        topics = ctx.deps.topics
        self.signals = ChangelogStore(SIGNALS_TABLE, signals_changelog(app_id))
        self.visits = ChangelogStore(visit_once.TABLE, topics.visits_seen)
        self.part2 = ChangelogStore(part2_status.TABLE, topics.part2_status) if ctx.deps.consent is not None else None

    @property
    def stores(self) -> list[ChangelogStore]:
        return [s for s in (self.signals, self.visits, self.part2) if s is not None]

    def at(self, partition: int) -> None:
        for store in self.stores:
            store.partition = partition


def handler(ctx: AgentContext, state: RouteState) -> Handler:
    """The route stage's batch handler (its stores recovered by the stage on assignment)."""
    topics = ctx.deps.topics
    table = state.signals
    journal = ctx.deps.journal
    links = BatchLinks(journal.retired_into) if journal is not None else None
    merged_consent = following_merges(ctx.deps.consent, links) if links is not None else ctx.deps.consent
    gatekeeper = Gatekeeper(merged_consent)  # a merged record's consents follow the survivor
    packet_step = PacketStep(
        ctx.deps.packet, lambda outcome: ctx.metrics.inc("packet_enrichment", outcome=outcome)
    )  # enrichment from the facility's FHIR source, within its budget
    once = VisitOnce(state.visits, ctx)  # the same visit by ADT and by FHIR is routed once (streams.dedup)
    consent = ctx.deps.consent
    part2 = Part2Statuses(state.part2, consent.policy.registry) if consent is not None and state.part2 else None
    normalize_one = normalizer(ctx)

    async def route_one(event: ConsumerRecord, normalized: CareEvent | None) -> Routed | None:
        """Decide one event (``normalized`` from an inbound record, else read from the care.events record) and
        queue its journal writes (not awaited: the chunk's writes are one group)."""
        state.at(event.partition)
        try:
            care_event = normalized if normalized is not None else CareEvent.from_json(event.value)
            if part2 is not None:
                care_event = part2.label(care_event)
            if not once.first(care_event):
                return None
            key = care_event.patient_key
            patient = PatientState.from_dict(table.get(key))
            retired_keys = retired_of(care_event)
            retired = [PatientState.from_dict(table.get(k)) for k in retired_keys]
            if retired:  # a merge: the retired records' history, tasks and visits follow the survivor
                patient = merged(patient, retired)
            score = lace(patient, care_event)
            if score is not None:  # a discharge carries its LACE index (an Observation), rules may test it
                care_event = with_lace(care_event, score)
            found = signals(patient, care_event)
            received = originals(patient, care_event, retired)
            decision = decide(care_event, ctx.deps.routing.current(), found.flags, received)
            decision, packets = split(decision)  # packets wait for enrichment, after everything else is sent
            verdicts = gatekeeper.verdicts(care_event, decision, ctx.deps.hub, now_iso())
            planned = [v.delivery for v in verdicts if v.delivery is not None]
            audits = [ctx.fit(orjson.dumps(v.audit), "an AuditEvent") for v in verdicts]
            outputs = [ctx.fit(item.to_json(), "a Delivery") for item in planned]  # all fit, or none is sent
            sent = [*sent_for_visit(planned), *packets_sent(care_event, packets)]
            table.put(key, observe(patient, care_event, opened_tasks(planned), sent).to_dict())
            for old in retired_keys:
                table.put(old, PatientState().to_dict())
            if retired_keys and journal is not None:
                await journal.db.run(journal.link_patients, retired_keys, key)
                if links is not None:  # the batch's view of the links follows the merge (chains move to the survivor)
                    links.set(key, await journal.db.run(journal.retired_into, key))
                    for old in retired_keys:
                        links.set(old, [])
            if journal is not None and (retired_keys or care_event.kind in TASK_CANCELS):
                await journal.db.run(episode_changes, journal, care_event, retired_keys)  # CarePlans (#18)
        except Exception as exc:
            await ctx.dead_letter("route", exc, event)
            return None
        planned_packets, packet_error = None, None
        if packets.planned:
            sent_keys = {item.delivery_id for item in planned}  # the Tasks the consent gate let out
            tasks = [t for t in task_requests(care_event, decision) if t.key in sent_keys]
            try:
                planned_packets = await plan_packets(ctx, packet_step, gatekeeper, care_event, packets, tasks,
                                                     order_requests(planned))  # fmt: skip
            except Exception as exc:  # the event's other deliveries go; a replay re-plans the packets (same keys)
                packet_error = exc
        written = None
        if journal is not None:  # what the scorecard counts (journal.carefacts), the CarePlan
            recipients = ctx.deps.routing.current().recipients
            fact = fact_of(care_event, planned, recipients)
            opened, cancel = tasks_of(care_event, planned), cancel_of(care_event)
            facts = (fact, opened, cancel) if fact is not None or opened or cancel is not None else None
            if facts is not None or (planned_packets is not None and planned_packets.planned):
                written = journal.db.submit(record_event, journal, facts, care_event, planned_packets,
                                            ctx.deps.hub, now_iso())  # fmt: skip
        return Routed(event, care_event, decision, found.flags, verdicts, audits, planned, outputs,
                      planned_packets, packet_error, written)  # fmt: skip

    async def send_routed(routed: Routed) -> None:
        """One event's outputs, once its journal writes committed (in the order the chunk was routed)."""
        packet_error = routed.packet_error
        if routed.written is not None:
            try:
                packet_error = await routed.written or packet_error
            except Exception as exc:
                await ctx.dead_letter("route", exc, routed.record)
                return
        care_event = routed.care_event
        ctx.metrics.inc("routed_events")
        for flag in routed.flags:
            ctx.metrics.inc("signal", flag=flag)
        report_unresolved(ctx, routed.decision)
        for verdict, audit in zip(routed.verdicts, routed.audits, strict=True):
            ctx.metrics.inc("consent", outcome=verdict.decision.outcome, rule=verdict.decision.rule)
            await ctx.send_bytes(topics.audit_events, care_event.patient_key, audit)
        for item, value in zip(routed.planned, routed.outputs, strict=True):
            ctx.metrics.inc("routed", recipient=item.recipient_id)
            await ctx.send_bytes(topics.deliveries, item.patient_key, value)
        if packet_error is not None:
            await ctx.dead_letter("packet", packet_error, routed.record)
        elif routed.packets is not None:
            await send_packets(ctx, care_event, routed.packets)

    async def route_chunk(records: Sequence[ConsumerRecord]) -> None:
        routed: list[Routed] = []
        try:
            for record in records:
                if record.topic == topics.hl7v2_inbound:
                    normalized = await normalize_one(record)
                    if normalized is None:  # dead-lettered
                        continue
                elif was_routed(record):  # written by this stage (from hl7v2.inbound), routed then
                    continue
                else:
                    normalized = None
                one = await route_one(record, normalized)
                if one is not None:
                    routed.append(one)
                # the loop between events: the deliver stage's journal answers wait for one event, not a chunk
                await asyncio.sleep(0)
            for one in routed:
                await send_routed(one)
        finally:  # a chunk cut short (a bug, a stop): its queued writes are still waited for, never orphaned
            pending = [one.written for one in routed if one.written is not None and not one.written.done()]
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    async def route_batch(records: Sequence[ConsumerRecord]) -> None:
        for store in state.stores:
            store.discard_staged()  # a batch taken again starts from the state before it
        if links is not None and journal is not None and ctx.deps.consent is not None:
            keys = sorted({r.key.decode("utf-8", "replace") for r in records if r.key is not None})
            links.use(await journal.db.run(journal.retired_into_each, keys))
        for at in range(0, len(records), CHUNK):
            await route_chunk(records[at : at + CHUNK])
        box = CURRENT.get()
        if box is not None:
            await box.durable()  # the outputs first: the changelogs are never ahead of them
        for store in state.stores:
            await store.settle(ctx.send_raw)
        for record in records:
            ctx.stage_done("route", record)

    return route_batch
