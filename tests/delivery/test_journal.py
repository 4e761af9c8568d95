"""The journal on SQLite and on the real PostgreSQL server: same SQL, same answers."""

from __future__ import annotations

import pytest

from carehub.journal import Journal
from carehub.journal.tasks import check_transition, utc_iso
from carehub.streams.delivery_policy import outcome
from tests.delivery.helpers import delivery


def test_attempts_and_outcomes_are_journaled(journal: Journal) -> None:
    d = delivery(1)
    journal.record_attempt(d, 1, "transient", 503, "recipient answered HTTP 503")
    journal.record_attempt(d, 2, "ok", 200, "")
    journal.record_outcome(outcome(d, "delivered", 2, "", 200))
    rows = journal.attempts(d.delivery_id)
    assert [(r["attempt"], r["result"], r["status_code"]) for r in rows] == [(1, "transient", 503), (2, "ok", 200)]
    assert {r["idempotency_key"] for r in rows} == {d.idempotency_key}
    assert journal.outcome_status(d.delivery_id) == "delivered" and journal.is_finished(d.delivery_id)


def test_a_held_pair_queues_in_order_and_releases_when_drained(journal: Journal) -> None:
    first, second, third = delivery(1), delivery(2), delivery(3)
    other_patient = delivery(4, patient="RGH|MRN2")
    assert not journal.enqueue_if_held(first), "nothing holds the pair yet"
    journal.hold(first)
    assert not journal.enqueue_if_held(first), "the holder never queues behind itself"
    assert journal.enqueue_if_held(second) and journal.enqueue_if_held(third)
    assert journal.enqueue_if_held(second), "a repeat is absorbed"
    assert not journal.enqueue_if_held(other_patient), "other patients are not held up"
    assert journal.queued_count() == 2
    assert not journal.release_if_idle("pcp-riverside", "RGH|MRN1", first.delivery_id), "queue not empty"
    nxt = journal.next_queued("pcp-riverside", "RGH|MRN1")
    assert nxt is not None and nxt.delivery_id == second.delivery_id
    journal.dequeue(second.delivery_id)
    journal.dequeue(third.delivery_id)
    assert journal.release_if_idle("pcp-riverside", "RGH|MRN1", first.delivery_id)
    assert journal.holder("pcp-riverside", "RGH|MRN1") is None


def test_dead_letters_park_and_replay(journal: Journal) -> None:
    d = delivery(7)
    journal.record_outcome(outcome(d, "failed", 1, "permanent: HTTP 400", 400))
    journal.park(d, "delivery-rejected", "permanent: recipient answered HTTP 400")
    [row] = journal.dead_letters("parked")
    assert row.delivery == d and row.summary()["reason"].endswith("HTTP 400")
    assert "payload" not in row.summary()
    journal.mark_replayed(d.delivery_id)
    assert journal.dead_letters("parked") == [] and len(journal.dead_letters("replayed")) == 1
    assert not journal.is_finished(d.delivery_id), "a replay reopens the delivery"


def _task(task_id: str, due: str) -> dict[str, object]:
    return {
        "resourceType": "Task",
        "id": task_id,
        "status": "requested",
        "intent": "order",
        "authoredOn": "2026-03-01T10:00:00Z",
        "owner": {"reference": "Organization/cbo-foodbank"},
        "requester": {"reference": "Organization/payer-acme"},
        "restriction": {"period": {"end": due}},
    }


def test_task_goes_requested_accepted_completed_with_turnaround(journal: Journal) -> None:
    assert journal.tasks.put(_task("t1", "2026-03-03"), "cbo-foodbank")
    assert not journal.tasks.put(_task("t1", "2026-03-03"), "cbo-foodbank"), "stored once"
    journal.tasks.update("t1", {"status": "accepted"}, "cbo")
    change = journal.tasks.update("t1", {"status": "completed", "output": [{"valueString": "done"}]}, "cbo")
    assert change.resource["meta"]["versionId"] == "3" and change.turnaround_s is not None
    assert change.turnaround_s > 0 and journal.tasks.turnaround_s("t1") == pytest.approx(change.turnaround_s)
    assert journal.tasks.history("t1") == [
        (None, "requested", "hub"),
        ("requested", "accepted", "cbo"),
        ("accepted", "completed", "cbo"),
    ]
    with pytest.raises(ValueError, match="already completed"):
        journal.tasks.update("t1", {"status": "in-progress"}, "cbo")
    assert [t["id"] for t in journal.tasks.search(owner="Organization/cbo-foodbank", status="completed")] == ["t1"]


def test_overdue_tasks_are_flagged_once(journal: Journal) -> None:
    journal.tasks.put(_task("late", "2026-03-02T00:00:00-05:00"), "cbo-foodbank")
    journal.tasks.put(_task("fine", "2026-04-01"), "cbo-foodbank")
    due = journal.tasks.due_overdue("2026-03-02T06:00:00Z")
    assert [t["id"] for t in due] == ["late"]
    assert journal.tasks.mark_overdue("late") and not journal.tasks.mark_overdue("late")
    assert journal.tasks.due_overdue("2026-03-02T06:00:00Z") == []


def test_status_rules() -> None:
    assert check_transition("requested", "accepted") is None
    assert "requester" in (check_transition("accepted", "draft") or "")
    assert "not a Task status" in (check_transition("requested", "ready") or "")
    assert utc_iso("2026-03-02T00:00:00-05:00") == "2026-03-02T05:00:00.000Z"


async def test_calls_queued_together_commit_as_one_group_and_a_failing_call_is_rolled_back_alone(
    journal: Journal,
) -> None:
    """Group commit (carehub/journal/db.py): concurrent ``run`` calls share one transaction, each in a
    savepoint; a call that fails mid-way leaves nothing behind and the others' writes are durable."""
    import asyncio
    import threading

    gate = threading.Event()
    ready = threading.Event()

    def block() -> None:  # holds the journal thread so the calls below queue up behind it
        ready.set()
        gate.wait(10)

    def fail_after_a_write(d: object) -> None:
        journal.record_outcome(outcome(delivery(99), "delivered", 1, "", 200))
        raise RuntimeError("this call fails after its first write")

    blocker = asyncio.ensure_future(journal.db.run(block))
    await asyncio.to_thread(ready.wait, 10)
    writes = [journal.db.run(journal.record_outcome, outcome(delivery(n), "delivered", 1, "", 200)) for n in (1, 2)]
    failing = journal.db.run(fail_after_a_write, None)
    after = journal.db.run(journal.record_outcome, outcome(delivery(3), "delivered", 1, "", 200))
    queued = asyncio.gather(*writes, failing, after, return_exceptions=True)
    await asyncio.sleep(0.05)
    gate.set()
    await blocker
    results = await queued
    assert results[:2] == [None, None] and results[3] is None
    assert isinstance(results[2], RuntimeError)
    assert [journal.outcome_status(delivery(n).delivery_id) for n in (1, 2, 3)] == ["delivered"] * 3
    assert journal.outcome_status(delivery(99).delivery_id) is None, "the failed call's write was rolled back"


async def test_submitted_calls_run_in_order_as_one_group_and_resolve_after_its_commit(journal: Journal) -> None:
    """``Database.submit`` queues a call at once (a stage queues a chunk's writes before awaiting any): each
    call sees what the calls queued before it wrote, and none is reported done before the whole group's
    COMMIT (the route and careplan stages send an event's outputs only once its writes resolved)."""
    import asyncio
    import threading
    import time

    gate = threading.Event()
    ready = threading.Event()
    finished: dict[str, float] = {}

    def block() -> None:
        ready.set()
        gate.wait(10)

    def write(n: int) -> None:
        journal.record_outcome(outcome(delivery(n), "delivered", 1, "", 200))
        finished[f"write {n}"] = time.monotonic()

    def read_then_linger() -> str | None:
        seen = journal.outcome_status(delivery(1).delivery_id)  # the write queued before this one
        time.sleep(0.2)
        finished["last call"] = time.monotonic()
        return seen

    blocker = journal.db.submit(block)
    await asyncio.to_thread(ready.wait, 10)
    first, second = journal.db.submit(write, 1), journal.db.submit(read_then_linger)
    resolved: dict[str, float] = {}
    first.add_done_callback(lambda _: resolved.setdefault("first", time.monotonic()))
    gate.set()
    await blocker
    assert await second == "delivered", "a submitted call sees the writes of the calls queued before it"
    await first
    assert resolved["first"] >= finished["last call"], "the first write resolved only with its group's COMMIT"
    assert journal.outcome_status(delivery(1).delivery_id) == "delivered"


async def test_an_error_caught_inside_a_call_still_rolls_back_its_own_block_in_a_group(journal: Journal) -> None:
    """A group runs first without savepoints (carehub/journal/db.py); an error that passes through a
    ``transaction()`` block spoils that run even when the call catches it (as the route's CarePlan write
    does), so the group runs again call by call: the block's write is undone, the rest of the call and
    the other calls of the group are kept."""
    import asyncio
    import threading

    gate = threading.Event()
    ready = threading.Event()

    def block() -> None:
        ready.set()
        gate.wait(10)

    def keeps_one_loses_one() -> str:
        journal.record_outcome(outcome(delivery(1), "delivered", 1, "", 200))
        try:
            with journal.db.transaction():
                journal.record_outcome(outcome(delivery(2), "delivered", 1, "", 200))
                raise RuntimeError("the inner block fails")
        except RuntimeError:
            return "caught"

    blocker = journal.db.submit(block)
    await asyncio.to_thread(ready.wait, 10)
    queued = [journal.db.submit(journal.record_outcome, outcome(delivery(0), "delivered", 1, "", 200)),
              journal.db.submit(keeps_one_loses_one),
              journal.db.submit(journal.record_outcome, outcome(delivery(3), "delivered", 1, "", 200))]  # fmt: skip
    gate.set()
    await blocker
    assert await asyncio.gather(*queued) == [None, "caught", None]
    assert [journal.outcome_status(delivery(n).delivery_id) for n in range(4)] == [
        "delivered", "delivered", None, "delivered"]  # fmt: skip
