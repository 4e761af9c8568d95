"""The §2.32 notice and the consent's scope, travelling with every Part 2 disclosure."""

from __future__ import annotations

from carehub.core.records import JSONObject
from carehub.streams.consent.codes import ACT_CODE, CONFIDENTIALITY, PART2, coding
from carehub.streams.consent.model import ConsentDirective

NOTICE = "42 CFR part 2 prohibits unauthorized use or disclosure of these records."
NOTICE_EXTENSION = "urn:carehub:fhir:StructureDefinition:part2-redisclosure-notice"
SCOPE_EXTENSION = "urn:carehub:fhir:StructureDefinition:part2-consent-scope"


def scope(consent: ConsentDirective) -> str:
    p = consent.provision
    who = ", ".join([*p.recipients, *(f"class:{c}" for c in p.recipient_classes), *(f"NPI {n}" for n in p.npis)])
    purposes = ", ".join(p.purposes) or "any purpose stated in the consent"
    period = f"{p.start or 'signature'} to {p.end or 'revocation in writing'}"
    return (
        f"Disclosed under patient consent {consent.id} (42 CFR 2.31; dated {consent.date or 'n/a'}): "
        f"recipients {who or 'as named'}; purposes {purposes}; valid {period}. "
        "The patient may revoke it in writing."
    )


def attach_to_bundle(bundle: JSONObject, scope_text: str) -> JSONObject:
    """Notice and scope on the MessageHeader (first entry), labels on the Bundle."""
    entries = list(bundle.get("entry", []))
    if entries:
        header = dict(entries[0]["resource"])
        header["extension"] = [
            *header.get("extension", []),
            {"url": NOTICE_EXTENSION, "valueString": NOTICE},
            {"url": SCOPE_EXTENSION, "valueString": scope_text},
        ]
        entries[0] = {**entries[0], "resource": header}
    meta = dict(bundle.get("meta", {}))
    meta["security"] = [
        coding(CONFIDENTIALITY, "R", "restricted"),
        coding(ACT_CODE, PART2, "42 CFR Part2"),
        coding(ACT_CODE, "NORDSCLCD", "no redisclosure without consent directive"),
    ]
    return {**bundle, "meta": meta, "entry": entries}


def attach_to_hl7(message: str, scope_text: str) -> str:
    """An NTE segment with the notice and scope at the end of an HL7v2 message."""
    field_sep = message[3] if len(message) > 3 else "|"
    clean = (NOTICE + " " + scope_text).replace(field_sep, " ").replace("\r", " ").replace("\n", " ")
    body = message.rstrip("\r\n")
    return f"{body}\rNTE{field_sep}1{field_sep}{field_sep}{clean}\r"
