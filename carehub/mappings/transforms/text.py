"""Plain-text transforms: trimming, numbers, booleans."""

from __future__ import annotations

import re

from carehub.mappings.transforms import value_transform

_DECIMAL = re.compile(r"^[+-]?(0|[1-9]\d*)(\.\d+)?$")


@value_transform("text")
def text(value: str) -> str | None:
    """Trimmed text; ``None`` when blank."""
    out = value.strip()
    return out or None


@value_transform("upper")
def upper(value: str) -> str | None:
    out = value.strip().upper()
    return out or None


@value_transform("decimal")
def decimal(value: str) -> float | int | None:
    """A FHIR decimal from an HL7 NM (leading zeros and ``+`` tolerated)."""
    text_value = value.strip().lstrip("+")
    if text_value.startswith("0") and len(text_value) > 1 and text_value[1] != ".":
        text_value = text_value.lstrip("0") or "0"
    if not _DECIMAL.match(text_value):
        return None
    number = float(text_value)
    return int(number) if "." not in text_value else number


@value_transform("positive_int")
def positive_int(value: str) -> int | None:
    text_value = value.strip()
    if not text_value.isdigit() or int(text_value) < 1:
        return None
    return int(text_value)


@value_transform("yes_no")
def yes_no(value: str) -> bool | None:
    """HL7 table 0136 (Y/N), tolerating ``true``/``false``."""
    flag = value.strip().upper()
    if flag in ("Y", "YES", "TRUE", "1"):
        return True
    if flag in ("N", "NO", "FALSE", "0"):
        return False
    return None
