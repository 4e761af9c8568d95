"""HL7 DTM/DT/TS values to FHIR date, dateTime and instant.

HL7 allows any precision (``YYYY`` to ``YYYYMMDDHHMMSS.SSSS``) and an optional
``+/-ZZZZ`` offset. FHIR dateTime keeps partial dates but, once a time is
present, needs seconds and a zone. So: missing minutes/seconds are padded
with zeros, and a time without an offset is read in the site's default zone
(``carehub/mappings/site.yaml``), never silently treated as UTC unless configured so.
Values that are not dates give ``None`` (the caller reports nothing set).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from carehub.mappings.transforms import value_transform

_DTM = re.compile(
    r"^(?P<y>\d{4})(?P<mo>\d{2})?(?P<d>\d{2})?(?P<h>\d{2})?(?P<mi>\d{2})?(?P<s>\d{2})?"
    r"(?:\.(?P<f>\d{1,6}))?\d*(?P<tz>[+-]\d{4}|Z)?$"
)

_default_zone: tzinfo = UTC


def set_default_zone(name: str) -> None:
    """Zone for timestamps sent without an offset (IANA name, or ``UTC``)."""
    global _default_zone
    try:
        _default_zone = UTC if name.upper() in ("UTC", "Z") else ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc
    _local_offset.cache_clear()


@lru_cache(maxsize=4096)
def _local_offset(y: int, mo: int, d: int, h: int) -> str:
    """The default zone's offset at a local hour, as ``+HH:MM`` (cached per hour)."""
    offset = datetime(y, mo, d, h, tzinfo=_default_zone).utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


#: The groups of a DTM value: year, month, day, hour, minute, second, fraction, zone.
_Parts = tuple[str, str | None, str | None, str | None, str | None, str | None, str | None, str | None]


def _match(value: str) -> _Parts | None:
    text = value.strip()
    if len(text) < 4:
        return None
    m = _DTM.match(text)
    if m is None:
        return None
    parts: _Parts = m.groups()  # type: ignore[assignment]  # y is never None: the pattern requires it
    _, mo, d, h, mi = parts[:5]
    if mo is not None and not 1 <= int(mo) <= 12:
        return None
    if d is not None and not 1 <= int(d) <= 31:
        return None
    if h is not None and (int(h) > 23 or (mi is not None and int(mi) > 59)):
        return None
    return parts


def _date(parts: _Parts) -> str:
    y, mo, d = parts[:3]
    if mo:
        return f"{y}-{mo}-{d}" if d else f"{y}-{mo}"
    return y


@value_transform("date")
def to_date(value: str) -> str | None:
    """FHIR ``date``: ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD`` (time dropped)."""
    parts = _match(value)
    return None if parts is None else _date(parts)


@value_transform("datetime")
def to_datetime(value: str) -> str | None:
    """FHIR ``dateTime`` keeping the sender's precision down to the day."""
    parts = _match(value)
    if parts is None:
        return None
    if not parts[3] or not parts[2]:
        return _date(parts)
    return _with_time(parts)


@value_transform("instant")
def to_instant(value: str) -> str | None:
    """FHIR ``instant``: needs a full time; partial dates are padded to midnight."""
    parts = _match(value)
    if parts is None:
        return None
    if parts[3] and parts[2]:
        return _with_time(parts)
    y, mo, d = parts[0], parts[1] or "01", parts[2] or "01"
    return f"{y}-{mo}-{d}T00:00:00{_zone(parts[7], y, mo, d, 0)}"


def _with_time(parts: _Parts) -> str:
    y, mo, d, h, mi, s, f, tz = parts
    assert mo is not None and d is not None and h is not None  # the callers checked day and hour
    fraction = "." + f if f else ""
    return f"{y}-{mo}-{d}T{h}:{mi or '00'}:{s or '00'}{fraction}{_zone(tz, y, mo, d, int(h))}"


def _zone(tz: str | None, y: str, mo: str, d: str, hour: int) -> str:
    if tz == "Z":
        return "Z"
    if tz:
        hh, mm = int(tz[1:3]), int(tz[3:5])
        if hh <= 14 and mm < 60:
            return f"{tz[0]}{tz[1:3]}:{tz[3:5]}"
    try:
        return _local_offset(int(y), int(mo), int(d), hour)
    except ValueError:
        return "Z"
