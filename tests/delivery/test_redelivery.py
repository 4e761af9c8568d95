"""A fresh delivery record read again after a crash is never left waiting on a retry that was not published.

The deliver stage holds a (recipient, patient) pair in the journal and then publishes the retry record.
A worker killed between the two leaves the hold without the retry record; the uncommitted input is read
again by the next worker. It must attempt the delivery, not trust a retry that may not exist.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from carehub.connectors.webhook import WebhookDestination
from carehub.core.clock import now_iso
from carehub.core.metrics import Metrics
from carehub.core.records import Record
from carehub.core.topics import Topics
from carehub.journal import Journal, open_journal
from carehub.streams.consent.deps import ConsentDeps
from carehub.streams.consent.egress import SendGate
from carehub.streams.consent.policy import load_policy
from carehub.streams.delivery_flow import PAUSE_READ_S, DeliveryFlow
from carehub.streams.delivery_policy import RetryPolicy
from carehub.streams.routing.source import ReloadingRoutingMap
from tests.conftest import CONFIG
from tests.consent.test_egress import Consents
from tests.delivery.helpers import delivery
from tests.delivery.recipients import HttpRecipient


class Published:
    def __init__(self) -> None:
        self.topics: list[str] = []

    async def send(self, topic_name: str, key: str, record: Record) -> None:
        self.topics.append(topic_name)

    async def audit(self, key: str, document: dict[str, Any]) -> None:
        self.topics.append("audit")


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = open_journal(f"sqlite:///{tmp_path}/journal.db")
    yield j
    j.close()


def _flow(journal: Journal, published: Published, topics: Topics) -> DeliveryFlow:
    """The deliver stage's flow over the real journal, send-time gate and webhook connector."""
    gate = SendGate(ConsentDeps(load_policy(CONFIG), Consents()), ReloadingRoutingMap(CONFIG), journal,
                    published.audit, clock=now_iso)  # fmt: skip
    destinations = {"webhook": WebhookDestination(5.0, secret_for=lambda _: "redelivery-test-signing-secret")}
    return DeliveryFlow(published, topics, journal, destinations, RetryPolicy(), Metrics(), gate=gate)


async def test_a_redelivered_record_whose_retry_was_never_published_is_attempted_again(journal: Journal) -> None:
    recipient = HttpRecipient()
    await recipient.start()
    published = Published()
    flow = _flow(journal, published, Topics("redeliver."))
    d = delivery(1, endpoint=recipient.url)
    try:
        # the killed worker's first attempt failed and held the pair; its retry record never left
        journal.record_attempt(d, 1, "error", 503, "unavailable")
        journal.hold(d)
        await flow.fresh(d)  # the next worker reads the uncommitted input again
        assert [key for key, _, _ in recipient.seen] == [d.idempotency_key]
        assert journal.outcome_status(d.delivery_id) == "delivered"
        assert [a["attempt"] for a in journal.attempts(d.delivery_id)] == [1, 2]
        assert journal.holder(d.recipient_id, d.patient_key) is None, "the pair is released for what follows"
    finally:
        await recipient.stop()


@pytest.mark.parametrize("crashed_before", ["the task row", "the task event"])
async def test_a_finished_task_delivery_read_again_after_a_crash_tracks_its_task_and_announces_it(
    journal: Journal, crashed_before: str
) -> None:
    """The worker journaled the delivered outcome and was killed before its batch was durable: the task row
    (or only its "created" event) never made it. The replay must not skip them as "already done"."""
    from tests.delivery.test_tasks import task_delivery

    recipient = HttpRecipient()
    await recipient.start()
    published = Published()
    topics = Topics("redeliver.")
    flow = _flow(journal, published, topics)
    d = task_delivery(recipient.url, "task-replayed-1", "2026-03-08T10:00:00Z")
    try:
        from carehub.streams.delivery_policy import outcome
        from carehub.streams.task_alerts import task_from_delivery

        journal.record_delivered(d, 1, "ok", 200, "", outcome(d, "delivered", 1, "", 200))
        if crashed_before == "the task event":
            task = task_from_delivery(d)
            assert task is not None and journal.tasks.put(task, d.recipient_id, "hub", d.patient_key)
        await flow.fresh(d)  # the next worker reads the uncommitted input again
        assert recipient.seen == [], "the recipient has it already: not sent again"
        assert journal.tasks.get("task-replayed-1") is not None, "the Task is tracked"
        assert published.topics.count(topics.task_events) == 1, "its created event is out"
        assert published.topics.count(topics.delivery_outcomes) == 1
    finally:
        await recipient.stop()


async def test_deliveries_in_hand_at_once_read_the_hand_paused_recipients_with_one_query(journal: Journal) -> None:
    """Every attempt asks whether its recipient is paused by hand (the console); the attempts of a batch ask
    together when the worker's view is stale, and share one journal read instead of a query each."""
    recipient = HttpRecipient()
    await recipient.start()
    published = Published()
    flow = _flow(journal, published, Topics("pauses."))
    reads = 0
    paused = journal.pauses.paused

    def counted() -> dict[str, tuple[str, str]]:
        nonlocal reads
        reads += 1
        return paused()

    journal.pauses.paused = counted  # type: ignore[method-assign]
    journal.pauses.pause("cbo-food-bank", "console:admin")
    live = [delivery(n, patient=f"RGH|MRN{n}", endpoint=recipient.url) for n in range(12)]
    held = [delivery(n, recipient="cbo-food-bank", patient=f"RGH|MRN{n}", endpoint=recipient.url) for n in range(4)]
    try:
        await asyncio.gather(*(flow.fresh(d) for d in [*live, *held]))
        assert reads == 1, "one read of the paused recipients for the attempts in hand at once"
        assert sorted(key for key, _, _ in recipient.seen) == sorted(d.idempotency_key for d in live)
        assert all(journal.outcome_status(d.delivery_id) == "delivered" for d in live)
        assert all(journal.holder(d.recipient_id, d.patient_key) == d.delivery_id for d in held), "they wait"
        journal.pauses.resume("cbo-food-bank")
        flow._paused = (flow._paused[0] - PAUSE_READ_S, flow._paused[1])  # a second later
        after = delivery(99, recipient="cbo-food-bank", patient="RGH|OTHER", endpoint=recipient.url)
        await flow.fresh(after)
        assert reads == 2 and journal.outcome_status(after.delivery_id) == "delivered"
    finally:
        await recipient.stop()


async def test_a_delivered_task_is_journaled_with_its_outcome_in_one_round_trip_and_one_transaction(
    journal: Journal,
) -> None:
    """After the recipient's answer a delivered Task costs one journal call (its attempt, outcome and task
    row together), not one for the outcome and another for the Task; and the two are never half written:
    a task row that cannot be written leaves no "delivered" outcome, so the record is attempted again."""
    from tests.delivery.test_tasks import task_delivery

    recipient = HttpRecipient()
    await recipient.start()
    published = Published()
    topics = Topics("one-trip.")
    flow = _flow(journal, published, topics)
    after_post: list[str] = []
    run = journal.db.run

    async def counted(fn: Any, *args: Any, **kwargs: Any) -> Any:
        if recipient.seen:
            after_post.append(getattr(fn, "__name__", repr(fn)))
        return await run(fn, *args, **kwargs)

    journal.db.run = counted  # type: ignore[method-assign]
    try:
        d = task_delivery(recipient.url, "task-one-trip-1", "2026-03-08T10:00:00Z")
        await flow.fresh(d)
        assert len(after_post) == 1, f"one journal round trip after the POST, not {after_post}"
        assert journal.outcome_status(d.delivery_id) == "delivered"
        assert journal.tasks.get("task-one-trip-1") is not None
        assert published.topics.count(topics.task_events) == 1

        put = journal.tasks.put

        def broken(*args: Any, **kwargs: Any) -> bool:
            raise RuntimeError("task table unwritable")

        journal.tasks.put = broken  # type: ignore[method-assign]
        second = task_delivery(recipient.url, "task-one-trip-2", "2026-03-09T10:00:00Z")
        with pytest.raises(RuntimeError):
            await flow.fresh(second)  # the stage takes the batch again
        assert journal.outcome_status(second.delivery_id) is None, "no outcome without its Task"
        journal.tasks.put = put  # type: ignore[method-assign]
        await flow.fresh(second)
        assert journal.outcome_status(second.delivery_id) == "delivered"
        assert journal.tasks.get("task-one-trip-2") is not None
        keys = [key for key, _, _ in recipient.seen]
        assert keys.count(second.idempotency_key) == 2, "sent again under the same idempotency key"
    finally:
        await recipient.stop()
