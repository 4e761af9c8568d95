"""Where the Part 2 / SUD signal can be in a CareEvent, read one way for HL7v2 and FHIR (pure).

Coded positions: every Coding in the event's resources (Condition.code from
DG1-3, Encounter.reasonCode from PV2-3, Encounter.serviceType/type,
Observation.code and valueCodeableConcept from OBX-3/OBX-5, Procedure.code,
...) and the diagnoses the intake listed. Text positions: the display and
text of those codings, Observation.valueString, extension strings (unmapped
segments) and DG1-4 (diagnosis description); never ``meta``. Each finding names its
position, never the text it matched (reasons go to the audit trail).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from typing import Any

from carehub.core.errors import ConfigError
from carehub.core.memo import IdentityMemo
from carehub.core.records import CareEvent
from carehub.streams.consent.valueset import ValueSet

_TEXT_KEYS = ("display", "text", "valueString")
#: The findings of each resource of an event, while it lives (core.memo): the route stage labels an event,
#: then the gatekeeper labels it again with the LACE index added (the same resources and one more).
_FOUND: IdentityMemo[list[Finding]] = IdentityMemo()


@dataclass(frozen=True, slots=True)
class Finding:
    position: str
    #: "code" (a value-set member) or "text" (a configured pattern matched)
    kind: str
    code: str = ""


def _scan(value: Any, path: str, codes: ValueSet, extra: frozenset[str], patterns: tuple[re.Pattern[str], ...],
          found: list[Finding]) -> None:  # fmt: skip
    """Every coding and text key of every dict inside ``value`` (``meta`` skipped), findings appended to ``found``.

    One recursive pass that looks at each key once (no generator per level: the route stage runs this
    for every event, docs/benchmarks.md).
    """
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict | list):
                _scan(item, path, codes, extra, patterns, found)
        return
    for key, item in value.items():
        if key == "meta":  # security labels are read as labels, never as clinical text
            continue
        if key == "coding" and isinstance(item, list):
            for c in item:
                if isinstance(c, dict):
                    code = str(c.get("code", ""))
                    if code in extra or codes.contains(str(c.get("system", "")), code):
                        found.append(Finding(path, "code", code))
        elif key in _TEXT_KEYS and _text_hit(item, patterns):
            found.append(Finding(f"{path}.{key}", "text"))
        if isinstance(item, dict | list):
            _scan(item, f"{path}.{key}", codes, extra, patterns, found)


def _text_hit(text: Any, patterns: tuple[re.Pattern[str], ...]) -> bool:
    return isinstance(text, str) and any(p.search(text) for p in patterns)


def resource_findings(
    resource: dict[str, Any], codes: ValueSet, extra: frozenset[str], patterns: tuple[re.Pattern[str], ...]
) -> list[Finding]:
    found: list[Finding] = []
    _scan(resource, str(resource.get("resourceType", "Resource")), codes, extra, patterns, found)
    return found


def event_findings(
    event: CareEvent, codes: ValueSet, extra: frozenset[str], patterns: tuple[re.Pattern[str], ...]
) -> list[Finding]:
    """Every SUD code or text in the event's resources and in what the intake extracted."""
    found: list[Finding] = []
    for entry in event.bundle.get("entry", []):
        resource = entry.get("resource")
        if isinstance(resource, dict):
            found += _FOUND.value(resource, partial(resource_findings, resource, codes, extra, patterns),
                                  codes, extra, patterns)  # fmt: skip
    for d in event.attributes.get("diagnoses", []):
        code = str(d.get("code", "")) if isinstance(d, dict) else ""
        if codes.contains(str(d.get("system", "")), code) or code in extra:
            found.append(Finding("diagnoses", "code", code))
    found += [Finding("DG1-4", "text") for t in event.attributes.get("diagnosis_texts", []) if _text_hit(t, patterns)]
    return found


#: What could make a pattern mean something else inside an alternation of several: a backreference
#: (numbered, named or conditional: group numbers shift). False alarms only cost the joined pattern.
_BACKREFERENCE = re.compile(r"\\[1-9]|\(\?P=|\(\?\(")


def compile_patterns(patterns: list[str]) -> tuple[re.Pattern[str], ...]:
    """The configured text patterns, case-insensitive, joined into one alternation when they can be.

    A text matches when any pattern does; one search of the alternation answers that in one call
    instead of one per pattern (13 in the shipped part2.yaml, for every text of every event). Patterns
    with a backreference, or that do not compile together (global inline flags, a group name twice),
    stay separate.
    """
    try:
        compiled = tuple(re.compile(p, re.IGNORECASE) for p in patterns)
    except re.error as exc:
        raise ConfigError(f"sud.text_patterns: {exc}", file="part2.yaml") from exc
    if len(compiled) < 2 or any(_BACKREFERENCE.search(p) for p in patterns):
        return compiled
    try:
        return (re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE),)
    except re.error:
        return compiled
