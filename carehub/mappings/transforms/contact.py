"""XTN telecom numbers to FHIR ContactPoint.

v2.3 senders put the whole number in XTN.1; v2.5+ split it into country
(5), area (6), local number (7) and extension (8), with e-mail in XTN.4.
XTN.2 (use, table 0201) and XTN.3 (equipment, table 0202) pick ``use`` and
``system`` through code tables.
"""

from __future__ import annotations

from typing import Any

from carehub.mappings.codes import table
from carehub.mappings.transforms import parts_transform


def _at(parts: list[str], index: int) -> str:
    return parts[index].strip() if index < len(parts) else ""


def _number(parts: list[str]) -> str:
    local = _at(parts, 6)
    if local:
        pieces = [f"+{_at(parts, 4)}" if _at(parts, 4) else "", f"({_at(parts, 5)})" if _at(parts, 5) else "", local]
        number = " ".join(p for p in pieces if p)
        extension = _at(parts, 7)
        return f"{number} ext. {extension}" if extension else number
    return _at(parts, 0) or _at(parts, 11)


@parts_transform("xtn_contact")
def xtn_contact(parts: list[str]) -> dict[str, Any] | None:
    email = _at(parts, 3)
    equipment = _at(parts, 2).upper()
    value = email if email and (equipment in ("INTERNET", "X.400") or not _number(parts)) else _number(parts)
    if not value:
        return None
    out: dict[str, Any] = {}
    system = table("v2-0202-telecom-system").value(equipment) if equipment else None
    out["system"] = system or ("email" if value == email else "phone")
    out["value"] = value
    use = table("v2-0201-telecom-use").value(_at(parts, 1))
    if use:
        out["use"] = use
    return out
