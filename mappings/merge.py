"""MRG: merges and identifier changes (A34-A36, A39-A42, A46-A51) as Patient.link.

The v2-to-FHIR IG has no A40 map (standards.md §5); per FHIR, the surviving
Patient gets ``link: replaces`` and the retired one ``link: replaced-by`` and
``active: false``. The retired Patient's id is built from its patient key the
same way as any Patient's, so downstream can find the record it must retire;
its key is also returned for ``CareEvent.attributes.merged_from``.
"""

from __future__ import annotations

from adapters.hl7.tokenizer import Segment
from core.patient import PatientIdentifier, choose_key_identifier, patient_key
from mappings.compiler import DatatypeMap
from mappings.context import BuildContext
from mappings.identity import patient_id


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


def apply_merge(mrg: Segment, ctx: BuildContext, cx: DatatypeMap) -> str | None:
    """Link the surviving Patient to the retired one; returns the retired patient key."""
    chosen = choose_key_identifier(prior_identifiers(mrg))
    survivor = ctx.latest.get("Patient")
    if chosen is None or survivor is None:
        return None
    prior_key = patient_key(chosen)
    if prior_key == ctx.patient_key:
        return None  # an account or visit merge (A41, A45): the patient stays the same
    identifiers = []
    for rep in mrg.fields[1].split(ctx.rep) if len(mrg.fields) > 1 else []:
        built = cx.build(rep.split(ctx.comp), ctx.sub, ctx) if rep else None
        if built:
            identifiers.append(built)
    retired = {
        "resourceType": "Patient",
        "id": patient_id(prior_key),
        "active": False,
        "link": [{"other": {"reference": f"Patient/{survivor['id']}"}, "type": "replaced-by"}],
    }
    if identifiers:
        retired["identifier"] = identifiers
    survivor.setdefault("link", []).append({"other": {"reference": f"Patient/{retired['id']}"}, "type": "replaces"})
    stored = ctx.add(retired)
    ctx.latest["Patient"] = survivor
    del stored
    return prior_key
