"""Does a rule's condition hold for an event? Each test says why (pure).

The event facts come from the CareEvent: kind, facility, class and location,
and ``attributes`` (PV1-2, payers from IN1, PCP from PD1-4, ICD-10 diagnoses
from DG1, birth date); risk scores from Observations in the event's bundle;
care-coordination flags from the stream's per-patient state.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from carehub.core.records import CareEvent
from carehub.streams.routing.model import Condition, Threshold


def _in(label: str, accepted: tuple[str, ...], actual: Iterable[str]) -> tuple[bool, str] | None:
    if not accepted:
        return None
    values = [a for a in actual if a]
    wanted = {a.casefold() for a in accepted}
    hit = next((v for v in values if v.casefold() in wanted), None)
    if hit is not None:
        return True, f"{label} {hit}"
    shown = ", ".join(values) if values else "(none)"
    return False, f"{label} {shown} not in {list(accepted)}"


def payer_ids(event: CareEvent) -> list[str]:
    """Payer ids (IN1-3) and plan ids (IN1-2) as the message carries them."""
    out: list[str] = []
    for coverage in event.attributes.get("payers", []):
        out.extend(i.get("value", "") for p in coverage.get("payors", []) for i in p.get("identifiers", []))
        out.extend(coverage.get("plans", []))
    return out


def pcp_ids(event: CareEvent) -> list[tuple[str, str]]:
    """(system, value) of the attributed PCP parties (PD1-4 practice and practitioner)."""
    return [
        (i.get("system", ""), i.get("value", ""))
        for party in event.attributes.get("pcp", [])
        for i in party.get("identifiers", [])
        if i.get("value")
    ]


def diagnosis_codes(event: CareEvent) -> list[str]:
    return [d.get("code", "") for d in event.attributes.get("diagnoses", []) if d.get("code")]


def code_matches(pattern: str, code: str) -> bool:
    """``Z59`` is a prefix; ``Z55-Z65`` a range over the first characters (ICD-10 categories)."""
    code = code.upper().replace(".", "")
    if "-" in pattern:
        low, high = (p.replace(".", "") for p in pattern.split("-", 1))
        return low <= code[: len(low)] and code[: len(high)] <= high
    return code.startswith(pattern.upper().replace(".", ""))


def age_at(event: CareEvent) -> int | None:
    try:
        born = date.fromisoformat(str(event.attributes.get("birth_date", ""))[:10])
        on = date.fromisoformat(event.occurred_at[:10])
    except ValueError:
        return None
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def _number(resource: dict[str, Any]) -> float | None:
    for key in ("valueInteger", "valueDecimal"):
        if isinstance(resource.get(key), int | float):
            return float(resource[key])
    value = resource.get("valueQuantity", {}).get("value")
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(resource.get("valueString", ""))
    except ValueError:
        return None


def scores(event: CareEvent) -> dict[str, float]:
    """Numeric Observations in the event bundle by code, display, text and ``system|code`` (casefolded)."""
    found: dict[str, float] = {}
    for entry in event.bundle.get("entry", []):
        resource = entry.get("resource", {})
        if resource.get("resourceType") != "Observation" or (value := _number(resource)) is None:
            continue
        code = resource.get("code", {})
        codings = code.get("coding", [])
        names = [code.get("text", "")] + [c.get(k, "") for c in codings for k in ("code", "display")]
        names += [f"{c['system']}|{c['code']}" for c in codings if c.get("system") and c.get("code")]
        found.update({n.casefold(): value for n in names if n})
    return found


def _threshold(t: Threshold, found: dict[str, float]) -> tuple[bool, str]:
    value = found.get(t.score.casefold())
    if value is None:
        return False, f"no {t.score} score in the event"
    ok = (t.gte is None or value >= t.gte) and (t.lte is None or value <= t.lte)
    bounds = " and ".join(
        b for b in (f">= {t.gte:g}" if t.gte is not None else "", f"<= {t.lte:g}" if t.lte is not None else "") if b
    )
    return ok, f"{t.score} {value:g} {'is' if ok else 'is not'} {bounds}"


def _check_basic(c: Condition, e: CareEvent, _: frozenset[str]) -> list[tuple[bool, str] | None]:
    unit = str(e.attributes.get("assigned_location", {}).get("point_of_care", ""))
    return [
        _in("kind", c.kinds, [e.kind]),
        _in("facility", c.facilities, [e.facility]),
        _in("encounter class", c.encounter_classes, [e.encounter_class]),
        _in("location", c.locations, [e.location, unit]),
        _in("patient class", c.patient_classes, [str(e.attributes.get("patient_class", ""))]),
        _in("payer", c.payers, payer_ids(e)),
        _in("pcp", c.pcps, [v for _, v in pcp_ids(e)]),
    ]


def _age(c: Condition, e: CareEvent) -> tuple[bool, str]:
    age = age_at(e)
    ok = age is not None and (c.age_min is None or age >= c.age_min) and (c.age_max is None or age <= c.age_max)
    shown = "unknown" if age is None else str(age)
    return ok, f"age {shown} {'within' if ok else 'outside'} [{c.age_min}, {c.age_max}]"


def _check_clinical(c: Condition, e: CareEvent, flags: frozenset[str]) -> list[tuple[bool, str] | None]:
    out: list[tuple[bool, str] | None] = []
    if c.diagnoses:
        codes = diagnosis_codes(e)
        hit = next(((p, d) for d in codes for p in c.diagnoses if code_matches(p, d)), None)
        out.append(
            (True, f"diagnosis {hit[1]} in {hit[0]}") if hit else (False, f"no diagnosis in {list(c.diagnoses)}")
        )
    if c.age_min is not None or c.age_max is not None:
        out.append(_age(c, e))
    for flag in c.flags:
        out.append((flag in flags, f"flag {flag} {'set' if flag in flags else 'not set'}"))
    for flag in c.not_flags:
        out.append((flag not in flags, f"flag {flag} {'set' if flag in flags else 'not set'}"))
    found = scores(e) if c.thresholds else {}
    out.extend(_threshold(t, found) for t in c.thresholds)
    return out


def evaluate(condition: Condition, event: CareEvent, flags: frozenset[str] = frozenset()) -> tuple[bool, str]:
    """(holds, reason): the conditions that held, or the first that did not."""
    results = [r for r in (*_check_basic(condition, event, flags), *_check_clinical(condition, event, flags)) if r]
    failed = next((reason for ok, reason in results if not ok), None)
    if failed is not None:
        return False, failed
    return True, "; ".join(reason for _, reason in results) or "no conditions"
