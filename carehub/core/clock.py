"""The one clock format carehub writes: UTC, milliseconds, ``Z`` (``2026-11-03T22:00:01.250Z``)."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(moment: datetime) -> str:
    """An aware datetime as carehub writes times (UTC, milliseconds, ``Z``)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    """Now, as carehub writes times."""
    return iso(datetime.now(UTC))
