"""FHIR R4 Consent -> the consent directive carehub decides with.

Reads what a Part 2 decision needs: patient, status, period, policy rule, and
the permit provision's actors (named recipients or 2024-rule TPO classes),
purposes, classes and nested denials. A Consent that cannot be read raises
ConsentError with a message fit for an OperationOutcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from carehub.core.errors import CarehubError
from carehub.core.patient import PatientIdentifier, patient_key
from carehub.core.records import JSONObject
from carehub.streams.consent.codes import AUTHORITY_PREFIX, PART2, RECIPIENT_CLASS_SYSTEM, RECIPIENT_SYSTEM


class ConsentError(CarehubError):
    code = "invalid-consent"


class IncompleteConsentError(ConsentError):
    """A Part 2 consent lacking §2.31 elements; ``missing`` names each (FHIRPath, what it is)."""

    code = "incomplete-consent"

    def __init__(self, missing: list[tuple[str, str]]) -> None:
        names = "; ".join(f"{what} ({path})" for path, what in missing)
        super().__init__(f"the 42 CFR Part 2 consent lacks what 42 CFR 2.31 requires: {names}")
        self.missing = tuple(missing)


#: Consent.extension naming an expiration event instead of a date (§2.31(a)(6), e.g. "end of treatment").
EXPIRES_ON_EXTENSION = "urn:carehub:fhir:StructureDefinition:consent-expires-on"
#: meta.extension on each stored Consent version: who wrote it (the authenticated principal, or ``source:<name>``).
WRITTEN_BY = "urn:carehub:fhir:StructureDefinition:written-by"
#: Statuses of a consent that permits nothing: a revocation is accepted however incomplete the original was.
NOT_IN_FORCE = ("inactive", "entered-in-error", "rejected")


@dataclass(frozen=True, slots=True)
class Provision:
    """A permit or deny rule.

    In a nested deny, empty tuples mean "any" (the denial is broad); a permit
    with no purpose or no ``disclose`` action permits nothing (streams.consent.decide).
    """

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
    actions: tuple[str, ...] = ()


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
        actions=_codes(data.get("action", [])),
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


def _filled(value: Any) -> bool:
    return value not in (None, "", [], {})


def _expiry(consent: JSONObject, provision: JSONObject) -> bool:
    if _filled((provision.get("period") or {}).get("end")):
        return True
    return any(e.get("url") == EXPIRES_ON_EXTENSION and _filled(e.get("valueString"))
               for e in consent.get("extension", []) if isinstance(e, dict))  # fmt: skip


def part2_deficiencies(consent: JSONObject) -> list[tuple[str, str]]:
    """Each §2.31 element a Part 2 consent lacks, as (FHIRPath, what it is); [] when complete."""
    provision = consent.get("provision") if isinstance(consent.get("provision"), dict) else {}
    assert isinstance(provision, dict)
    named, classes, npis = _actors(provision)
    checks = [
        ("Consent.patient.identifier", "the patient", _filled((consent.get("patient") or {}).get("identifier"))),
        ("Consent.organization", "the program permitted to disclose (discloser)",
         _filled(consent.get("organization")) or _filled(consent.get("performer"))),
        ("Consent.provision.actor", "the recipients", bool(named or classes or npis)),
        ("Consent.provision.purpose", "the purpose of the disclosure", _filled(provision.get("purpose"))),
        ("Consent.provision.action", "the disclose action", "disclose" in _codes(provision.get("action", []))),
        ("Consent.provision.period.end", 'the expiration date or event (e.g. "end of treatment")',
         _expiry(consent, provision)),
        ("Consent.dateTime", "the date signed", _filled(consent.get("dateTime"))),
        ("Consent.sourceAttachment", "the signature (the signed form, sourceAttachment or sourceReference)",
         _filled(consent.get("sourceAttachment")) or _filled(consent.get("sourceReference"))),
    ]  # fmt: skip
    return [(path, what) for path, what, ok in checks if not ok]


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
    if PART2 in rules and status not in NOT_IN_FORCE:
        missing = part2_deficiencies(consent)
        if missing:
            raise IncompleteConsentError(missing)
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
