"""Compute measures from the journal: SQL selects subjects and evidence, the calendar decides windows.

The SQL (the same text on SQLite and PostgreSQL, placeholders translated by journal.db) joins
``care_facts`` (what was routed, merges rewritten to the survivor, cancels marked) with
``delivery_outcomes`` (what each recipient accepted, and when), ``tasks`` / ``task_changes`` and
``care_fact_tasks`` (which Task was opened for which event, its code). It returns each subject
with every piece of candidate evidence at or after the subject's day; the windows (days or
business days from the subject's date or its admission) are applied here, in UTC dates, so a
window in business days means the same on both databases.

A subject is ``met`` (in the numerator), ``unmet``, ``excluded`` (a disposition or exclusion
evidence) or ``pending``: not met yet while its window is still open on the as-of date. Rates
are over met + unmet + pending (pending subjects are gaps that can still close).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from carehub.core.clock import now
from carehub.journal.db import Database
from carehub.journal.tasks import TERMINAL, seconds_between
from carehub.scorecard.definitions import Evidence, Measure, Span
from carehub.streams.referrals import add_business_days

#: Statuses that show the owner took a Task on.
TAKEN_ON = ("accepted", "in-progress", "on-hold", "completed")
OPEN_STATUSES = ("draft", "requested", "received", "accepted", "in-progress", "on-hold")


@dataclass(frozen=True, slots=True)
class Period:
    start: date
    end: date  # inclusive

    @property
    def low(self) -> str:
        return f"{self.start.isoformat()}T00:00:00"

    @property
    def high(self) -> str:
        return f"{(self.end + timedelta(days=1)).isoformat()}T00:00:00"

    def text(self) -> str:
        return f"{self.start.isoformat()}/{self.end.isoformat()}"


def parse_period(start: str, end: str) -> Period:
    """``2026-11-01`` .. ``2026-11-30`` (inclusive); ValueError naming what is wrong."""
    try:
        period = Period(date.fromisoformat(start[:10]), date.fromisoformat(end[:10]))
    except ValueError:
        raise ValueError(f"a period is two dates like 2026-11-01 and 2026-11-30 (got {start!r}, {end!r})") from None
    if period.end < period.start:
        raise ValueError(f"the period ends ({end}) before it starts ({start})")
    return period


@dataclass(frozen=True, slots=True)
class Subject:
    """One member of a measure's population: an event, a Task or a delivered notification."""

    id: str
    patient_key: str
    at: str
    facility: str = ""
    payer: str = ""
    recipient: str = ""
    service: str = ""
    kind: str = ""
    lace: int | None = None
    status: str = "unmet"
    evidence_at: str = ""
    why: str = ""
    #: Duration measures: seconds from start to end (None: not reached yet).
    value_s: float | None = None

    def strata(self) -> dict[str, str]:
        return {"facility": self.facility, "payer": self.payer, "recipient": self.recipient, "service": self.service}


@dataclass(frozen=True, slots=True)
class Summary:
    numerator: int = 0
    denominator: int = 0
    excluded: int = 0
    pending: int = 0
    count: int = 0
    open: int = 0
    median: float | None = None
    p90: float | None = None

    @property
    def rate(self) -> float | None:
        return None if self.denominator == 0 else self.numerator / self.denominator


@dataclass(frozen=True, slots=True)
class Result:
    measure: Measure
    period: Period
    as_of: str
    subjects: tuple[Subject, ...]
    summary: Summary
    strata: dict[str, dict[str, Summary]] = field(default_factory=dict)


def summarize(measure: Measure, subjects: Sequence[Subject]) -> Summary:
    if measure.type == "duration":
        values = sorted(s.value_s for s in subjects if s.value_s is not None)
        counted = [s for s in subjects if s.status != "excluded"]
        return Summary(
            numerator=len(values),
            denominator=len(counted),
            excluded=len(subjects) - len(counted),
            count=len(values),
            open=sum(1 for s in counted if s.value_s is None),
            median=statistics.median(values) if values else None,
            p90=percentile(values, 0.9),
        )
    met = sum(1 for s in subjects if s.status == "met")
    pending = sum(1 for s in subjects if s.status == "pending")
    unmet = sum(1 for s in subjects if s.status == "unmet")
    excluded = sum(1 for s in subjects if s.status == "excluded")
    return Summary(numerator=met, denominator=met + unmet + pending, excluded=excluded, pending=pending)


def percentile(ordered: Sequence[float], share: float) -> float | None:
    """Nearest rank: the smallest value with at least ``share`` of the values at or below it."""
    if not ordered:
        return None
    rank = max(1, -(-int(share * 1000) * len(ordered) // 1000))  # ceil(share * n) without float drift
    return ordered[min(rank, len(ordered)) - 1]


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


def _day(value: str) -> date:
    return date.fromisoformat(value[:10])


def _shift(day: date, span: Span) -> date:
    moved = add_business_days(datetime.combine(day, datetime.min.time(), UTC), span.business_days).date()
    return moved + timedelta(days=span.days)


def age_on(birth_date: str, on: date) -> int | None:
    try:
        born = date.fromisoformat(birth_date[:10])
    except ValueError:
        return None
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


class Calculator:
    """Measures over one journal; ``kinds`` maps directory recipient ids to their kind (pcp, payer, ...)."""

    def __init__(self, db: Database, kinds: dict[str, str]) -> None:
        self.db = db
        self.kinds = kinds

    def recipients_of(self, kinds: Iterable[str]) -> list[str]:
        wanted = set(kinds)
        return sorted(r for r, k in self.kinds.items() if k in wanted)

    def compute(self, measure: Measure, period: Period, as_of: date | None = None) -> Result:
        as_of = as_of or now().date()
        if measure.subject == "event":
            subjects = self._events(measure, period, as_of)
        elif measure.subject == "task":
            subjects = self._tasks(measure, period, as_of)
        else:
            subjects = self._notifications(measure, period)
        strata: dict[str, dict[str, Summary]] = {}
        for key in measure.stratify:
            groups: dict[str, list[Subject]] = {}
            for s in subjects:
                groups.setdefault(s.strata()[key] or "(none)", []).append(s)
            strata[key] = {value: summarize(measure, group) for value, group in sorted(groups.items())}
        return Result(measure, period, as_of.isoformat(), tuple(subjects), summarize(measure, subjects), strata)

    # events ---------------------------------------------------------------------------------------
    def _denominator(self, m: Measure, period: Period) -> tuple[str, list[Any]]:
        where = ["f.cancelled_by = ''", "f.occurred_at >= ?", "f.occurred_at < ?", f"f.kind IN ({_marks(m.events)})"]
        params: list[Any] = [period.low, period.high, *m.events]
        if m.encounter_classes:
            where.append(f"f.encounter_class IN ({_marks(m.encounter_classes)})")
            params += list(m.encounter_classes)
        return " AND ".join(where), params

    def _events(self, m: Measure, period: Period, as_of: date) -> list[Subject]:
        where, params = self._denominator(m, period)
        rows = self.db.query(
            "SELECT f.event_id, f.patient_key, f.occurred_at, f.facility, f.payer, f.pcp_recipient, f.kind, f.lace,"
            " f.disposition, f.birth_date, (SELECT MIN(a.occurred_at) FROM care_facts a WHERE a.visit_id = f.visit_id"
            " AND a.visit_id <> '' AND a.kind = 'admit' AND a.cancelled_by = '') FROM care_facts f"
            f" WHERE {where} ORDER BY f.occurred_at, f.event_id",
            params,
        )
        admitted = {str(r[0]): str(r[10] or "") for r in rows}
        excluded_by = {e: self._evidence(m, e, where, params) for e in m.exclude_any}
        found = {e: self._evidence(m, e, where, params) for e in m.numerator_any}
        out = []
        for row in rows:
            event_id, at = str(row[0]), str(row[2])
            subject = Subject(event_id, str(row[1]), at, str(row[3]), str(row[4]), str(row[5]), "", str(row[6]),
                              int(row[7]) if row[7] is not None else None)  # fmt: skip
            age = age_on(str(row[9]), _day(at))
            if (m.age_min is not None and (age is None or age < m.age_min)) or (
                m.age_max is not None and (age is None or age > m.age_max)
            ):
                continue  # not in the initial population
            if str(row[8]) and str(row[8]) in m.exclude_dispositions:
                out.append(replace(subject, status="excluded", why=f"discharge disposition {row[8]}"))
                continue
            hit = self._first_in_window(m.exclude_any, excluded_by, event_id, at, admitted[event_id])
            if hit is not None:
                out.append(replace(subject, status="excluded", evidence_at=hit[1], why=f"excluded: {hit[0]}"))
                continue
            hit = self._first_in_window(m.numerator_any, found, event_id, at, admitted[event_id])
            if hit is not None:
                out.append(replace(subject, status="met", evidence_at=hit[1], why=hit[0]))
                continue
            closes = max((self._window(e, at, admitted[event_id])[1] for e in m.numerator_any), default=_day(at))
            still_open = closes >= as_of
            why = f"window open until {closes.isoformat()}" if still_open else "no evidence in the window"
            out.append(replace(subject, status="pending" if still_open else "unmet", why=why))
        return out

    def _window(self, e: Evidence, at: str, admitted: str) -> tuple[date, date]:
        anchor = _day(admitted) if e.window.anchor == "admission" and admitted else _day(at)
        return _shift(anchor, e.window.start), _shift(anchor, e.window.end)

    def _first_in_window(
        self, items: Sequence[Evidence], found: dict[Evidence, dict[str, list[str]]], event_id: str, at: str,
        admitted: str,
    ) -> tuple[str, str] | None:  # fmt: skip
        """(what, when) of the earliest evidence inside its window, else None."""
        hits = []
        for e in items:
            if e.window.anchor == "admission" and not admitted:
                continue
            low, high = self._window(e, at, admitted)
            hits += [(when, e) for when in found[e].get(event_id, []) if low <= _day(when) <= high]
        if not hits:
            return None
        when, e = min(hits, key=lambda h: h[0])
        return describe(e), when

    def _evidence(self, m: Measure, e: Evidence, where: str, params: list[Any]) -> dict[str, list[str]]:
        """Subject event id -> times of candidate evidence (at or after the subject's day)."""
        if e.kind == "delivery":
            sql, extra = self._delivery_sql(e)
        elif e.kind == "task":
            sql, extra = self._task_sql(e)
        else:
            sql, extra = self._encounter_sql(e)
        if sql is None:
            return {}
        rows = self.db.query(f"{sql} WHERE {where}{extra[0]}", [*extra[1], *params, *extra[2]])
        out: dict[str, list[str]] = {}
        for event_id, when in rows:
            if when:
                out.setdefault(str(event_id), []).append(str(when))
        return out

    def _delivery_sql(self, e: Evidence) -> tuple[str | None, tuple[str, list[Any], list[Any]]]:
        recipients = self.recipients_of(e.recipient_kinds) if e.recipient_kinds else None
        if recipients == []:
            return None, ("", [], [])
        source = "f" if e.of == "event" else "a"
        join = (
            ""
            if e.of == "event"
            else " JOIN care_facts a ON a.visit_id = f.visit_id AND a.visit_id <> '' AND a.kind = 'admit'"
            " AND a.cancelled_by = ''"
        )
        sql = (
            f"SELECT f.event_id, o.finished_at FROM care_facts f{join}"
            f" JOIN delivery_outcomes o ON o.event_id = {source}.event_id"
        )
        extra = " AND o.action = ? AND o.status = 'delivered'"
        tail: list[Any] = [e.action]
        if recipients:
            extra += f" AND o.recipient_id IN ({_marks(recipients)})"
            tail += recipients
        return sql, (extra, [], tail)

    def _task_sql(self, e: Evidence) -> tuple[str | None, tuple[str, list[Any], list[Any]]]:
        if e.status == "completed":
            moment = "t.completed_at"
            extra = " AND t.status = 'completed'"
        else:
            moment = (
                "(SELECT MIN(ch.at) FROM task_changes ch WHERE ch.task_id = t.id"
                f" AND ch.to_status IN ({_marks(TAKEN_ON)}))"
            )
            extra = ""
        sql = (
            f"SELECT f.event_id, {moment} FROM care_facts f JOIN care_fact_tasks c ON c.patient_key = f.patient_key"
            " JOIN tasks t ON t.id = c.task_id"
        )
        head: list[Any] = list(TAKEN_ON) if e.status != "completed" else []
        return sql, (f"{extra} AND c.code IN ({_marks(e.codes)})", head, list(e.codes))

    def _encounter_sql(self, e: Evidence) -> tuple[str | None, tuple[str, list[Any], list[Any]]]:
        sql = (
            "SELECT f.event_id, e.occurred_at FROM care_facts f JOIN care_facts e ON e.patient_key = f.patient_key"
            " AND e.event_id <> f.event_id"
        )
        extra = f" AND e.cancelled_by = '' AND e.occurred_at > f.occurred_at AND e.kind IN ({_marks(e.events)})"
        tail: list[Any] = list(e.events)
        if e.encounter_classes:
            extra += f" AND e.encounter_class IN ({_marks(e.encounter_classes)})"
            tail += list(e.encounter_classes)
        return sql, (extra, [], tail)

    # tasks ----------------------------------------------------------------------------------------
    def _tasks(self, m: Measure, period: Period, as_of: date) -> list[Subject]:
        where = ["t.authored_on >= ?", "t.authored_on < ?"]
        params: list[Any] = [*TAKEN_ON, period.low, period.high]
        if m.codes:
            where.append(f"c.code IN ({_marks(m.codes)})")
            params += list(m.codes)
        if m.recipient_kinds:
            recipients = self.recipients_of(m.recipient_kinds)
            if not recipients:
                return []
            where.append(f"c.recipient_id IN ({_marks(recipients)})")
            params += recipients
        rows = self.db.query(
            "SELECT c.task_id, c.patient_key, c.recipient_id, c.code, c.category, t.status, t.overdue_at,"
            " t.completed_at, (SELECT MIN(ch.at) FROM task_changes ch WHERE ch.task_id = t.id),"
            " (SELECT MIN(ch.at) FROM task_changes ch WHERE ch.task_id = t.id"
            f" AND ch.to_status IN ({_marks(TAKEN_ON)})),"
            " COALESCE(f.facility, ''), COALESCE(f.payer, ''), COALESCE(f.cancelled_by, ''), t.authored_on, t.due"
            " FROM care_fact_tasks c JOIN tasks t ON t.id = c.task_id"
            " LEFT JOIN care_facts f ON f.event_id = c.event_id"
            f" WHERE {' AND '.join(where)} ORDER BY t.authored_on, c.task_id",
            params,
        )
        return [self._task_subject(m, row, as_of) for row in rows]

    def _task_subject(self, m: Measure, row: Sequence[Any], as_of: date) -> Subject:
        task_id, patient, recipient, code, category, status = (str(v) for v in row[:6])
        overdue, completed, created, accepted = row[6], row[7], row[8], row[9]
        facility, payer, cancelled = str(row[10]), str(row[11]), str(row[12])
        service = category if category and category != "transitions-of-care" else code
        base = Subject(task_id, patient, str(created or row[13]), facility, payer, recipient, service, code)
        if cancelled:
            return replace(base, status="excluded", why="its admission or discharge was cancelled")
        if m.type == "duration":
            end = completed if m.duration_to == "completed" else accepted
            value = seconds_between(str(created), str(end)) if created and end else None
            return replace(base, value_s=value, status="met" if value is not None else "pending")
        if status in m.numerator_status:
            return replace(base, status="met", evidence_at=str(completed or ""), why=status)
        if status in TERMINAL:
            return replace(base, status="unmet", why=status)
        due = str(row[14] or "")
        if overdue or (due and _day(due) < as_of):
            return replace(base, status="unmet", why=f"past due ({due}), still {status}")
        return replace(base, status="pending", why=f"{status}, not yet due")

    # notifications --------------------------------------------------------------------------------
    def _notifications(self, m: Measure, period: Period) -> list[Subject]:
        where = ["o.action = 'notify'", "f.occurred_at >= ?", "f.occurred_at < ?"]
        params: list[Any] = [period.low, period.high]
        if m.recipient_kinds:
            recipients = self.recipients_of(m.recipient_kinds)
            if not recipients:
                return []
            where.append(f"o.recipient_id IN ({_marks(recipients)})")
            params += recipients
        rows = self.db.query(
            "SELECT o.delivery_id, f.patient_key, f.received_at, f.facility, f.payer, o.recipient_id, f.kind,"
            " o.status, o.finished_at FROM delivery_outcomes o JOIN care_facts f ON f.event_id = o.event_id"
            f" WHERE {' AND '.join(where)} ORDER BY f.received_at, o.delivery_id",
            params,
        )
        out = []
        for delivery_id, patient, received, facility, payer, recipient, kind, status, finished in rows:
            value = seconds_between(str(received), str(finished)) if status == "delivered" else None
            out.append(
                Subject(
                    str(delivery_id),
                    str(patient),
                    str(received),
                    str(facility),
                    str(payer),
                    str(recipient),
                    "",
                    str(kind),
                    status="met" if value is not None else "pending",
                    value_s=value,
                    evidence_at=str(finished) if value is not None else "",
                    why=str(status),
                )  # fmt: skip
            )
        return out


def describe(e: Evidence) -> str:
    """What a piece of evidence is, in words (worklists and subject lists say why a subject counts)."""
    if e.kind == "delivery":
        who = "/".join(e.recipient_kinds) or "any recipient"
        return f"{e.action} of the {'admission' if e.of == 'admission' else 'event'} delivered to {who}"
    if e.kind == "task":
        return f"{'/'.join(e.codes)} Task {e.status}"
    classes = f" ({'/'.join(e.encounter_classes)})" if e.encounter_classes else ""
    return f"{'/'.join(e.events)}{classes} seen by the hub"


def compute_all(
    calculator: Calculator, measures: Sequence[Measure], period: Period, as_of: date | None = None
) -> list[Result]:
    return [calculator.compute(m, period, as_of) for m in measures]
