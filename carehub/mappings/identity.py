"""Who and which visit a message is about: patient key and Encounter id.

The patient key is built exactly as ingest builds the Kafka key
(``core.patient``), so CareEvents land in the partition of their patient.
The Encounter id comes from the visit number (PV1-19) and its authority, else
from the patient key and the admit time, so the A01 and the A03 of one visit
share it. Without either, the id is per message and the event cannot be
linked to its visit; that is reported as an issue.
"""

from __future__ import annotations

from collections.abc import Mapping

from carehub.adapters.hl7.header import Header, pid_identifiers
from carehub.adapters.hl7.tokenizer import Segment
from carehub.core.patient import sender_authority, sender_patient_key
from carehub.mappings import ids
from carehub.mappings.transforms.datetimes import to_datetime


def patient_key_of(pid: Segment, header: Header, default_authorities: Mapping[str, str]) -> str | None:
    """The key ingest gave the message (``core.patient.sender_patient_key``), from PID-3."""
    return sender_patient_key(
        pid_identifiers(pid), header.sending_facility, header.sending_application, default_authorities
    )


def default_authority(header: Header, default_authorities: Mapping[str, str]) -> str:
    """What an identifier without CX.4 is qualified with in this message (MRG-1 of a merge too)."""
    return sender_authority(header.sending_facility, header.sending_application, default_authorities)


def patient_id(key: str) -> str:
    return ids.resource_id("Patient", key)


def encounter_id(pv1: Segment, key: str, header: Header) -> tuple[str, bool]:
    """(id, linked): ``linked`` is False when nothing ties the id to the visit."""
    visit = pv1.get(19, 1).strip()
    if visit:
        authority = (pv1.get(19, 4, 1) or pv1.get(19, 4, 2)).strip().upper()
        return ids.resource_id("Encounter", "visit", authority or header.sending_facility.upper(), visit), True
    admitted = to_datetime(pv1.get(44, 1))
    if admitted:
        return ids.resource_id("Encounter", "admit", key, admitted), True
    return ids.resource_id("Encounter", "message", header.sending_facility, header.control_id), False
