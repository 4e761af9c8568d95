"""Worklists: today's open gaps, per recipient, each with the patient, the event, the Task and what to do next.

* ``no-receipt``: an inpatient discharge (not a death) whose notification no PCP has accepted yet;
* ``not-accepted``: a follow-up Task still ``requested`` more than N hours after the hub created it;
* ``overdue``: an open Task past its due time (flagged by journal.tasks.mark_overdue, or due before now);
* ``declined``: a Task its owner rejected or failed with no other Task of the same service for the
  patient opened since;
* ``no-vendor``: a logistics order every vendor declined or let expire (exhausted, docs/logistics.md);
* ``logistics-late``: an open logistics order past an SLA (accepted but not scheduled in time, or
  not completed by the end of its window).

Discharges and Tasks of cancelled visits are not gaps. The SQL is the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from carehub.core.clock import iso, now
from carehub.journal.db import Database

LISTS = ("no-receipt", "not-accepted", "overdue", "declined", "no-vendor", "logistics-late")
TITLES = {
    "no-receipt": "Discharged, no notification receipt by the PCP",
    "not-accepted": "Follow-up Task not accepted",
    "overdue": "Follow-up Task overdue",
    "declined": "Declined, no alternative",
    "no-vendor": "Logistics order no vendor took",
    "logistics-late": "Logistics order past its SLA",
}
OPEN = ("requested", "accepted", "in-progress", "on-hold")
#: Discharge dispositions of a patient who died (FHIR discharge-disposition exp; v2 0112 codes 40-42 kept as they are).
EXPIRED = ("exp", "40", "41", "42")


@dataclass(frozen=True, slots=True)
class Gap:
    list: str
    recipient: str
    patient_key: str
    event_id: str
    event_kind: str
    event_at: str
    facility: str
    task_id: str = ""
    task_code: str = ""
    task_status: str = ""
    since: str = ""
    lace: int | None = None
    next_step: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _marks(values: tuple[str, ...] | list[str]) -> str:
    return ", ".join("?" for _ in values)


def worklists(
    db: Database, kinds: dict[str, str], *, days: int = 30, accept_hours: float = 24.0, recipient: str = ""
) -> list[Gap]:
    """Every open gap of the last ``days`` days (optionally one recipient's), oldest first per list."""
    moment = now()
    since = iso(moment - timedelta(days=days))
    gaps = [
        *_no_receipt(db, kinds, since),
        *_not_accepted(db, since, iso(moment - timedelta(hours=accept_hours)), accept_hours),
        *_overdue(db, since, iso(moment)),
        *_declined(db, since),
        *_logistics(db, since),
    ]
    return [g for g in gaps if not recipient or g.recipient == recipient]


def _no_receipt(db: Database, kinds: dict[str, str], since: str) -> list[Gap]:
    pcps = sorted(r for r, k in kinds.items() if k == "pcp")
    delivered = (
        f" AND NOT EXISTS (SELECT 1 FROM delivery_outcomes o WHERE o.event_id = f.event_id AND o.action = 'notify'"
        f" AND o.status = 'delivered' AND o.recipient_id IN ({_marks(pcps)}))"
        if pcps
        else ""
    )
    rows = db.query(
        "SELECT f.event_id, f.patient_key, f.occurred_at, f.facility, f.pcp_recipient, f.lace,"
        " (SELECT MAX(o.status) FROM delivery_outcomes o WHERE o.event_id = f.event_id AND o.action = 'notify'"
        " AND o.recipient_id = f.pcp_recipient) FROM care_facts f"
        " WHERE f.kind = 'discharge' AND f.encounter_class = 'IMP' AND f.cancelled_by = '' AND f.occurred_at >= ?"
        f" AND f.disposition NOT IN ({_marks(EXPIRED)}){delivered} ORDER BY f.occurred_at",
        (since, *EXPIRED, *pcps),
    )
    out = []
    for event_id, patient, at, facility, pcp, lace, status in rows:
        if not pcp:
            step = "no PCP attributed: find the patient's practice (roster or PD1-4) and send the discharge summary"
        elif status:
            step = f"the notification to {pcp} is {status}: check the dead letters (carehub dlq list) and resend"
        else:
            step = f"the notification to {pcp} is still in flight or held: check the recipient's status"
        out.append(Gap("no-receipt", str(pcp or "(unattributed)"), str(patient), str(event_id), "discharge",
                       str(at), str(facility), since=str(at), lace=lace, next_step=step))  # fmt: skip
    return out


_TASK_SELECT = (
    "SELECT t.id, c.recipient_id, c.patient_key, c.event_id, COALESCE(f.kind, ''), COALESCE(f.occurred_at, ''),"
    " COALESCE(f.facility, ''), c.code, c.category, t.status, t.due, t.overdue_at,"
    " (SELECT MIN(ch.at) FROM task_changes ch WHERE ch.task_id = t.id), t.resource,"
    " (SELECT MAX(x.lace) FROM care_facts x WHERE x.event_id = c.event_id)"
    " FROM care_fact_tasks c JOIN tasks t ON t.id = c.task_id LEFT JOIN care_facts f ON f.event_id = c.event_id"
)
_NOT_CANCELLED = " AND COALESCE(f.cancelled_by, '') = ''"


def _task_gap(name: str, row: tuple[Any, ...], since: str, step: str) -> Gap:
    task_id, recipient, patient, event_id, kind, at, facility, code, category = (str(v) for v in row[:9])
    service = category if category and category != "transitions-of-care" else code
    return Gap(name, recipient, patient, event_id, kind, at, facility, task_id, service, str(row[9]), since,
               row[14], step)  # fmt: skip


def _not_accepted(db: Database, since: str, before: str, hours: float) -> list[Gap]:
    rows = db.query(
        f"{_TASK_SELECT} WHERE t.status = 'requested' AND t.authored_on >= ?{_NOT_CANCELLED}"
        " AND (SELECT MIN(ch.at) FROM task_changes ch WHERE ch.task_id = t.id) < ? ORDER BY t.authored_on",
        (since, before),
    )
    return [
        _task_gap(
            "not-accepted",
            r,
            str(r[12]),
            f"not accepted in {hours:g} h: call {r[1]} to confirm they received the {r[7]} Task",
        )  # fmt: skip
        for r in rows
    ]


def _overdue(db: Database, since: str, moment: str) -> list[Gap]:
    """Open past the due time: flagged by the overdue watcher, or due before now (the flag may lag)."""
    rows = db.query(
        f"{_TASK_SELECT} WHERE (t.overdue_at IS NOT NULL OR t.due < ?) AND t.status IN ({_marks(OPEN)})"
        f" AND t.authored_on >= ?{_NOT_CANCELLED} ORDER BY t.due",
        (moment, *OPEN, since),
    )
    return [
        _task_gap("overdue", r, str(r[10] or ""), f"due {r[10]}, still {r[9]}: escalate with {r[1]} or reassign")
        for r in rows
    ]


def _declined(db: Database, since: str) -> list[Gap]:
    rows = db.query(
        f"{_TASK_SELECT} WHERE t.status IN ('rejected', 'failed') AND t.authored_on >= ?{_NOT_CANCELLED}"
        " AND NOT EXISTS (SELECT 1 FROM care_fact_tasks c2 JOIN tasks t2 ON t2.id = c2.task_id"
        " WHERE c2.patient_key = c.patient_key AND c2.code = c.code AND c2.category = c.category"
        " AND c2.task_id <> c.task_id AND t2.authored_on >= t.authored_on"
        " AND t2.status NOT IN ('rejected', 'failed', 'cancelled', 'entered-in-error')) ORDER BY t.authored_on",
        (since,),
    )
    out = []
    for r in rows:
        reason = str(json.loads(str(r[13])).get("statusReason", {}).get("text", "")) if r[13] else ""
        why = f" ({reason})" if reason else ""
        step = f"{r[1]} {r[9]} it{why}: refer to another provider of the service"
        out.append(_task_gap("declined", r, str(r[5]), step))
    return out


def _logistics(db: Database, since: str) -> list[Gap]:
    """Orders no vendor took, and open orders past an SLA (journal.logistics)."""
    rows = db.query(
        "SELECT id, patient_key, service, capability, state, vendor_id, placed_at, window_start, schedule_alerted,"
        " window_alerted FROM orders WHERE placed_at >= ? AND (state = 'exhausted' OR (state IN"
        " ('accepted', 'scheduled') AND (schedule_alerted = 1 OR window_alerted = 1))) ORDER BY placed_at",
        (since,),
    )
    out = []
    for order_id, patient, service, capability, state, vendor, placed, start, scheduled_late, _window in rows:
        what = f"{service}:{capability}"
        if state == "exhausted":
            step = f"no {service} vendor took it (carehub orders show {order_id}): arrange it by phone or add a vendor"
            out.append(Gap("no-vendor", f"({service})", str(patient), str(order_id), "order", str(placed), "",
                           str(order_id), what, str(state), str(placed), None, step))  # fmt: skip
            continue
        late = "not scheduled in time" if scheduled_late else "not completed by the end of its window"
        step = f"{vendor} {state} it, {late} (window from {start}): call {vendor} or order from another vendor"
        out.append(Gap("logistics-late", str(vendor), str(patient), str(order_id), "order", str(placed), "",
                       str(order_id), what, str(state), str(placed), None, step))  # fmt: skip
    return out
