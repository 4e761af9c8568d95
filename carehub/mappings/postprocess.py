"""The few decisions that span segments, kept out of the per-segment rules.

* Encounter.status comes from the trigger (v2-to-FHIR Event[EncounterStatus]),
  and a discharge time (PV1-45) finishes it unless the event cancels;
* Encounter.class is required by FHIR: a missing PV1-2 becomes NullFlavor UNK;
* an admit without PV1-44 starts at EVN-2 (the Da Vinci IG's fallback);
* MessageHeader.focus is the Encounter, else the Patient;
* segments no mapping used are carried verbatim on the MessageHeader so the
  bundle never loses them (and are listed in ``unmapped``).
"""

from __future__ import annotations

from typing import Any

from carehub.mappings.context import BuildContext
from carehub.mappings.events import Trigger

CARRIED_SEGMENT_URL = "https://carehub.dev/fhir/StructureDefinition/v2-unmapped-segment"
_NULL_CLASS = {"system": "http://terminology.hl7.org/CodeSystem/v3-NullFlavor", "code": "UNK", "display": "unknown"}
_CANCELS = {"cancelled", "entered-in-error"}
_NOT_FINISHING = {"A11", "A12", "A13", "A23", "A27", "A38"}


def finish_encounter(ctx: BuildContext, trigger: Trigger, event_time: str | None) -> None:
    encounter = ctx.latest.get("Encounter")
    if encounter is None:
        return
    status = trigger.status
    period: dict[str, Any] = encounter.get("period", {})
    if period.get("end") and status not in _CANCELS and trigger.code not in _NOT_FINISHING:
        status = "finished"
    encounter["status"] = status
    if "class" not in encounter:
        encounter["class"] = dict(_NULL_CLASS)
    if trigger.kind == "admit" and not period.get("start") and event_time:
        encounter.setdefault("period", {})["start"] = event_time
    if period.get("start") and period.get("end") and period["end"] < period["start"]:
        ctx.issues.append("Encounter.period: PV1-45 (discharge) is before PV1-44 (admit); end dropped")
        del period["end"]


def set_focus(ctx: BuildContext) -> None:
    header = ctx.latest.get("MessageHeader")
    if header is None:
        return
    focus = ctx.reference("Encounter") if "Encounter" in ctx.latest else ctx.reference("Patient")
    if focus is not None:
        header["focus"] = [focus]


def carry_segments(ctx: BuildContext, raw_segments: list[str]) -> None:
    header = ctx.latest.get("MessageHeader")
    if header is None or not raw_segments:
        return
    header.setdefault("extension", []).extend({"url": CARRIED_SEGMENT_URL, "valueString": raw} for raw in raw_segments)
