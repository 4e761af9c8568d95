"""``python -m bench --only scorecard``: every shipped measure over a month of a busy journal.

Fills a fresh SQLite journal (and the local PostgreSQL when reachable) with N inpatient stays (an
admission, a discharge, PCP notifications with receipts, three follow-up Tasks with changes, a
clinic visit for some, a readmission for some) in one month, then times ``carehub scorecard`` over
that month (every shipped measure) and the worklists. Figures are printed, never asserted.
"""

from __future__ import annotations

import random
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg

from carehub.core.clock import iso, set_clock
from carehub.core.records import DeliveryOutcome
from carehub.journal import Journal, open_journal
from carehub.journal.carefacts import CareFact, FactTask
from carehub.scorecard.compute import Calculator, Period, compute_all
from carehub.scorecard.definitions import load_measures
from carehub.scorecard.worklists import worklists

PG = "postgresql://postgres@127.0.0.1:5432/test"
KINDS = {"pcp-riverside": "pcp", "payer-acme": "payer"}


def _fact(event_id: str, patient: str, visit: str, kind: str, at: datetime, klass: str = "IMP") -> CareFact:
    when = iso(at)
    return CareFact(event_id, patient, visit, kind, when, when, "RGH", klass, "I", "E", "home", "1960-01-01",
                    "payer-acme", "pcp-riverside", 7, "")  # fmt: skip


def _at(moment: datetime) -> None:
    """The journal's clock reads ``moment`` (Task changes are stamped with it)."""
    set_clock(lambda: moment)


def fill(journal: Journal, stays: int, seed: int = 17) -> None:
    rnd = random.Random(seed)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    # each store call is its own transaction, as the hub writes them
    for i in range(stays):
        patient, visit = f"RGH|B{i}", f"V{i}"
        admit = start + timedelta(minutes=rnd.randint(0, 28 * 24 * 60))
        discharge = admit + timedelta(days=rnd.randint(0, 9), hours=3)
        journal.facts.record(_fact(f"a{i}", patient, visit, "admit", admit), [])
        journal.facts.record(_fact(f"d{i}", patient, visit, "discharge", discharge), [])
        for event_id, at in ((f"a{i}", admit), (f"d{i}", discharge)):
            received = iso(at + timedelta(seconds=rnd.random() * 3))
            journal.record_outcome(DeliveryOutcome(f"o{event_id}", "k", event_id, "pcp-riverside", "notify",
                                                   "delivered", 1, "", received, 200))  # fmt: skip
        if rnd.random() < 0.3:
            journal.facts.record(_fact(f"c{i}", patient, f"C{i}", "register", discharge + timedelta(days=4),
                                       "AMB"), [])  # fmt: skip
        if rnd.random() < 0.15:
            journal.facts.record(_fact(f"r{i}", patient, f"R{i}", "admit", discharge + timedelta(days=12)), [])
        for code in ("tcm-contact", "tcm-visit", "med-rec"):
            task_id = uuid.uuid4().hex
            journal.facts.record(None, [FactTask(task_id, f"d{i}", patient, "pcp-riverside", code,
                                                 "transitions-of-care", "")])  # fmt: skip
            _at(discharge)
            due = {"period": {"end": iso(discharge + timedelta(days=7))}}
            journal.tasks.put({"id": task_id, "status": "requested", "authoredOn": iso(discharge),
                               "restriction": due}, "pcp-riverside", "hub", patient)  # fmt: skip
            if rnd.random() < 0.7:
                _at(discharge + timedelta(hours=5))
                journal.tasks.update(task_id, {"status": "accepted"}, "pcp")
                _at(discharge + timedelta(days=3))
                journal.tasks.update(task_id, {"status": "completed"}, "pcp")
    set_clock(None)


def _time(journal: Journal) -> tuple[float, float]:
    measures = load_measures(None)
    calc = Calculator(journal.db, KINDS)
    t0 = time.perf_counter()
    compute_all(calc, measures, Period(date(2026, 11, 1), date(2026, 11, 30)), date(2027, 1, 15))
    t1 = time.perf_counter()
    worklists(journal.db, KINDS, days=90)
    return t1 - t0, time.perf_counter() - t1


def bench_scorecard(quick: bool) -> list[str]:
    stays = 1000 if quick else 5000
    count = len(load_measures(None))
    lines = [f"scorecard: {stays} inpatient stays in a month (admit, discharge, 2 receipts, 3 Tasks each)"]
    with tempfile.TemporaryDirectory() as tmp:
        journal = open_journal(f"sqlite:///{Path(tmp) / 'journal.db'}")
        fill(journal, stays)
        measures_s, worklist_s = _time(journal)
        journal.close()
        lines.append(f"  sqlite:     {count} measures {measures_s:.2f} s, worklists {worklist_s:.2f} s")
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect(PG, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        return [*lines, "  postgresql: not reachable, skipped"]
    admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        journal = open_journal(f"{PG}?options=-csearch_path%3D{schema}")
        fill(journal, stays)
        measures_s, worklist_s = _time(journal)
        journal.close()
        lines.append(f"  postgresql: {count} measures {measures_s:.2f} s, worklists {worklist_s:.2f} s")
    finally:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()
    return lines
