"""Patient key and resource ids for FHIR resources, by the same rules as ADT.

The HL7v2 maps turn an assigning authority (CX.4) into ``Identifier.system``
(``carehub/mappings/transforms/identifiers.py``); here the system is turned back into
the authority, so a Patient whose identifier is ``urn:carehub:authority:RGH``
``MRN100234`` gets the patient key ``RGH|MRN100234`` exactly as PID-3
``MRN100234^^^RGH^MR`` does, and an Encounter identified by the visit number
gets the Encounter id an ADT message with that PV1-19 gets.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from carehub.core.patient import PatientIdentifier, choose_key_identifier, patient_key
from carehub.mappings import ids
from carehub.mappings.codes import table
from carehub.mappings.transforms.identifiers import LOCAL_PREFIX


def authority_of(system: str) -> str:
    """The assigning authority an Identifier.system stands for (reverse of hd_system)."""
    system = system.strip()
    if not system:
        return ""
    if system.startswith(LOCAL_PREFIX):
        return unquote(system[len(LOCAL_PREFIX) :])
    for namespace, code in table("assigning-authorities").entries.items():
        if code.code == system:
            return namespace
    if system.startswith("urn:oid:"):
        return system[len("urn:oid:") :]
    return system


def _type_code(identifier: dict[str, Any]) -> str:
    codings = (identifier.get("type") or {}).get("coding") or [{}]
    return str(codings[0].get("code", ""))


def patient_identifiers(patient: dict[str, Any]) -> list[PatientIdentifier]:
    return [
        PatientIdentifier(str(i.get("value", "")), authority_of(str(i.get("system", ""))), _type_code(i))
        for i in patient.get("identifier") or []
        if isinstance(i, dict) and i.get("value")
    ]


def patient_key_of(patient: dict[str, Any]) -> str | None:
    chosen = choose_key_identifier(patient_identifiers(patient))
    return patient_key(chosen) if chosen is not None else None


def encounter_id(encounter: dict[str, Any], key: str, facility: str, source_ref: str) -> tuple[str, bool]:
    """(id, linked) as mappings.identity does for PV1: visit number, else admit time, else per source."""
    identifiers = [i for i in encounter.get("identifier") or [] if isinstance(i, dict) and i.get("value")]
    visits = [i for i in identifiers if _type_code(i) == "VN"] or identifiers
    if visits:
        authority = authority_of(str(visits[0].get("system", ""))).upper()
        return ids.resource_id("Encounter", "visit", authority or facility.upper(), str(visits[0]["value"])), True
    started = str((encounter.get("period") or {}).get("start", ""))
    if started:
        return ids.resource_id("Encounter", "admit", key, started), True
    return ids.resource_id("Encounter", "fhir", source_ref), False
