"""Complete a discharge from the hospital's FHIR server, within a time budget.

The queries (standards: FHIR R4 search, fhirclient through connectors.fhir_source):
the Patient by the identifier value of the event's patient (PID-3), then, at once,
MedicationRequest, MedicationStatement, AllergyIntolerance and Condition of that
patient, DiagnosticReport with a pending status, and DocumentReference of the
discharge summary (LOINC 18842-5) or discharge instructions (8653-8). Whatever
answered within ``budget_s`` is used; each query that did not answer in time or
failed is a ``Missing`` with its reason, which the packet prints. The budget is
one deadline for the whole enrichment: it never waits longer, and nothing
else waits for it (streams.packet.step sends the other deliveries first).

Fetched resources get ids of their own in the event (uuid5 of source and id), and
references to the source's Patient point at the event's Patient; a reference to
anything not fetched keeps only its display, so every reference of the packet
still resolves inside it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from carehub.core.records import CareEvent, JSONObject
from carehub.core.uuids import Namespace

ATTRIBUTE = "packet_enrichment"
LOINC = "http://loinc.org"
DOCUMENT_TYPES = {"discharge-summary": "18842-5", "discharge-instructions": "8653-8"}
PENDING = "registered,partial,preliminary"
_NS = Namespace("c41f0b6e-93d2-4a7f-8e15-6b2a0d9c3f47")


class Reader(Protocol):
    """A source FHIR server read asynchronously (connectors.fhir_source.AsyncFhirSource)."""

    async def search(self, resource_type: str, params: dict[str, str]) -> list[dict[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class Missing:
    what: str
    reason: str


@dataclass(frozen=True, slots=True)
class EnrichmentNote:
    """What the packet says about its enrichment: the source and what it did not give."""

    source: str
    missing: tuple[Missing, ...] = ()

    def to_attribute(self) -> JSONObject:
        return {"source": self.source, "missing": [{"what": m.what, "reason": m.reason} for m in self.missing]}

    @classmethod
    def from_attribute(cls, value: Any) -> EnrichmentNote | None:
        if not isinstance(value, dict):
            return None
        missing = tuple(Missing(str(m.get("what", "")), str(m.get("reason", ""))) for m in value.get("missing", []))
        return cls(str(value.get("source", "")), missing)


@dataclass(frozen=True, slots=True)
class Enrichment:
    note: EnrichmentNote
    resources: tuple[JSONObject, ...] = ()


def queries(patient_ref: str) -> dict[str, tuple[str, dict[str, str]]]:
    """What is asked of the source for a patient: name -> (resource type, search parameters)."""
    documents = ",".join(f"{LOINC}|{code}" for code in DOCUMENT_TYPES.values())
    return {
        "MedicationRequest": ("MedicationRequest", {"patient": patient_ref}),
        "MedicationStatement": ("MedicationStatement", {"patient": patient_ref}),
        "AllergyIntolerance": ("AllergyIntolerance", {"patient": patient_ref}),
        "Condition": ("Condition", {"patient": patient_ref}),
        "DiagnosticReport": ("DiagnosticReport", {"patient": patient_ref, "status": PENDING}),
        "DocumentReference": ("DocumentReference", {"patient": patient_ref, "type": documents}),
    }


def _reason(exc: BaseException) -> str:
    message = getattr(exc, "message", "")
    return str(message or type(exc).__name__)


def _patient_identifier(event: CareEvent) -> str:
    mr = [i for i in event.identifiers if i.get("type") == "MR" and i.get("value")]
    found = mr or [i for i in event.identifiers if i.get("value")]
    return str(found[0]["value"]) if found else ""


async def enrich(reader: Reader, source: str, event: CareEvent, budget_s: float) -> Enrichment:
    """What ``source`` gives about the event's patient within ``budget_s`` seconds (never raises)."""
    deadline = time.monotonic() + budget_s
    names = list(queries("").keys())
    identifier = _patient_identifier(event)
    if not identifier:
        return Enrichment(EnrichmentNote(source, tuple(Missing(n, "the event names no patient identifier")
                                                       for n in names)))  # fmt: skip
    try:
        async with asyncio.timeout(budget_s):
            patients = await reader.search("Patient", {"identifier": identifier})
    except TimeoutError:
        why = f"no answer within {budget_s:g} s"
        return Enrichment(EnrichmentNote(source, tuple(Missing(n, why) for n in names)))
    except Exception as exc:  # SourceError and anything the reader raises: the packet goes out without it
        return Enrichment(EnrichmentNote(source, tuple(Missing(n, f"patient lookup failed: {_reason(exc)}")
                                                       for n in names)))  # fmt: skip
    if len(patients) != 1:
        why = "the source knows no patient with this identifier" if not patients else "the identifier is ambiguous"
        return Enrichment(EnrichmentNote(source, tuple(Missing(n, why) for n in names)))
    source_patient = f"Patient/{patients[0].get('id', '')}"
    asked = {name: asyncio.ensure_future(reader.search(kind, params))
             for name, (kind, params) in queries(source_patient).items()}  # fmt: skip
    remaining = deadline - time.monotonic()
    done: set[asyncio.Future[list[dict[str, Any]]]] = set()
    if remaining > 0:
        done, _ = await asyncio.wait(asked.values(), timeout=remaining)
    for task in asked.values():
        if task not in done:
            task.cancel()
    found: list[JSONObject] = []
    missing: list[Missing] = []
    for name, task in asked.items():
        if task not in done:
            missing.append(Missing(name, f"no answer within {budget_s:g} s"))
        elif task.exception() is not None:
            missing.append(Missing(name, _reason(task.exception())))  # type: ignore[arg-type]
        else:
            found += [r for r in task.result() if r.get("resourceType") == asked_type(name)]
    return Enrichment(EnrichmentNote(source, tuple(missing)), tuple(localize(found, source, source_patient, event)))


def asked_type(name: str) -> str:
    return queries("")[name][0]


def _local_id(source: str, ref: str) -> str:
    return _NS.id(f"{source}|{ref}")


def _rewrite(value: Any, refs: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        if isinstance(value.get("reference"), str):
            target = refs.get("/".join(value["reference"].split("/_history")[0].split("/")[-2:]))
            if target is not None:
                return {**{k: v for k, v in value.items() if k != "reference"}, "reference": target}
            kept = {k: v for k, v in value.items() if k in ("display", "identifier")}
            return kept or {"display": "not included"}
        return {k: _rewrite(v, refs) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite(v, refs) for v in value]
    return value


def localize(resources: list[JSONObject], source: str, source_patient: str, event: CareEvent) -> list[JSONObject]:
    """The fetched resources with ids of the event's own and references that resolve inside it."""
    refs = {f"{r['resourceType']}/{r.get('id', '')}": "" for r in resources}
    refs = {ref: f"{ref.split('/')[0]}/{_local_id(source, ref)}" for ref in refs}
    refs[source_patient] = f"Patient/{event.patient_id}"
    out = []
    for resource in resources:
        ref = f"{resource['resourceType']}/{resource.get('id', '')}"
        body = {k: v for k, v in resource.items() if k not in ("id", "meta", "text", "contained")}
        local = {**_rewrite(body, refs), "id": refs[ref].split("/")[1]}
        security = (resource.get("meta") or {}).get("security")
        out.append({**local, "meta": {"security": security}} if security else local)
    return out


def with_enrichment(event: CareEvent, enrichment: Enrichment) -> CareEvent:
    """``event`` with the fetched resources in its bundle and the note the packet prints."""
    entries = [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in enrichment.resources]
    bundle = {**event.bundle, "entry": [*event.bundle.get("entry", []), *entries]}
    return replace(event, bundle=bundle, attributes={**event.attributes, ATTRIBUTE: enrichment.note.to_attribute()})
