"""The patient key: the Kafka key of every record that concerns one patient.

Built from an identifier and its assigning authority (PID-3 CX.1 and CX.4), so
all events of one patient land in one partition, in order. MSH-10 is never a key.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PatientIdentifier:
    value: str
    authority: str = ""
    type_code: str = ""


def patient_key(identifier: PatientIdentifier) -> str:
    """Return ``authority|value`` (``|value`` when the authority is unknown)."""
    return f"{identifier.authority.strip().upper()}|{identifier.value.strip()}"


def choose_key_identifier(identifiers: list[PatientIdentifier]) -> PatientIdentifier | None:
    """Pick the identifier a patient key is built from.

    Prefers a medical record number (CX.5 = MR) that has an assigning authority,
    then any identifier with an authority, then the first one; ignores SSNs
    and other national identifiers when something else is present.
    """
    usable = [i for i in identifiers if i.value.strip()]
    if not usable:
        return None
    national = {"SS", "SSN", "DL", "PPN"}
    preferred = [i for i in usable if i.type_code.upper() not in national] or usable
    for candidate in preferred:
        if candidate.type_code.upper() == "MR" and candidate.authority.strip():
            return candidate
    for candidate in preferred:
        if candidate.authority.strip():
            return candidate
    return preferred[0]
