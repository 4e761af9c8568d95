"""The §2.51 medical-emergency exception, by attestation only (pure).

42 CFR 2.51 lets a program disclose to medical personnel, without consent, to
the extent necessary to meet a bona fide medical emergency, and requires the
disclosure to be documented. carehub never infers an emergency from the
message (PV1-2 = E says where the patient is, not that a clinician needs the
record): a named person attests it, for one patient, one recipient and a
bounded period, with the reason. The attestation is stored beside the consents
(every worker reads it), audited when made, and cited by every decision it
permits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from carehub.core.clock import iso
from carehub.streams.consent.model import ConsentError

#: Record kind on the consents topic; keys are ``emergency/<id>``.
KIND = "carehub.part2-emergency-attestation/1"
KEY_PREFIX = "emergency/"
#: The longest period one attestation may cover (an emergency is not a standing permission).
MAX_PERIOD = timedelta(hours=72)
_REQUIRED = ("id", "patient", "recipient", "attested_by", "reason", "start", "end")


@dataclass(frozen=True, slots=True)
class Attestation:
    id: str
    patient_key: str
    recipient_id: str
    attested_by: str
    reason: str
    start: str
    end: str
    recorded: str
    #: Who called the API (the authenticated principal), kept apart from the clinician named.
    recorded_by: str = ""

    def covers(self, patient_key: str, recipient_id: str, now: str) -> bool:
        return self.patient_key == patient_key and self.recipient_id == recipient_id and self.start <= now <= self.end

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": KIND,
            "id": self.id,
            "patient": self.patient_key,
            "recipient": self.recipient_id,
            "attested_by": self.attested_by,
            "reason": self.reason,
            "start": self.start,
            "end": self.end,
            "recorded": self.recorded,
            "recorded_by": self.recorded_by,
        }


def attested(attestations: Iterable[Attestation], patient_key: str, recipient_id: str, now: str) -> Attestation | None:
    """The attestation that covers this patient, recipient and moment, if any."""
    return next((a for a in attestations if a.covers(patient_key, recipient_id, now)), None)


def _instant(value: Any, name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConsentError(f"{name} must be an ISO 8601 date-time, got {value!r}") from exc
    if parsed.tzinfo is None:
        raise ConsentError(f"{name} must carry a time zone (e.g. 2026-11-08T14:00:00Z)")
    return parsed.astimezone(UTC)


def parse_attestation(body: Any, *, recorded: str, recorded_by: str = "") -> Attestation:
    """An attestation from the API body; every missing element is named at once."""
    if not isinstance(body, dict):
        raise ConsentError("the attestation must be a JSON object")
    missing = [name for name in _REQUIRED if not str(body.get(name, "")).strip()]
    if missing:
        raise ConsentError("the emergency attestation lacks: " + ", ".join(missing))
    start, end = _instant(body["start"], "start"), _instant(body["end"], "end")
    if end <= start:
        raise ConsentError("end must be after start")
    if end - start > MAX_PERIOD:
        raise ConsentError(f"an emergency attestation covers at most {MAX_PERIOD.total_seconds() / 3600:g} hours")
    return Attestation(
        id=str(body["id"]),
        patient_key=str(body["patient"]),
        recipient_id=str(body["recipient"]),
        attested_by=str(body["attested_by"]),
        reason=str(body["reason"]),
        start=iso(start),
        end=iso(end),
        recorded=recorded,
        recorded_by=recorded_by,
    )


def from_record(data: dict[str, Any]) -> Attestation:
    """An attestation as stored on the consents topic."""
    if data.get("schema") != KIND:
        raise ConsentError(f"expected {KIND}, got {data.get('schema')!r}")
    return Attestation(
        id=str(data["id"]),
        patient_key=str(data["patient"]),
        recipient_id=str(data["recipient"]),
        attested_by=str(data["attested_by"]),
        reason=str(data["reason"]),
        start=str(data["start"]),
        end=str(data["end"]),
        recorded=str(data["recorded"]),
        recorded_by=str(data.get("recorded_by", "")),
    )
