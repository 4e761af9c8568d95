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


def _match(value: str) -> re.Match[str] | None:
    text = value.strip()
    if len(text) < 4:
        return None
    m = _DTM.match(text)
    if m is None:
        return None
    mo, d = m["mo"], m["d"]
    if mo is not None and not 1 <= int(mo) <= 12:
        return None
    if d is not None and not 1 <= int(d) <= 31:
        return None
    if m["h"] is not None and (int(m["h"]) > 23 or (m["mi"] is not None and int(m["mi"]) > 59)):
        return None
    return m


@value_transform("date")
def to_date(value: str) -> str | None:
    """FHIR ``date``: ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD`` (time dropped)."""
    m = _match(value)
    if m is None:
        return None
    out = m["y"]
    if m["mo"]:
        out += "-" + m["mo"]
        if m["d"]:
            out += "-" + m["d"]
    return out


@value_transform("datetime")
def to_datetime(value: str) -> str | None:
    """FHIR ``dateTime`` keeping the sender's precision down to the day."""
    m = _match(value)
    if m is None:
        return None
    if not m["h"] or not m["d"]:
        return to_date(value)
    return _with_time(m)


@value_transform("instant")
def to_instant(value: str) -> str | None:
    """FHIR ``instant``: needs a full time; partial dates are padded to midnight."""
    m = _match(value)
    if m is None:
        return None
    if m["h"] and m["d"]:
        return _with_time(m)
    date = f"{m['y']}-{m['mo'] or '01'}-{m['d'] or '01'}"
    return f"{date}T00:00:00{_zone(m, date)}"


def _with_time(m: re.Match[str]) -> str:
    date = f"{m['y']}-{m['mo']}-{m['d']}"
    time = f"{m['h']}:{m['mi'] or '00'}:{m['s'] or '00'}"
    if m["f"]:
        time += "." + m["f"]
    return f"{date}T{time}{_zone(m, date, int(m['h']))}"


def _zone(m: re.Match[str], date: str, hour: int = 0) -> str:
    tz = m["tz"]
    if tz == "Z":
        return "Z"
    if tz:
        hh, mm = int(tz[1:3]), int(tz[3:5])
        if hh <= 14 and mm < 60:
            return f"{tz[0]}{tz[1:3]}:{tz[3:5]}"
    y, mo, d = (int(p) for p in date.split("-"))
    try:
        return _local_offset(y, mo, d, hour)
    except ValueError:
        return "Z"
