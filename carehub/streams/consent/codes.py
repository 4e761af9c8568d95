"""Code systems and codes used for Part 2 labels, purposes and consents (standards.md §4)."""

from __future__ import annotations

from carehub.core.records import JSONObject

CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
OBLIGATION = ACT_CODE
SEC_LABEL_BASIS = "http://hl7.org/fhir/uv/security-label-ds4p/StructureDefinition/extension-sec-label-basis"
PART2_POLICY_URI = "https://www.ecfr.gov/current/title-42/chapter-I/subchapter-A/part-2"
RECIPIENT_SYSTEM = "urn:carehub:recipient"
RECIPIENT_CLASS_SYSTEM = "urn:carehub:recipient-class"
AUTHORITY_PREFIX = "urn:carehub:authority:"

PART2 = "42CFRPart2"
#: ICD-10-CM mental and behavioural disorders due to psychoactive substance use.
SUD_PREFIXES: tuple[str, ...] = ("F10", "F11", "F12", "F13", "F14", "F15", "F16", "F17", "F18", "F19")
SUD = "SUD"
#: v3-ActCode sensitivity codes a sender may use for substance use information.
SUD_SENSITIVITY = frozenset({SUD, "ETH", "ETHUD", "OPIOIDUD"})
COUNSELING_NOTES = "PSYTHPN"

#: 2024 rule: a single TPO consent may name recipient classes; CBOs and other
#: non-covered recipients must be named. Directory kind -> TPO class.
TPO_CLASSES: dict[str, str] = {
    "pcp": "treating-providers",
    "pharmacy": "treating-providers",
    "care-manager": "treating-providers",
    "payer": "health-plans",
    #: An HIE is a recipient like any other, with a class of its own: never a treating provider, so
    #: never reached by the §2.51 exception; a consent names it or the class.
    "hie": "health-information-exchanges",
}


def coding(system: str, code: str, display: str = "") -> JSONObject:
    found: JSONObject = {"system": system, "code": code}
    if display:
        found["display"] = display
    return found


def restricted_with_basis() -> JSONObject:
    """Confidentiality R with the DS4P basis extension naming 42CFRPart2."""
    label = coding(CONFIDENTIALITY, "R", "restricted")
    label["extension"] = [{"url": SEC_LABEL_BASIS, "valueCoding": coding(ACT_CODE, PART2)}]
    return label
