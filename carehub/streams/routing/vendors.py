"""Logistics vendors in the recipient directory: their fields as loaded, and the rules they must meet.

A vendor is a recipient of kind ``nemt``, ``dme`` or ``home-health`` (issue 19). The schema
(config/schemas/recipients.schema.json) checks shapes; ``vendor_problems`` checks what a schema
cannot say, each problem with file and line: capabilities known for the kind, a service area,
an hours range that runs forwards, ``fhir-task`` among the formats (offers are FHIR Tasks), and
no vendor fields on recipients that are not vendors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from carehub.core.configfile import did_you_mean, line_of
from carehub.core.errors import ConfigError
from carehub.streams.routing.model import CAPABILITIES, VENDOR_KINDS, Hours, Recipient, Vendor

VENDOR_FIELDS = ("capabilities", "area", "hours", "capacity_per_day", "preference")


def vendor_of(data: dict[str, Any]) -> Vendor | None:
    """The vendor part of a directory entry (None for recipients that are not vendors)."""
    if data.get("kind") not in VENDOR_KINDS:
        return None
    area = data.get("area", {})
    hours = data.get("hours", {})
    preference = data.get("preference", {})
    return Vendor(
        capabilities=tuple(data.get("capabilities", ())),
        zips=tuple(str(z) for z in area.get("zips", ())),
        counties=tuple(str(c) for c in area.get("counties", ())),
        hours=Hours(tuple(hours.get("days", ())), str(hours.get("from", "00:00")), str(hours.get("to", "24:00"))),
        capacity_per_day=data.get("capacity_per_day"),
        rank=int(preference.get("rank", 100)),
        networks=tuple(str(n) for n in preference.get("networks", ())),
    )


def _minutes(hhmm: str) -> int:
    hours, _, minutes = hhmm.partition(":")
    return int(hours) * 60 + int(minutes)


def _one(recipient: Recipient, item: dict[str, Any]) -> list[tuple[str, list[str | int]]]:
    """(message, path inside the entry) of every problem of one directory entry."""
    found: list[tuple[str, list[str | int]]] = []
    vendor = recipient.vendor
    if vendor is None:
        for name in VENDOR_FIELDS:
            if name in item:
                found.append((f"recipient {recipient.id!r}: {name} is for vendors (kind {', '.join(VENDOR_KINDS)}),"
                              f" not a {recipient.kind}", [name]))  # fmt: skip
        return found
    known = CAPABILITIES[recipient.kind]
    if not vendor.capabilities:
        found.append((f"recipient {recipient.id!r}: a {recipient.kind} vendor lists its capabilities"
                      f" ({', '.join(known)})", []))  # fmt: skip
    for index, capability in enumerate(vendor.capabilities):
        if capability not in known:
            hint = did_you_mean(capability, known)
            found.append((f"recipient {recipient.id!r}: {capability!r} is not a {recipient.kind} capability"
                          f" ({', '.join(known)}){hint}", ["capabilities", index]))  # fmt: skip
    if not vendor.zips and not vendor.counties:
        found.append((f"recipient {recipient.id!r}: a vendor needs a service area (area: zips or counties)", []))
    if _minutes(vendor.hours.start) >= _minutes(vendor.hours.end):
        found.append((f"recipient {recipient.id!r}: hours from {vendor.hours.start} must be before"
                      f" to {vendor.hours.end}", ["hours"]))  # fmt: skip
    if "fhir-task" not in recipient.formats:
        found.append((f"recipient {recipient.id!r}: a vendor receives orders as FHIR Tasks; list fhir-task"
                      " in formats", ["formats" if "formats" in item else "kind"]))  # fmt: skip
    return found


def vendor_problems(recipients: dict[str, Recipient], items: list[dict[str, Any]], path: Path) -> list[ConfigError]:
    """Every vendor rule broken in the directory, each with file and line."""
    problems = []
    for index, item in enumerate(items):
        recipient = recipients.get(str(item.get("id", "")))
        if recipient is None:
            continue
        for message, where in _one(recipient, item):
            line = line_of(path, ["recipients", index, *where]) or line_of(path, ["recipients", index])
            problems.append(ConfigError(message, file=str(path), line=line))
    return problems
