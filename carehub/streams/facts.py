"""What the scorecard keeps of a routed event (pure): its care fact, the Tasks it opened, a cancel.

Built in the route stage (streams.agents.route) from the event, the deliveries routing planned for
it and the recipient directory, and written to the journal (journal.carefacts). Times are stored
as carehub writes them (UTC, ``Z``), so they compare as text on both databases.
"""

from __future__ import annotations

from carehub.core.records import CareEvent, Delivery
from carehub.journal.carefacts import CANCELS, FACT_KINDS, Cancel, CareFact, FactTask
from carehub.journal.tasks import utc_iso
from carehub.streams.routing.match import payer_ids
from carehub.streams.routing.model import Recipient


def _utc(value: str) -> str:
    try:
        return utc_iso(value) if value else ""
    except ValueError:
        return ""


def _first(deliveries: list[Delivery], recipients: dict[str, Recipient], kind: str) -> str:
    found = (d.recipient_id for d in deliveries if d.action == "notify" and not d.corrects)
    return next((r for r in found if (rec := recipients.get(r)) is not None and rec.kind == kind), "")


def fact_of(event: CareEvent, planned: list[Delivery], recipients: dict[str, Recipient]) -> CareFact | None:
    """The care fact of an admission, registration, visit, transfer or discharge; None for other kinds."""
    occurred = _utc(event.occurred_at)
    if event.kind not in FACT_KINDS or not occurred:
        return None
    attrs = event.attributes
    payers = payer_ids(event)
    lace = attrs.get("lace")
    return CareFact(
        event_id=event.event_id,
        patient_key=event.patient_key,
        visit_id=event.encounter_id or "",
        kind=event.kind,
        occurred_at=occurred,
        received_at=_utc(str(event.source.get("received_at", ""))) or occurred,
        facility=event.facility,
        encounter_class=event.encounter_class,
        patient_class=str(attrs.get("patient_class", "")),
        admission_type=str(attrs.get("admission_type", "")),
        disposition=str(attrs.get("discharge_disposition", "")),
        birth_date=str(attrs.get("birth_date", ""))[:10],
        payer=_first(planned, recipients, "payer") or (payers[0] if payers else ""),
        pcp_recipient=_first(planned, recipients, "pcp"),
        lace=int(lace) if isinstance(lace, int) else None,
        lace_detail=str(attrs.get("lace_detail", "")),
    )


def _service(d: Delivery) -> tuple[str, str]:
    """(code, category) of a task delivery: the ServiceRequest's local code and its first category."""
    for entry in d.payload.get("entry", []):
        resource = entry.get("resource", {})
        if resource.get("resourceType") == "ServiceRequest":
            codings = resource.get("code", {}).get("coding", [])
            categories = [c.get("code", "") for cat in resource.get("category", []) for c in cat.get("coding", [])]
            code = str(codings[0].get("code", "")) if codings else ""
            category = next((str(c) for c in categories if c and c != code), "")
            return code, category
    return "", ""


def _due(d: Delivery) -> str:
    for entry in d.payload.get("entry", []):
        resource = entry.get("resource", {})
        if resource.get("resourceType") == "Task":
            return _utc(str(resource.get("restriction", {}).get("period", {}).get("end", "")))
    return ""


def tasks_of(event: CareEvent, planned: list[Delivery]) -> list[FactTask]:
    """The Tasks routing opened for the event (the Task id is the delivery id, as the journal stores it)."""
    out = []
    for d in planned:
        if d.action != "task" or d.corrects:
            continue
        code, category = _service(d)
        out.append(FactTask(d.delivery_id, event.event_id, event.patient_key, d.recipient_id, code, category, _due(d)))
    return out


def cancel_of(event: CareEvent) -> Cancel | None:
    if event.kind not in CANCELS or not event.encounter_id:
        return None
    return Cancel(event.kind, event.encounter_id, event.event_id, _utc(event.occurred_at) or "9999")
