"""FHIR R4 Consent resources for tests, in the shape standards.md §4 describes."""

from __future__ import annotations

from typing import Any

from carehub.streams.consent.codes import RECIPIENT_CLASS_SYSTEM, RECIPIENT_SYSTEM


def consent(
    cid: str = "c1",
    *,
    status: str = "active",
    named: tuple[str, ...] = (),
    classes: tuple[str, ...] = (),
    purposes: tuple[str, ...] = ("TREAT", "HPAYMT", "HOPERAT"),
    data_classes: tuple[str, ...] = ("Encounter",),
    start: str = "2026-01-01",
    end: str = "2027-12-31",
    deny_named: tuple[str, ...] = (),
    part2: bool = True,
    patient: tuple[str, str] = ("urn:carehub:authority:RGH", "MRN1"),
) -> dict[str, Any]:
    actors = [
        {"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
         "reference": {"identifier": {"system": system, "value": value}}}
        for system, values in ((RECIPIENT_SYSTEM, named), (RECIPIENT_CLASS_SYSTEM, classes))
        for value in values
    ]  # fmt: skip
    provision: dict[str, Any] = {
        "type": "permit",
        "period": {"start": start, "end": end},
        "actor": actors,
        "action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "disclose"}]}],
        "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": p} for p in purposes],
        "class": [{"system": "http://hl7.org/fhir/resource-types", "code": c} for c in data_classes],
    }
    if deny_named:
        provision["provision"] = [
            {
                "type": "deny",
                "actor": [{"reference": {"identifier": {"system": RECIPIENT_SYSTEM, "value": v}}} for v in deny_named],
            }  # fmt: skip
        ]
    return {
        "resourceType": "Consent",
        "id": cid,
        "status": status,
        "scope": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"identifier": {"system": patient[0], "value": patient[1]}},
        "dateTime": "2026-01-01",
        "organization": [{"display": "Riverside Recovery Center"}],
        "sourceAttachment": {"contentType": "application/pdf", "title": "signed consent form"},
        "policy": [{"uri": "https://www.ecfr.gov/current/title-42/chapter-I/subchapter-A/part-2"}],
        "policyRule": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "42CFRPart2" if part2 else "OPTIN",
                }
            ]
        },  # fmt: skip
        "provision": provision,
    }
