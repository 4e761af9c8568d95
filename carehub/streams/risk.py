"""The LACE index of readmission risk at discharge, from the stream's own history (pure).

van Walraven et al. 2010 (CMAJ 182:551): L + A + C + E, 0 to 19.

* **L**ength of stay, days from the admission (the visit's A01 as the hub saw it, else the
  discharge's Encounter.period.start / PV1-44) to the discharge date: <1 -> 0, 1 -> 1, 2 -> 2,
  3 -> 3, 4-6 -> 4, 7-13 -> 5, 14 or more -> 7.
* **A**cuity: 3 when the admission was emergent (PV1-4 admission type ``E``, or the visit began as
  an ED registration), else 0.
* **C**omorbidity: the Charlson index of every ICD-10 code (DG1) the hub has seen on the patient's
  visits that were not cancelled, this one included (streams.charlson): 0-3 as is, 4 or more -> 5.
* **E**D visits in the 6 months before the admission (the hub's own A04/A01 emergency-class
  history, cancelled ones excluded, the current visit not counted): 0-3 as is, 4 or more -> 4.

The score travels as an Observation in the discharge event's bundle (code ``lace-index`` of
``urn:carehub:risk``, docs/scorecard.md), so notifications carry it and routing rules test it
(``risk: {lace: {gte: 10}}``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from carehub.core.records import CareEvent, JSONObject
from carehub.core.uuids import Namespace
from carehub.streams.charlson import charlson
from carehub.streams.notify import RISK_SYSTEM
from carehub.streams.routing.match import diagnosis_codes
from carehub.streams.signals import ED_HISTORY, PatientState, parse_time

LACE_CODE = "lace-index"
LACE_DISPLAY = "LACE index for 30-day readmission or death"
EMERGENT = frozenset({"E"})
_NS = Namespace("0c6a2f8e-4b1d-4f3a-8e2c-7d9b5a1e3f60")


@dataclass(frozen=True, slots=True)
class Lace:
    length_of_stay_days: int
    emergent: bool
    charlson: int
    ed_visits: int

    @property
    def l_points(self) -> int:
        d = self.length_of_stay_days
        return 0 if d < 1 else d if d <= 3 else 4 if d <= 6 else 5 if d <= 13 else 7

    @property
    def a_points(self) -> int:
        return 3 if self.emergent else 0

    @property
    def c_points(self) -> int:
        return self.charlson if self.charlson < 4 else 5

    @property
    def e_points(self) -> int:
        return min(self.ed_visits, 4)

    @property
    def score(self) -> int:
        return self.l_points + self.a_points + self.c_points + self.e_points

    def detail(self) -> str:
        return (
            f"L{self.l_points} (stay {self.length_of_stay_days} d) A{self.a_points} C{self.c_points} "
            f"(Charlson {self.charlson}) E{self.e_points} ({self.ed_visits} ED visit(s) in 6 months)"
        )


def _first(event: CareEvent, resource_type: str) -> JSONObject | None:
    entries = event.bundle.get("entry", [])
    return next((e for e in entries if e.get("resource", {}).get("resourceType") == resource_type), None)


def _encounter_start(event: CareEvent) -> str:
    for entry in event.bundle.get("entry", []):
        resource = entry.get("resource", {})
        if resource.get("resourceType") == "Encounter":
            return str(resource.get("period", {}).get("start", ""))
    return ""


def lace(state: PatientState, event: CareEvent) -> Lace | None:
    """The LACE index of a discharge given the patient's history before it; None for other events."""
    discharged = parse_time(event.occurred_at)
    if event.kind != "discharge" or discharged is None:
        return None
    visit = state.visit(event.encounter_id)
    admitted = parse_time(visit.admitted_at if visit and visit.admitted_at else _encounter_start(event))
    admitted = admitted or discharged
    stay = max(0, (discharged.date() - admitted.date()).days)
    kind = str(event.attributes.get("admission_type") or (visit.admission_type if visit else ""))
    emergent = kind.upper() in EMERGENT or (visit is not None and visit.encounter_class == "EMER")
    codes = [c for v in state.visits if not v.cancelled for c in v.diagnoses] + diagnosis_codes(event)
    return Lace(stay, emergent, charlson(codes), _ed_before(state, event, admitted))


def _ed_before(state: PatientState, event: CareEvent, admitted: datetime) -> int:
    cancelled = {v.visit_id for v in state.visits if v.cancelled}
    since = admitted - ED_HISTORY
    return len(
        {
            enc
            for raw, enc in state.ed_visits
            if enc != event.encounter_id
            and enc not in cancelled
            and (t := parse_time(raw)) is not None
            and since <= t < admitted
        }
    )


def observation(event: CareEvent, score: Lace) -> JSONObject:
    """The LACE index as an Observation about the event's patient and encounter."""
    patient, encounter = _first(event, "Patient"), _first(event, "Encounter")
    resource: JSONObject = {
        "resourceType": "Observation",
        "id": _NS.id(event.event_id),
        "status": "final",
        "category": [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "survey"}]}
        ],  # fmt: skip
        "code": {"coding": [{"system": RISK_SYSTEM, "code": LACE_CODE, "display": LACE_DISPLAY}], "text": "LACE"},
        "effectiveDateTime": event.occurred_at,
        "valueInteger": score.score,
        "component": [
            _component("length-of-stay", score.l_points),
            _component("acuity", score.a_points),
            _component("comorbidity", score.c_points),
            _component("ed-visits", score.e_points),
        ],
        "note": [{"text": score.detail()}],
    }
    if patient is not None:
        resource["subject"] = {"reference": f"Patient/{patient['resource'].get('id', '')}"}
    if encounter is not None:
        resource["encounter"] = {"reference": f"Encounter/{encounter['resource'].get('id', '')}"}
    return resource


def _hub_risk(resource: JSONObject) -> bool:
    """An Observation in the hub's risk system: only the hub writes those (a sender's is dropped)."""
    codings = resource.get("code", {}).get("coding", []) if resource.get("resourceType") == "Observation" else []
    return any(c.get("system") == RISK_SYSTEM for c in codings)


def _component(code: str, points: int) -> JSONObject:
    return {"code": {"coding": [{"system": RISK_SYSTEM, "code": f"lace-{code}"}]}, "valueInteger": points}


def with_lace(event: CareEvent, score: Lace) -> CareEvent:
    """``event`` with the LACE Observation in its bundle (replacing an earlier one) and in ``attributes``."""
    obs = observation(event, score)
    entries = [e for e in event.bundle.get("entry", []) if not _hub_risk(e.get("resource", {}))]
    entries.append({"fullUrl": f"urn:uuid:{obs['id']}", "resource": obs})
    attributes = {**event.attributes, "lace": score.score, "lace_detail": score.detail()}
    return replace(event, bundle={**event.bundle, "entry": entries}, attributes=attributes)
