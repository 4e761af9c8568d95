"""CWE/CE/CNE/IS codes to FHIR CodeableConcept and Coding.

Component 3 (and 6 for the alternate code) names the coding system with an
HL7 table 0396 mnemonic (``SCT``, ``LN``, ``I10``, ``HL70004``); the
``coding-systems`` code table turns it into a URI. Unknown mnemonics become
``urn:carehub:codesystem:<name>`` rather than being dropped: a downstream
ConceptMap can still pick them up.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from carehub.mappings.codes import table
from carehub.mappings.transforms import parts_transform
from carehub.mappings.transforms.identifiers import universal_uri

_HL7_TABLE = re.compile(r"^HL7?(\d{4})$", re.IGNORECASE)
LOCAL_SYSTEM_PREFIX = "urn:carehub:codesystem:"


@lru_cache(maxsize=4096)
def system_uri(name: str) -> str | None:
    """URI for a 0396 coding-system mnemonic, an OID or a URI (cached: the code tables load once)."""
    key = name.strip()
    if not key:
        return None
    mapped = table("coding-systems").value(key)
    if mapped:
        return mapped
    hl7 = _HL7_TABLE.match(key)
    if hl7:
        return f"http://terminology.hl7.org/CodeSystem/v2-{hl7.group(1)}"
    return universal_uri(key) or LOCAL_SYSTEM_PREFIX + quote(key, safe="")


def _coding(code: str, display: str, system: str) -> dict[str, str] | None:
    code, display = code.strip(), display.strip()
    if not code:
        return None
    out: dict[str, str] = {}
    uri = system_uri(system)
    if uri:
        out["system"] = uri
    out["code"] = code
    if display:
        out["display"] = display
    return out


def _at(parts: list[str], index: int) -> str:
    return parts[index] if index < len(parts) else ""


@parts_transform("cwe_codeable")
def cwe_codeable(parts: list[str]) -> dict[str, Any] | None:
    """CodeableConcept: primary and alternate codings, text from CWE.9 or a lone display."""
    primary = _coding(_at(parts, 0), _at(parts, 1), _at(parts, 2))
    alternate = _coding(_at(parts, 3), _at(parts, 4), _at(parts, 5))
    codings = [c for c in (primary, alternate) if c is not None]
    text = _at(parts, 8).strip() or (_at(parts, 1).strip() if not codings else "")
    out: dict[str, Any] = {}
    if codings:
        out["coding"] = codings
    if text:
        out["text"] = text
    return out or None


@parts_transform("cwe_coding")
def cwe_coding(parts: list[str]) -> dict[str, str] | None:
    """The primary Coding of a CWE (or the alternate one when the primary is empty)."""
    return _coding(_at(parts, 0), _at(parts, 1), _at(parts, 2)) or _coding(_at(parts, 3), _at(parts, 4), _at(parts, 5))


@parts_transform("cwe_text")
def cwe_text(parts: list[str]) -> str | None:
    """Best human text of a CWE: original text, then display, then code."""
    for index in (8, 1, 4, 0):
        value = _at(parts, index).strip()
        if value:
            return value
    return None
