"""FHIR R4 Consent -> the consent directive carehub decides with.

Reads what a Part 2 decision needs: patient, status, period, policy rule, and
the permit provision's actors (named recipients or 2024-rule TPO classes),
purposes, classes and nested denials. A Consent that cannot be read raises
ConsentError with a message fit for an OperationOutcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.errors import CarehubError
from core.patient import PatientIdentifier, patient_key
from core.records import JSONObject
from streams.consent.codes import AUTHORITY_PREFIX, PART2, RECIPIENT_CLASS_SYSTEM, RECIPIENT_SYSTEM


class ConsentError(CarehubError):
    code = "invalid-consent"


@dataclass(frozen=True, slots=True)
class Provision:
    """A permit or deny rule. Empty tuples mean "any"."""

    type: str
    start: str = ""
    end: str = ""
    recipients: tuple[str, ...] = ()
    recipient_classes: tuple[str, ...] = ()
    npis: tuple[str, ...] = ()
    purposes: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    security_labels: tuple[str, ...] = ()
    nested: tuple[Provision, ...] = ()


@dataclass(frozen=True, slots=True)
class ConsentDirective:
    id: str
    patient_key: str
    status: str
    part2: bool
    provision: Provision
    date: str = ""
    organization: str = ""

    @property
    def active(self) -> bool:
        return self.status == "active"


def _codes(concepts: Any) -> tuple[str, ...]:
    items = concepts if isinstance(concepts, list) else [concepts] if concepts else []
    found: list[str] = []
    for concept in items:
        if not isinstance(concept, dict):
            continue
        codings = concept.get("coding", [concept]) if "coding" in concept else [concept]
        found.extend(str(c["code"]) for c in codings if isinstance(c, dict) and c.get("code"))
    return tuple(found)


def _actors(provision: JSONObject) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    named: list[str] = []
    classes: list[str] = []
    npis: list[str] = []
    for actor in provision.get("actor", []):
        reference = actor.get("reference", {}) if isinstance(actor, dict) else {}
        identifier = reference.get("identifier", {}) if isinstance(reference, dict) else {}
        system, value = identifier.get("system", ""), identifier.get("value", "")
        if system == RECIPIENT_SYSTEM and value:
            named.append(value)
        elif system == RECIPIENT_CLASS_SYSTEM and value:
            classes.append(value)
        elif system == "http://hl7.org/fhir/sid/us-npi" and value:
            npis.append(value)
    return tuple(named), tuple(classes), tuple(npis)


def _provision(data: JSONObject, default_type: str = "permit") -> Provision:
    named, classes, npis = _actors(data)
    period = data.get("period", {})
    return Provision(
        type=data.get("type", default_type),
        start=period.get("start", ""),
        end=period.get("end", ""),
        recipients=named,
        recipient_classes=classes,
        npis=npis,
        purposes=tuple(c.get("code", "") for c in data.get("purpose", []) if isinstance(c, dict)),
        classes=tuple(c.get("code", "") for c in data.get("class", []) if isinstance(c, dict)),
        security_labels=tuple(c.get("code", "") for c in data.get("securityLabel", []) if isinstance(c, dict)),
        nested=tuple(_provision(p, "deny" if data.get("type", default_type) == "permit" else "permit")
                     for p in data.get("provision", [])),
    )  # fmt: skip


def _patient_key(consent: JSONObject) -> str:
    identifier = consent.get("patient", {}).get("identifier", {})
    value, system = str(identifier.get("value", "")), str(identifier.get("system", ""))
    if not value:
        raise ConsentError("Consent.patient must carry an identifier (system = assigning authority, value = MRN)")
    authority = system.removeprefix(AUTHORITY_PREFIX)
    return patient_key(PatientIdentifier(value=value, authority=authority))


def parse_consent(consent: JSONObject) -> ConsentDirective:
    if consent.get("resourceType") != "Consent":
        raise ConsentError(f"expected resourceType Consent, got {consent.get('resourceType')!r}")
    if not consent.get("id"):
        raise ConsentError("Consent.id is required")
    status = consent.get("status")
    if status not in ("draft", "proposed", "active", "rejected", "inactive", "entered-in-error"):
        raise ConsentError(f"Consent.status {status!r} is not a valid status")
    provision = consent.get("provision")
    if not isinstance(provision, dict):
        raise ConsentError("Consent.provision is required: carehub permits nothing without an explicit provision")
    rules = _codes(consent.get("policyRule"))
    organizations = consent.get("organization", [])
    return ConsentDirective(
        id=str(consent["id"]),
        patient_key=_patient_key(consent),
        status=str(status),
        part2=PART2 in rules,
        provision=_provision(provision),
        date=str(consent.get("dateTime", "")),
        organization=str(organizations[0].get("display", "")) if organizations else "",
    )
