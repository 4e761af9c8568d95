"""The patient key: the Kafka key of every record that concerns one patient.

Built from an identifier and its assigning authority (PID-3 CX.1 and CX.4), so
all events of one patient land in one partition, in order. MSH-10 is never a key.

A key always has an authority: when CX.4 is empty, the configured default for
the sending facility (``default_authorities`` in carehub.yaml, by MSH-4, else
MSH-3), else the sending facility itself, so the same MRN from two hospitals
stays two patients. Ingest and normalize both call :func:`sender_patient_key`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PatientIdentifier:
    value: str
    authority: str = ""
    type_code: str = ""


def patient_key(identifier: PatientIdentifier, default_authority: str = "") -> str:
    """Return ``authority|value``; ``default_authority`` stands in for an empty CX.4."""
    authority = identifier.authority.strip() or default_authority.strip()
    return f"{authority.upper()}|{identifier.value.strip()}"


def sender_authority(facility: str, application: str, defaults: Mapping[str, str]) -> str:
    """The authority for identifiers without one: the configured default of the sender, else the sender.

    The sender is MSH-4 (sending facility), else MSH-3 (sending application);
    ``defaults`` maps a sender (case-insensitive) to an authority.
    """
    sender = (facility.strip() or application.strip()).upper()
    configured = {k.strip().upper(): v for k, v in defaults.items()}
    return configured.get(sender, sender)


def sender_patient_key(
    identifiers: list[PatientIdentifier], facility: str, application: str, defaults: Mapping[str, str]
) -> str | None:
    """The patient key of a message: the chosen identifier, its authority or the sender's."""
    chosen = choose_key_identifier(identifiers)
    if chosen is None:
        return None
    return patient_key(chosen, sender_authority(facility, application, defaults))


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
