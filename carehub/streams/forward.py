"""The HL7v2 message a ``forward`` sends (pure).

An event disclosed whole is forwarded as the sender's own bytes (the consent
stage appends the §2.32 notice as an NTE when it is Part 2 data). An event
without them — a redacted one, or one that came in over FHIR — is written
out from what it carries and nothing else: MSH naming carehub as sender (the
facility is not identified), EVN, PID from the Patient (identifiers, name,
birth date, sex, address) and PV1 from the Encounter (patient class, admit
and discharge times). A redacted event carries only what the allow-list in
part2.yaml kept, so neither can the message.
"""

from __future__ import annotations

import re
from typing import Any

from carehub.core.records import CareEvent, JSONObject
from carehub.streams.consent.codes import AUTHORITY_PREFIX

HUB = "CAREHUB"
_SEX = {"male": "M", "female": "F", "other": "O", "unknown": "U"}
_CLASS = {"IMP": "I", "EMER": "E", "AMB": "O", "OBSENC": "O", "PRENC": "P", "SS": "O", "ACUTE": "I", "NONAC": "I"}
_TS = re.compile(r"^(\d{4})-?(\d{2})?-?(\d{2})?(?:T(\d{2}):?(\d{2})?:?(\d{2})?(?:\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")


def _escape(value: Any) -> str:
    text = str(value)
    for raw, escaped in (("\\", "\\E\\"), ("|", "\\F\\"), ("^", "\\S\\"), ("~", "\\R\\"), ("&", "\\T\\")):
        text = text.replace(raw, escaped)
    return text.replace("\r", " ").replace("\n", " ")


def hl7_timestamp(value: str) -> str:
    """ISO 8601 (FHIR date/dateTime/instant) -> HL7v2 DTM; "" when unreadable."""
    match = _TS.match(value or "")
    if match is None:
        return ""
    *parts, zone = match.groups()
    stamp = "".join(p for p in parts if p)
    if zone and zone != "Z":
        stamp += zone.replace(":", "")
    elif zone == "Z":
        stamp += "+0000"
    return stamp


def _resource(event: CareEvent, kind: str, rid: str | None) -> JSONObject:
    for entry in event.bundle.get("entry", []):
        resource = entry.get("resource") or {}
        if resource.get("resourceType") == kind and resource.get("id") == rid:
            return dict(resource)
    return {}


def _pid(patient: JSONObject) -> str:
    idents = [
        f"{_escape(i['value'])}^^^{_escape(str(i.get('system', '')).removeprefix(AUTHORITY_PREFIX))}^"
        + _escape(((i.get("type") or {}).get("coding") or [{}])[0].get("code", ""))
        for i in patient.get("identifier", [])
        if i.get("value")
    ]
    names = [
        "^".join(
            _escape(v)
            for v in (n.get("family", ""), *(n.get("given", [])[:1] or [""]), " ".join(n.get("given", [])[1:]))
        ).rstrip("^")
        for n in patient.get("name", [])
    ]
    addresses = [
        "^".join(_escape(v) for v in (" ".join(a.get("line", [])), "", a.get("city", ""), a.get("state", ""),
                                       a.get("postalCode", ""), a.get("country", "")))
        for a in patient.get("address", [])
    ]  # fmt: skip
    fields = ["PID", "1", "", "~".join(idents), "", "~".join(names), "",
              hl7_timestamp(str(patient.get("birthDate", ""))), _SEX.get(str(patient.get("gender", "")), ""),
              "", "", "~".join(addresses)]  # fmt: skip
    return "|".join(fields)


def _pv1(event: CareEvent, encounter: JSONObject) -> str:
    klass = str(event.attributes.get("patient_class") or _CLASS.get(event.encounter_class, ""))
    period = encounter.get("period") or {}
    fields = ["PV1", "1", _escape(klass), *([""] * 41), hl7_timestamp(str(period.get("start", ""))),
              hl7_timestamp(str(period.get("end", "")))]  # fmt: skip
    return "|".join(fields).rstrip("|")


def serialize(event: CareEvent, control_id: str, now: str) -> str:
    """An ADT message written from the event's own content (see the module docstring)."""
    trigger = _escape(event.trigger or "A08")
    stamp = hl7_timestamp(now)
    segments = [
        f"MSH|^~\\&|{HUB}|{HUB}|||{stamp}||ADT^{trigger}|{_escape(control_id)}|P|2.5.1",
        f"EVN|{trigger}|{stamp}",
        _pid(_resource(event, "Patient", event.patient_id)),
    ]
    if event.encounter_id:
        segments.append(_pv1(event, _resource(event, "Encounter", event.encounter_id)))
    return "\r".join(segments) + "\r"


def forward_message(event: CareEvent, control_id: str, now: str) -> str:
    """The sender's bytes when the event is disclosed whole, else the event written out."""
    if event.source_hl7 and not event.attributes.get("redacted"):
        return event.source_hl7
    return serialize(event, control_id, now)
