"""MRG: merges and identifier changes (A34-A36, A39-A42, A46-A51) as Patient.link.

The v2-to-FHIR IG has no A40 map (standards.md §5); per FHIR, the surviving
Patient gets ``link: replaces`` and the retired one ``link: replaced-by`` and
``active: false``. The retired Patient's id is built from its patient key the
same way as any Patient's, so downstream can find the record it must retire;
its key is also returned for ``CareEvent.attributes.merged_from``. A39-A42
messages may carry several PID/MRG groups; each later group links its own
PID's Patient (``merges`` in the attributes lists every pair).
"""

from __future__ import annotations

from typing import Any

from carehub.adapters.hl7.header import pid_identifiers
from carehub.adapters.hl7.tokenizer import Segment
from carehub.core.patient import PatientIdentifier, choose_key_identifier, patient_key
from carehub.mappings.compiler import DatatypeMap
from carehub.mappings.context import BuildContext, Resource
from carehub.mappings.identity import patient_id


def prior_identifiers(mrg: Segment) -> list[PatientIdentifier]:
    """MRG-1 (prior patient identifier list), else MRG-4 (prior patient id, v2.3)."""
    found: list[PatientIdentifier] = []
    for n in (1, 4):
        for rep in mrg.repetitions(n):
            value = rep.component(1).strip()
            if value:
                authority = (rep.component(4, 1) or rep.component(4, 2)).strip()
                found.append(PatientIdentifier(value, authority, rep.component(5)))
        if found:
            break
    return found


def _identifiers(seg: Segment, field: int, ctx: BuildContext, cx: DatatypeMap) -> list[dict[str, Any]]:
    out = []
    for rep in seg.fields[field].split(ctx.rep) if len(seg.fields) > field else []:
        built = cx.build(rep.split(ctx.comp), ctx.sub, ctx) if rep else None
        if built:
            out.append(built)
    return out


def group_survivor(pid: Segment, ctx: BuildContext, cx: DatatypeMap) -> tuple[str, Resource] | None:
    """The surviving Patient of a later PID/MRG group (A39-A42 carry several merges)."""
    chosen = choose_key_identifier(pid_identifiers(pid))
    if chosen is None:
        return None
    key = patient_key(chosen, ctx.default_authority)
    survivor: Resource = {"resourceType": "Patient", "id": patient_id(key)}
    identifiers = _identifiers(pid, 3, ctx, cx)
    if identifiers:
        survivor["identifier"] = identifiers
    return key, ctx.add(survivor, latest=False)


def apply_merge(mrg: Segment, ctx: BuildContext, cx: DatatypeMap, survivor: Resource, survivor_key: str) -> str | None:
    """Link the surviving Patient to the retired one; returns the retired patient key."""
    chosen = choose_key_identifier(prior_identifiers(mrg))
    if chosen is None:
        return None
    prior_key = patient_key(chosen, ctx.default_authority)
    if prior_key == survivor_key:
        return None  # an account or visit merge (A41, A45): the patient stays the same
    identifiers = _identifiers(mrg, 1, ctx, cx)
    retired: Resource = {
        "resourceType": "Patient",
        "id": patient_id(prior_key),
        "active": False,
        "link": [{"other": {"reference": f"Patient/{survivor['id']}"}, "type": "replaced-by"}],
    }
    if identifiers:
        retired["identifier"] = identifiers
    survivor.setdefault("link", []).append({"other": {"reference": f"Patient/{retired['id']}"}, "type": "replaces"})
    ctx.add(retired, latest=False)
    return prior_key
