"""HL7v2 ADT -> FHIR R4 Bundle + CareEvent: the conversion entry points.

One pass over the segments in message order: each segment goes to the
sections its message map names; what no section takes is listed in
``unmapped`` and carried on the MessageHeader. Identity (patient key,
Patient and Encounter ids) is settled before any section runs, so every
reference is known up front and ids are the same in every message about the
same patient and visit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from carehub.adapters.hl7.header import Header, read_header
from carehub.adapters.hl7.tokenizer import Message, Segment, parse_message
from carehub.core.errors import MappingError, MessageError
from carehub.core.records import CareEvent
from carehub.mappings import ids
from carehub.mappings.care_event import build_event, occurred_at
from carehub.mappings.context import BuildContext, Resource
from carehub.mappings.errors import MissingIdentifierError, MissingSegmentError, NotAdtError, UnreadableError
from carehub.mappings.events import Trigger, trigger
from carehub.mappings.identity import default_authority, encounter_id, patient_id, patient_key_of
from carehub.mappings.merge import apply_merge, group_survivor
from carehub.mappings.plan import MessagePlan, Plans, default_plans
from carehub.mappings.postprocess import carry_segments, finish_encounter, set_focus
from carehub.mappings.transforms.datetimes import to_instant

ENCOUNTER_SEGMENTS = frozenset({"PV1", "PV2"})


@dataclass(frozen=True, slots=True)
class Conversion:
    """The outcome of converting one message. ``bundle`` is ``event.bundle``."""

    event: CareEvent
    bundle: dict[str, Any]
    unmapped: list[str]
    issues: list[str]


def convert_text(
    text: str,
    *,
    received_at: str | None = None,
    validate: bool = False,
    plans: Plans | None = None,
    default_authorities: Mapping[str, str] | None = None,
) -> Conversion:
    """Tokenize and convert one message; unreadable text raises a MappingError.

    ``default_authorities``: the ``default_authorities`` setting (sender -> authority for PID-3 without CX.4).
    """
    try:
        message = parse_message(text)
    except MessageError as exc:
        raise UnreadableError(f"not a readable HL7v2 message: {exc.message}") from exc
    return convert(
        message, received_at=received_at, validate=validate, plans=plans, default_authorities=default_authorities
    )


def event_id_of(text: str) -> str:
    """The ``CareEvent.event_id`` that ``convert_text`` gives this message, from its header and trigger alone.

    For a reader that only needs the id (the message journal) and not the conversion; raises as
    ``convert_text`` does when the message is unreadable, not an ADT or has no trigger.
    """
    try:
        message = parse_message(text)
    except MessageError as exc:
        raise UnreadableError(f"not a readable HL7v2 message: {exc.message}") from exc
    header = read_header(message)
    return ids.event_id(header.sending_facility, header.control_id, _trigger(message, header).kind)


def convert(
    message: Message,
    *,
    received_at: str | None = None,
    validate: bool = False,
    plans: Plans | None = None,
    default_authorities: Mapping[str, str] | None = None,
) -> Conversion:
    """Convert a tokenized ADT message. ``validate`` adds schema/reference findings to ``issues``."""
    header = read_header(message)
    event_trigger = _trigger(message, header)
    plan = _plan(plans or default_plans(), header, event_trigger)
    ctx = _context(message, header, event_trigger, plan, default_authorities or {})
    unmapped, carried, merges = _apply(message, ctx, plan, event_trigger, plans or default_plans())
    event_time = occurred_at(message, header)
    finish_encounter(ctx, event_trigger, event_time or None)
    set_focus(ctx)
    carry_segments(ctx, carried)
    bundle = _bundle(ctx, header, received_at)
    issues = ctx.issues
    if validate:
        from carehub.mappings.validation import validate_bundle

        issues = [*issues, *validate_bundle(bundle)]
    event = build_event(ctx, message, header, event_trigger, bundle, unmapped, received_at, merges, event_time)
    return Conversion(event=event, bundle=bundle, unmapped=unmapped, issues=issues)


def _trigger(message: Message, header: Header) -> Trigger:
    if header.message_type != "ADT":
        raise NotAdtError(f"MSH-9 is {header.type_label or 'empty'!r}, not an ADT message")
    code = header.trigger_event
    if not code:
        evn = message.segment("EVN")
        code = evn.get(1).strip().upper() if evn is not None else ""
    if not code:
        raise MappingError("no trigger event in MSH-9.2 or EVN-1")
    return trigger(code)


def _plan(plans: Plans, header: Header, event_trigger: Trigger) -> MessagePlan:
    available = plans.available()
    for candidate in (header.structure, event_trigger.structure):
        if candidate in available:
            return plans.get(candidate)
    return plans.get("ADT_A01")


def _context(
    message: Message, header: Header, event_trigger: Trigger, plan: MessagePlan, authorities: Mapping[str, str]
) -> BuildContext:
    pid = message.segment("PID")
    if pid is None:
        raise MissingSegmentError(f"{header.type_label} has no PID segment")
    key = patient_key_of(pid, header, authorities)
    if key is None:
        raise MissingIdentifierError("PID-3 (and PID-2/PID-4) carry no patient identifier")
    message_key = f"{header.sending_facility}|{header.control_id}|{event_trigger.code}"
    ctx = BuildContext(message.delimiters, key, message_key, default_authority(header, authorities))
    ctx.ids["Patient"] = patient_id(key)
    pv1 = message.segment("PV1")
    if pv1 is not None and event_trigger.encounter and "PV1" in plan.segments:
        ctx.ids["Encounter"], linked = encounter_id(pv1, key, header)
        if not linked:
            ctx.issues.append("Encounter id is per message: PV1-19 (visit number) and PV1-44 (admit time) are empty")
    return ctx


def _raw(segment: Segment, message: Message) -> str:
    return message.delimiters.field.join(segment.fields)


def _apply(
    message: Message, ctx: BuildContext, plan: MessagePlan, event_trigger: Trigger, plans: Plans
) -> tuple[list[str], list[str], list[dict[str, str]]]:
    unmapped: list[str] = []
    carried: list[str] = []
    merges: list[dict[str, str]] = []
    cx = plans.files.datatype("CX")
    has_mrg = message.segment("MRG") is not None
    survivor: tuple[str, Resource] | None = None
    for seg in message.segments:
        name = seg.name
        ctx.segment = seg
        if name == "PID" and survivor is not None or (name == "PID" and "Patient" in ctx.latest):
            survivor = group_survivor(seg, ctx, cx) if has_mrg else None
            if survivor is None:
                _skip(seg, message, unmapped, carried, "second PID")
            continue
        if name == "MRG":
            key, patient = survivor or (ctx.patient_key, ctx.latest.get("Patient") or {})
            prior = apply_merge(seg, ctx, cx, patient, key) if patient else None
            if prior is not None:
                merges.append({"from": prior, "into": key})
            continue
        if name in ENCOUNTER_SEGMENTS and "Encounter" not in ctx.ids:
            _skip(seg, message, unmapped, carried, f"no visit in {event_trigger.code}")
            continue
        applied = False
        for section in plan.segments.get(name, ()):
            applied = section.apply(seg, ctx) or applied
        if not applied:
            _skip(seg, message, unmapped, carried, "")
    return unmapped, carried, merges


def _skip(seg: Segment, message: Message, unmapped: list[str], carried: list[str], why: str) -> None:
    label = f"{seg.name}#{seg.index + 1}"
    unmapped.append(f"{label} ({why})" if why else label)
    carried.append(_raw(seg, message))


def _bundle(ctx: BuildContext, header: Header, received_at: str | None) -> dict[str, Any]:
    """A ``collection`` Bundle, MessageHeader first; fullUrls are ``urn:uuid:<id>``."""
    resources = sorted(ctx.resources.values(), key=lambda r: r["resourceType"] != "MessageHeader")
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": ids.resource_id("Bundle", ctx.message_key),
        "type": "collection",
    }
    stamp = to_instant(header.timestamp) or (to_instant(received_at) if received_at else None)
    if stamp:
        bundle["timestamp"] = stamp
    if header.control_id:
        bundle["identifier"] = {
            "system": "urn:carehub:control-id:" + ids.quote(header.sending_facility),
            "value": header.control_id,
        }
    bundle["entry"] = [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources]
    return bundle
