"""The transition-of-care packet as a FHIR R4 document Bundle, and the message that carries it (pure).

The document: a Composition first (C-CDA on FHIR Discharge Summary sections,
streams.packet.sections), then every resource a section, the CarePlan or the
Composition references, transitively; each reference resolves inside the Bundle.
Entries come from the discharge event (the ADT as mapped, possibly enriched from
the hospital's FHIR server, possibly redacted by the consent gate) and from the
follow-up tasks the routing map plans for the same discharge. A section with no
entry says why (``emptyReason`` and narrative): not in the ADT, not answered by
the source in time, withheld from this recipient, or none known.

The message (``packet_message``): a Bundle of type message whose MessageHeader
(event ``toc-packet``) has the document as its focus, so the packet travels to
``$process-message`` endpoints, webhooks and topics like every notification.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from carehub.core.memo import IdentityMemo
from carehub.core.records import CareEvent, JSONObject
from carehub.core.uuids import Namespace
from carehub.mappings.validation import validate_resource
from carehub.streams.notify import (
    PROVENANCE_AGENT,
    US_CORE_AGENT,
    Hub,
    closure,
    entry,
    organization,
    references,
    resources_by_ref,
)
from carehub.streams.packet.careplan import MESSAGE_EVENTS, care_plan
from carehub.streams.packet.enrich import ATTRIBUTE, DOCUMENT_TYPES, EnrichmentNote
from carehub.streams.packet.sections import BY_KEY, DOCUMENT_TYPE, EMPTY_REASON, LOCAL_SECTION, PROFILE, Section
from carehub.streams.referrals import KINDS, TaskRequest, owner_organization, service_request, task_resource

PACKET_SYSTEM = "urn:carehub:packet"
_NS = Namespace("9e4d7c2a-1b5f-4a3e-b8d6-2c0f9a7e5b31")
RESULT_DONE = frozenset({"final", "amended", "corrected"})
RESULT_PENDING = frozenset({"registered", "preliminary", "partial"})
PARTICIPANT_ROLES = {"ATND": "attending physician", "ADM": "admitting physician", "REF": "referring physician",
                     "CON": "consulting physician"}  # fmt: skip


def _uuid(key: str, what: str) -> str:
    return _NS.id(f"{what}|{key}")


def _ref(resource: JSONObject) -> str:
    return f"{resource['resourceType']}/{resource['id']}"


def _code_text(value: Any) -> str:
    if not isinstance(value, dict):
        return ""
    codings = value.get("coding") or []
    for coding in codings:
        if coding.get("display"):
            return str(coding["display"])
    if value.get("text"):
        return str(value["text"])
    return str(codings[0].get("code", "")) if codings else ""


def _name(resource: JSONObject) -> str:
    name = resource.get("name")
    if isinstance(name, str):
        return name
    if isinstance(name, list) and name:
        first = name[0]
        if first.get("text"):
            return str(first["text"])
        parts = [*first.get("prefix", []), *first.get("given", []), first.get("family", "")]
        return " ".join(str(p) for p in parts if p)
    return ""


def display(resource: JSONObject) -> str:
    """A short human line for a resource (the sections' narrative)."""
    kind = resource.get("resourceType")
    if kind in ("Practitioner", "Organization", "Location"):
        return _name(resource) or kind
    if kind in ("MedicationRequest", "MedicationStatement"):
        med = _code_text(resource.get("medicationCodeableConcept")) or str(
            resource.get("medicationReference", {}).get("display", "medication")
        )
        dosages = resource.get("dosage") or resource.get("dosageInstruction") or []
        dosage = [str(d.get("text")) for d in dosages if d.get("text")]
        return med + (f": {'; '.join(dosage)}" if dosage else "")
    if kind == "Observation":
        value = resource.get("valueQuantity")
        shown = f"{value.get('value')} {value.get('unit', '')}".strip() if isinstance(value, dict) else ""
        shown = shown or str(resource.get("valueString") or _code_text(resource.get("valueCodeableConcept")))
        return f"{_code_text(resource.get('code'))}: {shown or 'no value'} ({resource.get('status', '')})"
    if kind == "DiagnosticReport":
        return f"{_code_text(resource.get('code'))} ({resource.get('status', '')})"
    if kind == "DocumentReference":
        return str(resource.get("description") or _code_text(resource.get("type")) or "document")
    if kind == "AllergyIntolerance":
        reactions = [_code_text(m) for r in resource.get("reaction", []) for m in r.get("manifestation", [])]
        return _code_text(resource.get("code")) + (f" (reaction: {', '.join(reactions)})" if reactions else "")
    return _code_text(resource.get("code")) or str(kind)


def _div(lines: Sequence[str]) -> JSONObject:
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    return {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><ul>{items}</ul></div>'}


def _section(spec: Section, refs: Sequence[str], lines: Sequence[str], empty: tuple[str, str] | None) -> JSONObject:
    out: JSONObject = {
        "title": spec.title,
        "code": {"coding": [{"system": spec.system, "code": spec.code, "display": spec.display}]},
    }
    unique = list(dict.fromkeys(refs))
    if unique:
        out["entry"] = [{"reference": r} for r in unique]
        out["text"] = _div(lines or [spec.title])
        return out
    code, why = empty or ("unavailable", "Nothing to report.")
    out["text"] = _div([*lines, why] if lines else [why])
    out["emptyReason"] = {"coding": [{"system": EMPTY_REASON, "code": code}], "text": why}
    return out


class _Content:
    """What the event holds, by type, and why something may be absent."""

    def __init__(self, event: CareEvent) -> None:
        self.event = event
        self.available = resources_by_ref(event.bundle)
        self.redacted = bool(event.attributes.get("redacted"))
        self.note = EnrichmentNote.from_attribute(event.attributes.get(ATTRIBUTE))
        self.encounter = self.available.get(f"Encounter/{event.encounter_id}", {}) if event.encounter_id else {}

    def of(self, *types: str, where: Callable[[JSONObject], bool] = lambda _: True) -> list[JSONObject]:
        return [r for r in self.available.values() if r.get("resourceType") in types and where(r)]

    def why_empty(self, adt: str, queried: Sequence[str] = ()) -> tuple[str, str]:
        """(emptyReason code, text) for a section with nothing in it."""
        if self.redacted:
            return "withheld", "Not disclosed to this recipient."
        if not queried:
            return "unavailable", adt
        if self.note is None:
            return "unavailable", f"{adt} No FHIR source is configured for this facility to complete it from."
        missing = [m for m in self.note.missing if m.what in queried]
        if missing:
            why = "; ".join(f"{m.what}: {m.reason}" for m in missing)
            return "unavailable", f"{adt} Not completed from {self.note.source}: {why}."
        return "nilknown", f"{adt} {self.note.source} has none on record."


def _participants(content: _Content) -> list[tuple[str, str]]:
    """(role, Practitioner reference) of the encounter's practitioners, attending first."""
    found = []
    for p in content.encounter.get("participant", []):
        codes = [c.get("code") for t in p.get("type", []) for c in t.get("coding", [])]
        ref = str(p.get("individual", {}).get("reference", ""))
        role = next((PARTICIPANT_ROLES[c] for c in codes if c in PARTICIPANT_ROLES), "participant")
        if ref in content.available:
            found.append((role, ref))
    return sorted(found, key=lambda rp: rp[0] != "attending physician")


def _encounter_section(content: _Content) -> JSONObject:
    event, enc = content.event, content.encounter
    refs, lines = ([f"Encounter/{event.encounter_id}"], []) if enc else ([], [])
    if enc:
        period = enc.get("period", {})
        cls = enc.get("class", {}).get("display") or event.encounter_class
        lines.append(f"{cls} from {period.get('start', '?')} to {period.get('end', '?')} at {event.facility or '?'}")
    attending = [ref for role, ref in _participants(content) if role == "attending physician"]
    for ref in attending:
        refs.append(ref)
        lines.append(f"Responsible (attending) practitioner: {display(content.available[ref])}")
    if enc and not attending and not content.redacted:
        lines.append("The ADT message names no attending practitioner (PV1-7).")
    summary = DOCUMENT_TYPES["discharge-summary"]
    for doc in content.of("DocumentReference", where=lambda d: _has_type(d, summary)):
        refs.append(_ref(doc))
        lines.append(f"Discharge summary: {display(doc)}")
    return _section(BY_KEY["encounter"], refs, lines, content.why_empty("The ADT message carried no visit (PV1)."))


def _has_type(resource: JSONObject, code: str) -> bool:
    return any(c.get("code") == code for c in resource.get("type", {}).get("coding", []))


def _diagnoses(content: _Content) -> list[JSONObject]:
    listed = [str(d.get("condition", {}).get("reference", "")) for d in content.encounter.get("diagnosis", [])]
    found = [content.available[r] for r in listed if r in content.available]
    found += [c for c in content.of("Condition", where=_encounter_diagnosis) if c not in found]
    return found


def _encounter_diagnosis(condition: JSONObject) -> bool:
    codes = [c.get("code") for cat in condition.get("category", []) for c in cat.get("coding", [])]
    return "encounter-diagnosis" in codes


def _listed(key: str, resources: Sequence[JSONObject], why: tuple[str, str]) -> JSONObject:
    return _section(BY_KEY[key], [_ref(r) for r in resources], [display(r) for r in resources], why)


def _disposition_section(content: _Content) -> JSONObject:
    hospitalization = content.encounter.get("hospitalization", {})
    refs, lines = [], []
    disposition = hospitalization.get("dischargeDisposition")
    if disposition:
        refs.append(f"Encounter/{content.event.encounter_id}")
        lines.append(f"Disposition: {_code_text(disposition)}")
    destination = str(hospitalization.get("destination", {}).get("reference", ""))
    if destination in content.available:
        refs.append(destination)
        lines.append(f"Discharged to: {display(content.available[destination])}")
    why = content.why_empty("The ADT message gave no disposition (PV1-36) or discharge location (PV1-37).")
    return _section(BY_KEY["disposition"], refs, lines, why)


def _due(task: JSONObject) -> str:
    return str(task.get("restriction", {}).get("period", {}).get("end", ""))[:10]


class _Plan:
    """The follow-up Tasks (with their ServiceRequests and owners), the CareTeam and the CarePlan."""

    def __init__(
        self,
        content: _Content,
        tasks: Sequence[TaskRequest],
        orders: Sequence[JSONObject],
        hub_org: JSONObject,
        created: str,
    ) -> None:
        event = content.event
        self.resources: list[JSONObject] = []
        self.tasks: list[tuple[TaskRequest, JSONObject]] = []
        patient_ref = f"Patient/{event.patient_id}"
        authored = event.occurred_at or created
        owners: dict[str, JSONObject] = {}
        for request in tasks:
            owner = owners.get(request.owner.id)
            if owner is None:
                owner = owners[request.owner.id] = {
                    **owner_organization(request.owner),
                    "id": _uuid(request.owner.id, "owner"),
                }
                self.resources.append(owner)
            sr_id = _uuid(request.key, "service-request")
            urls = {"patient": patient_ref, "hub": _ref(hub_org), "owner": _ref(owner),
                    "service_request": f"ServiceRequest/{sr_id}"}  # fmt: skip
            if content.encounter:
                urls["encounter"] = f"Encounter/{event.encounter_id}"
            task = {**task_resource(request, urls, authored), "id": request.key}
            self.resources += [{**service_request(event, request, urls, authored), "id": sr_id}, task]
            self.tasks.append((request, task))
        self.owners = owners
        self.care_team = self._care_team(content, patient_ref)
        self.resources.append(self.care_team)
        addresses = [_ref(c) for c in _diagnoses(content)]
        self.plan = care_plan(event, tasks, patient_ref=patient_ref, author_ref=_ref(hub_org),
                              care_team_ref=_ref(self.care_team), addresses=addresses, created=created)  # fmt: skip
        # logistics orders (transport, DME, home health) the hub's desk arranges: activities too
        self.orders = [{**o, "subject": {"reference": patient_ref}} for o in orders]
        if self.orders:
            extra = [{"reference": {"reference": _ref(o), "display": str(o.get("code", {}).get("text", "order"))}}
                     for o in self.orders]  # fmt: skip
            self.plan = {**self.plan, "activity": [*self.plan.get("activity", []), *extra]}
        self.resources += [*self.orders, self.plan]

    def _care_team(self, content: _Content, patient_ref: str) -> JSONObject:
        event = content.event
        members: list[tuple[str, str]] = _participants(content)
        for pcp in event.attributes.get("pcp", []) if isinstance(event.attributes.get("pcp"), list) else []:
            ref = f"{pcp.get('type')}/{pcp.get('id')}"
            if ref in content.available:
                members.append(("primary care provider", ref))
        members += [("follow-up task owner", _ref(o)) for o in self.owners.values()]
        team: JSONObject = {
            "resourceType": "CareTeam",
            "id": _uuid(event.event_id, "care-team"),
            "status": "active",
            "name": "Care team for the transition after discharge",
            "subject": {"reference": patient_ref},
        }
        if content.encounter:
            team["encounter"] = {"reference": f"Encounter/{event.encounter_id}"}
        unique = list(dict.fromkeys(members))
        if unique:
            team["participant"] = [{"role": [{"text": role}], "member": {"reference": ref}} for role, ref in unique]
        return team


def _instruction_lines(plan: _Plan) -> list[str]:
    lines = []
    for request, task in plan.tasks:
        kind = KINDS.get(request.code)
        lines.append(f"{kind.display if kind else request.code}: {request.owner.name}, due by {_due(task)}")
    for order in plan.orders:
        window = order.get("occurrencePeriod", {})
        lines.append(f"{order.get('code', {}).get('text', 'order')}: arranged by carehub, "
                     f"{str(window.get('start', '?'))[:16]} to {str(window.get('end', '?'))[:16]}")  # fmt: skip
    return lines


def _sections(content: _Content, plan: _Plan, available: dict[str, JSONObject]) -> list[JSONObject]:
    instructions_type = DOCUMENT_TYPES["discharge-instructions"]
    instructions = content.of("DocumentReference", where=lambda d: _has_type(d, instructions_type))
    results = content.of("Observation", where=lambda o: o.get("status") in RESULT_DONE)
    pending = content.of("Observation", where=lambda o: o.get("status") in RESULT_PENDING)
    pending += content.of("DiagnosticReport", where=lambda r: r.get("status") in RESULT_PENDING)
    problems = content.of("Condition", where=lambda c: not _encounter_diagnosis(c) and c not in _diagnoses(content))
    instruction_lines = [display(d) for d in instructions] + _instruction_lines(plan)
    team = plan.care_team
    team_lines = [f"{p['role'][0]['text']}: {display(available[p['member']['reference']])}"
                  for p in team.get("participant", [])]  # fmt: skip
    plan_lines = ["CarePlan: transition of care after discharge"] + _instruction_lines(plan)
    why = content.why_empty
    return [
        _encounter_section(content),
        _listed("diagnoses", _diagnoses(content), why("The ADT message carried no diagnosis (DG1).")),
        _listed("procedures", content.of("Procedure"), why("The ADT message carried no procedure (PR1).")),
        _listed("allergies", content.of("AllergyIntolerance"),
                content.why_empty("The ADT message carried no allergy (AL1).", ["AllergyIntolerance"])),
        _listed("results", results, content.why_empty("The ADT message carried no final result (OBX).")),
        _disposition_section(content),
        _section(BY_KEY["instructions"],
                 [_ref(d) for d in instructions] + [_ref(t) for _, t in plan.tasks] + [_ref(o) for o in plan.orders],
                 instruction_lines,
                 content.why_empty("No follow-up was planned and no instructions were sent.", ["DocumentReference"])),
        _listed("medications", content.of("MedicationRequest", "MedicationStatement"),
                why("An ADT message carries no medications.", ["MedicationRequest", "MedicationStatement"])),
        _listed("pending", pending, _pending_empty(content)),
        _listed("problems", problems, content.why_empty("An ADT message carries no problem list.", ["Condition"])),
        _section(BY_KEY["care-team"], [_ref(team)] if team.get("participant") else [], team_lines,
                 content.why_empty("No practitioner or follow-up owner is known.")),
        _section(BY_KEY["plan"], [_ref(plan.plan), *(_ref(t) for _, t in plan.tasks), *(_ref(o) for o in plan.orders)],
                 plan_lines, None),
    ]  # fmt: skip


def _pending_empty(content: _Content) -> tuple[str, str]:
    code, why = content.why_empty("The ADT message carried no pending result (OBX).", ["DiagnosticReport"])
    return (code, "No tests pending. " + why) if code == "nilknown" else (code, why)


def _missing_section(content: _Content) -> JSONObject | None:
    if content.note is None or not content.note.missing:
        return None
    lines = [f"{m.what}: {m.reason}" for m in content.note.missing]
    spec = Section("missing", LOCAL_SECTION, "missing", "Information not available", "Information not available",
                   "what the FHIR source did not give in time")  # fmt: skip
    why = f"Not completed from {content.note.source}; the sections above say what they lack."
    return _section(spec, [], lines, ("unavailable", why))


def _agent(system: str, code: str, who: JSONObject) -> JSONObject:
    return {"type": {"coding": [{"system": system, "code": code}]}, "who": {"reference": _ref(who)}}


@dataclass(frozen=True, slots=True)
class _Body:
    """What a packet holds that is the same for every recipient of one event (as that recipient may see it)."""

    hub_org: JSONObject
    source_org: JSONObject
    available: dict[str, JSONObject]
    sections: list[JSONObject]
    #: the references of a Composition of these sections (as ``references`` finds them, in order)
    composition_refs: list[str]
    encounter: JSONObject


#: A packet's body, built once per event, hub, task list, order list and time (core.memo; the last 64
#: events): every recipient's packet of a discharge differs only in the ids its delivery's key seeds.
_BODIES: IdentityMemo[_Body] = IdentityMemo(limit=64)


def _body(event: CareEvent, hub: Hub, timestamp: str, tasks: Sequence[TaskRequest],
          orders: Sequence[JSONObject]) -> _Body:  # fmt: skip
    content = _Content(event)
    hub_org = organization(hub.organization_id, hub.name)
    source_org = organization(_uuid(event.facility, "facility"), event.facility or "unknown sender")
    plan = _Plan(content, tasks, orders, hub_org, timestamp)
    available = {**content.available, **{_ref(r): r for r in [hub_org, source_org, *plan.resources]}}
    sections = _sections(content, plan, available)
    missing = _missing_section(content)
    if missing is not None:
        sections.append(missing)
    refs = [f"Patient/{event.patient_id}", _ref(hub_org), _ref(hub_org), *references(sections)]
    if content.encounter:
        refs.append(f"Encounter/{event.encounter_id}")
    return _Body(hub_org, source_org, available, sections, refs, content.encounter)


def packet_document(
    event: CareEvent,
    *,
    hub: Hub,
    key: str,
    timestamp: str,
    tasks: Sequence[TaskRequest],
    orders: Sequence[JSONObject] = (),
) -> JSONObject:
    """The document Bundle for one recipient's disclosure of ``event`` (already gated and maybe redacted)."""
    body = _BODIES.value(event, lambda: _body(event, hub, timestamp, tasks, orders), hub, timestamp, tasks, orders)
    hub_org, source_org = body.hub_org, body.source_org
    composition: JSONObject = {
        "resourceType": "Composition",
        "id": _uuid(key, "composition"),
        "meta": {"profile": [PROFILE]},
        "identifier": {"system": PACKET_SYSTEM, "value": key},
        "status": "final",
        "type": {"coding": [DOCUMENT_TYPE]},
        "subject": {"reference": f"Patient/{event.patient_id}"},
        "date": timestamp,
        "author": [{"reference": _ref(hub_org)}],
        "title": "Transition of care packet",
        "custodian": {"reference": _ref(hub_org)},
        "section": body.sections,
    }
    if body.encounter:
        composition["encounter"] = {"reference": f"Encounter/{event.encounter_id}"}
        if body.encounter.get("period"):
            composition["event"] = [{"period": body.encounter["period"]}]
    provenance: JSONObject = {
        "resourceType": "Provenance",
        "id": _uuid(key, "provenance"),
        "target": [{"reference": _ref(composition)}],
        "recorded": timestamp,
        "agent": [_agent(PROVENANCE_AGENT, "author", source_org), _agent(US_CORE_AGENT, "assembler", hub_org)],
    }
    available = {**body.available, _ref(provenance): provenance, _ref(composition): composition}
    known = {_ref(composition): body.composition_refs}
    included = closure([_ref(composition), _ref(provenance)], available, known)
    doc_id = _uuid(key, "document")
    return {
        "resourceType": "Bundle",
        "id": doc_id,
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{doc_id}"},
        "type": "document",
        "timestamp": timestamp,
        "entry": [entry(hub.base_url, r) for r in included],
    }


def packet_message(
    document: JSONObject, *, hub: Hub, destination: str, recipient_name: str, key: str, timestamp: str
) -> JSONObject:
    """The message Bundle that carries ``document`` to one recipient (MessageHeader focus: the document)."""
    hub_org = organization(hub.organization_id, hub.name)
    header: JSONObject = {
        "resourceType": "MessageHeader",
        "id": _uuid(key, "header"),
        "eventCoding": {"system": MESSAGE_EVENTS, "code": "toc-packet"},
        "destination": [{"name": recipient_name, "endpoint": destination}],
        "sender": {"reference": _ref(hub_org)},
        "source": {"name": hub.name, "endpoint": hub.base_url},
        "focus": [{"reference": f"Bundle/{document['id']}"}],
    }
    return {
        "resourceType": "Bundle",
        "id": _uuid(key, "message"),
        "type": "message",
        "timestamp": timestamp,
        "entry": [entry(hub.base_url, r) for r in (header, document, hub_org)],
    }


def packet_of(message: JSONObject) -> JSONObject | None:
    """The document Bundle a packet message carries (None for any other Bundle)."""
    entries = message.get("entry", [])
    header = entries[0].get("resource", {}) if entries else {}
    if header.get("eventCoding", {}).get("code") != "toc-packet":
        return None
    return next((e["resource"] for e in entries if e.get("resource", {}).get("resourceType") == "Bundle"), None)


def packet_problems(bundle: JSONObject) -> list[str]:
    """Every R4 schema finding of a packet (document or message) and every reference that does not resolve."""
    shell = {**bundle, "entry": [{"fullUrl": e.get("fullUrl")} for e in bundle.get("entry", [])]}
    problems = validate_resource(shell)
    for item in bundle.get("entry", []):
        resource = item.get("resource", {})
        if resource.get("resourceType") == "Bundle":
            problems += packet_problems(resource)
        else:
            problems += validate_resource(resource)
    known = resources_by_ref(bundle)
    for ref, resource in known.items():
        if resource.get("resourceType") == "Bundle":
            continue
        problems += [f"{ref}: reference {r} does not resolve" for r in references(resource) if r not in known]
    return problems
