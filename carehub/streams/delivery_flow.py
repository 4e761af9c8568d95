"""The delivery flow shared by the deliver and retry agents.

``fresh`` handles a delivery from the deliveries topic, ``retry`` one whose
time has come on a retry topic. Each makes one attempt, journals it, and
follows ``streams.delivery_policy.next_step``: delivered, on to a retry topic (the
delivery then *holds* its (recipient, patient) pair in the journal and later
deliveries for the pair queue behind it), or to the dead-letter topic. When
a holder is resolved its queue drains in order. All state that must survive
a worker is in Kafka (retry topics, offsets) or the journal; the in-process
locks only keep this worker's own coroutines from interleaving on a pair.

The endpoint (and channel) of every attempt is the recipient's entry in the
directory in force at send time, not the one the delivery was planned with:
a corrected URL (hot-reloaded recipients.yaml) applies to queued, retrying and
replayed deliveries. A recipient no longer in the directory (or a delivery
that is not for one, like a subscription's) keeps the planned endpoint.
Credentials are looked up by recipient id at send time by the connectors.

Every attempt first passes the send-time consent gate
(streams.consent.egress.SendGate): a delivery whose Part 2 consent was revoked
or expired since it was planned is suppressed (journaled, announced, audited),
never sent.

A correction (``Delivery.corrects``: a cancel, key-field correction or merge)
is sent only when the journal shows the recipient received the original; a
Task cancellation first cancels the Task in the journal's task table and
carries the Task as the journal holds it. Otherwise it is finished as
``not-needed`` and nothing leaves. Either way the same gate decides first.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Protocol
from urllib.parse import urlsplit

from carehub.connectors.base import Destination
from carehub.core.clock import now_iso
from carehub.core.metrics import Metrics
from carehub.core.payload import Payload
from carehub.core.records import DeadLetter, Delivery, DeliveryOutcome, JSONObject, Record, TaskEvent
from carehub.core.topics import Topics
from carehub.journal import Journal, open_journal
from carehub.streams.consent.decide import ConsentDecision
from carehub.streams.consent.deps import following_merges
from carehub.streams.consent.egress import SendGate
from carehub.streams.context import AgentContext
from carehub.streams.delivery_policy import (
    CIRCUIT_OPEN,
    Attempt,
    CircuitBreaker,
    NextStep,
    RetryPolicy,
    attempt_once,
    next_step,
    outcome,
)
from carehub.streams.routing.model import Recipient
from carehub.streams.task_alerts import task_from_delivery, with_task

log = logging.getLogger(__name__)
#: How stale a worker's view of the recipients paused by hand may be (seconds).
PAUSE_READ_S = 1.0


class Sender(Protocol):
    """What the flow needs to publish: ``send(topic, key, record)``."""

    async def send(self, topic_name: str, key: str, record: Record) -> None: ...


class DeliveryFlow:
    def __init__(
        self,
        sender: Sender,
        topics: Topics,
        journal: Journal,
        destinations: Mapping[str, Destination],
        policy: RetryPolicy,
        metrics: Metrics,
        *,
        gate: SendGate,
        timeout_s: float = 10.0,
        breaker: CircuitBreaker | None = None,
        rng: random.Random | None = None,
        directory: Callable[[str], Recipient | None] | None = None,
    ) -> None:
        """``directory``: the recipient of an id in the directory in force now (send-time endpoint)."""
        self.sender = sender
        self.topics = topics
        self.journal = journal
        self.destinations = destinations
        self.policy = policy
        self.metrics = metrics
        self.gate = gate
        self.timeout_s = timeout_s
        self.breaker = breaker or CircuitBreaker(
            policy.breaker_failures, policy.breaker_reset_s, on_change=self._circuit_changed
        )
        self.rng = rng or random.Random()
        self.directory = directory or (lambda _: None)
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        #: Recipients paused by hand (journal.pauses), read at most once a second: (read at, ids).
        self._paused: tuple[float, frozenset[str]] = (-PAUSE_READ_S, frozenset())
        #: The read in progress, which every attempt that finds the view stale waits for (one query, not one each).
        self._pause_read: asyncio.Future[frozenset[str]] | None = None

    def _lock(self, d: Delivery) -> asyncio.Lock:
        pair = (d.recipient_id, d.patient_key)
        lock = self._locks.get(pair)
        if lock is None:
            if len(self._locks) > 10_000:
                self._locks = {k: v for k, v in self._locks.items() if v.locked()}
            lock = self._locks[pair] = asyncio.Lock()
        return lock

    async def fresh(self, d: Delivery) -> None:
        async with self._lock(d):
            admitted = await self.journal.db.run(self.journal.admit, d)
            if admitted == "done":
                # Journaled as finished before a crash: the recipient has it already. Its outcome record, and
                # for a Task its task row and "created" event, may not have been made durable (the crash came
                # after the journal row, before the batch was): all of it again, the event under the same id.
                self.metrics.inc("delivery_redelivered_skipped", recipient=d.recipient_id)
                finished = await self.journal.db.run(self.journal.final_outcome, d.delivery_id)
                if finished is not None:
                    await self.sender.send(self.topics.delivery_outcomes, d.patient_key, finished)
                    if finished.status == "delivered":
                        await self._track_task_again(d)
                return
            if admitted == "own":
                # A redelivery after a crash between holding the pair and publishing the retry record: that
                # record may never have reached its topic, so attempt again now (same idempotency key).
                done = len(await self.journal.db.run(self.journal.attempts, d.delivery_id))
                if await self._try(replace(d, attempt=done)):
                    await self._drain(d)
                return
            if admitted == "queued":
                self.metrics.inc("delivery_queued", recipient=d.recipient_id)
                log.info("delivery %s queued behind a retry for recipient=%s", d.delivery_id, d.recipient_id)
                return
            await self._try(d)

    async def retry(self, d: Delivery) -> None:
        async with self._lock(d):
            j = self.journal
            if await self.journal.db.run(j.is_finished, d.delivery_id):
                if await self.journal.db.run(j.holder, d.recipient_id, d.patient_key) == d.delivery_id:
                    await self._drain(d)
                return
            if await self._try(d, held=True):
                await self._drain(d)

    async def _drain(self, holder: Delivery) -> None:
        """``holder`` is resolved: send what queued behind it, in order, until one must wait."""
        j = self.journal
        while True:
            nxt = await self.journal.db.run(j.next_queued, holder.recipient_id, holder.patient_key)
            if nxt is None:
                if await self.journal.db.run(
                    j.release_if_idle, holder.recipient_id, holder.patient_key, holder.delivery_id
                ):
                    return
                continue
            finished = await self.journal.db.run(j.is_finished, nxt.delivery_id)
            resolved = True if finished else await self._try(nxt)
            await self.journal.db.run(j.dequeue, nxt.delivery_id)
            if not resolved:
                return  # nxt holds the pair now and waits on a retry topic

    async def _is_paused(self, recipient_id: str) -> bool:
        read_at, ids = self._paused
        if time.monotonic() - read_at >= PAUSE_READ_S:
            ids = await self._read_pauses()
        return recipient_id in ids

    async def _read_pauses(self) -> frozenset[str]:
        """The paused recipients now: one journal query shared by every attempt that asks while it runs."""
        reading = self._pause_read
        if reading is None:
            reading = self._pause_read = asyncio.ensure_future(self._query_pauses())
        return await asyncio.shield(reading)

    async def _query_pauses(self) -> frozenset[str]:
        try:
            ids = frozenset(await self.journal.db.run(self.journal.pauses.paused))
            self._paused = (time.monotonic(), ids)
            return ids
        finally:
            self._pause_read = None

    async def _attempt(self, d: Delivery) -> Attempt:
        if await self._is_paused(d.recipient_id):  # as behind an open circuit: not contacted, the try not counted
            return Attempt(ok=False, detail="recipient paused by hand (console)", skipped=True)
        destination = self.destinations.get(d.channel)
        if destination is None:
            return Attempt(ok=False, permanent=True, detail=f"no connector for channel {d.channel}")
        started = time.monotonic()
        attempt = await attempt_once(d, destination, self.breaker, self.timeout_s)
        if not attempt.skipped:
            self.metrics.observe("delivery_seconds", time.monotonic() - started, recipient=d.recipient_id,
                                 result=attempt.result)  # fmt: skip
        return attempt

    async def _correction(self, d: Delivery) -> Delivery | str:
        """The correction to send (a Task cancellation carries the journal's Task), or why none is needed."""
        j = self.journal
        if await j.db.run(j.outcome_status, d.corrects) != "delivered":
            return "the recipient never received what this corrects"
        if d.action != "task":
            return d
        entries: list[JSONObject] = d.payload.get("entry", [])
        entry = next((e for e in entries if e.get("resource", {}).get("resourceType") == "Task"), {})
        reason = str(entry.get("resource", {}).get("statusReason", {}).get("text", "corrected"))
        change = await j.db.run(j.tasks.cancel, d.corrects, reason, f"hub:correction:{d.event_id}")
        if change is None:
            return "the Task was already finished"
        if change.from_status != change.to_status:
            self.metrics.inc("task_cancelled", recipient=d.recipient_id)
            event = TaskEvent(
                task_id=change.task_id,
                kind="status-changed",
                from_status=change.from_status,
                to_status=change.to_status,
                at=change.at,
                source="hub",
                owner=str(change.resource.get("owner", {}).get("reference", "")),
                requester=str(change.resource.get("requester", {}).get("reference", "")),
            )
            await self.sender.send(self.topics.task_events, d.patient_key, event)
        return replace(d, payload=Payload(with_task(d.payload.value, change.resource)))

    async def _try(self, d: Delivery, *, held: bool = False) -> bool:
        """One attempt and what follows; True when ``d`` is resolved (delivered, dead-lettered or suppressed).

        ``held``: ``d`` comes from a retry topic and already holds its pair. While its endpoint's circuit
        is open it goes straight back to the retry topic: no consent check, no audit, no journal row
        (one row said it was held when it first was), so a long outage costs one record per held
        delivery per reset period and nothing that grows.
        """
        d = self._addressed(d)
        if held and self.breaker.holds(d.endpoint):
            await self._hold(d, next_step(CIRCUIT_OPEN, d.attempt, self.policy, self.rng))
            return False
        if d.corrects:
            corrected = await self._correction(d)
            if isinstance(corrected, str):
                await self._finish(d, "not-needed", d.attempt, corrected, None)
                return True
            d = corrected
        permit = await self.gate.check(d, d.attempt + 1)
        if not permit.discloses:
            await self._suppress(d, permit)
            return True
        attempt = await self._attempt(d)
        number = d.attempt + (0 if attempt.skipped else 1)
        j = self.journal
        step = next_step(attempt, number, self.policy, self.rng)
        task: JSONObject | None = None
        made = False
        if step.action == "delivered":
            result = outcome(d, "delivered", number, "", attempt.status)
            task = task_from_delivery(d)  # the Task is in the journal before anyone is told it was delivered
            made = await j.db.run(_journal_delivered, j, d, number, attempt, result, task)
        else:
            await j.db.run(j.record_attempt, d, number, attempt.result, attempt.status, attempt.detail)
        log.log(
            logging.DEBUG if attempt.skipped else logging.INFO,  # held by an open circuit: logged once, by it
            "delivery %s recipient=%s attempt=%d result=%s next=%s",
            d.delivery_id,
            d.recipient_id,
            number,
            attempt.result,
            step.action,
        )
        if step.action == "delivered":
            if task is not None and made:
                await self._task_created(d, task)
            await self._announce(d, result)
            return True
        if step.action == "retry":
            await self.journal.db.run(j.hold, d)
            await self._hold(d, step)
            return False
        await self._dead_letter(d, step, attempt)
        return True

    def _addressed(self, d: Delivery) -> Delivery:
        """``d`` sent where the directory says now (a fixed URL applies to deliveries already planned)."""
        recipient = self.directory(d.recipient_id)
        if recipient is None or (recipient.endpoint, recipient.channel) == (d.endpoint, d.channel):
            return d
        log.info("delivery %s recipient=%s: endpoint from the current directory", d.delivery_id, d.recipient_id)
        return replace(d, endpoint=recipient.endpoint, channel=recipient.channel)

    async def _hold(self, d: Delivery, step: NextStep) -> None:
        """``d`` (holding its pair in the journal) goes to the retry topic ``step`` names."""
        again = replace(d, attempt=step.attempts, due_at=time.time() + step.delay_s)
        await self.sender.send(self.topics.delivery_retry(step.tier), d.patient_key, again)
        self.metrics.inc("delivery_retried", recipient=d.recipient_id)

    async def _suppress(self, d: Delivery, decision: ConsentDecision) -> None:
        """The send-time gate refused ``d``: it is finished, and nothing left."""
        log.warning("delivery %s recipient=%s suppressed at send time: %s", d.delivery_id, d.recipient_id,
                    decision.rule)  # fmt: skip
        await self._finish(d, "suppressed", d.attempt, decision.reason, None)

    def _circuit_changed(self, endpoint: str, state: str) -> None:
        level = logging.WARNING if state == "open" else logging.INFO
        log.log(level, "circuit %s: endpoint=%s", state, _where(endpoint))
        self.metrics.inc("circuit_changes", state=state)

    async def _finish(self, d: Delivery, status: str, attempts: int, reason: str, code: int | None) -> None:
        result = outcome(d, status, attempts, reason, code)
        await self.journal.db.run(self.journal.record_outcome, result)
        await self._announce(d, result)

    async def _announce(self, d: Delivery, result: DeliveryOutcome) -> None:
        """Count the outcome and put it on delivery.outcomes (already journaled)."""
        counters = {"delivered": "delivered", "suppressed": "delivery_suppressed", "not-needed": "delivery_not_needed"}
        counter = counters.get(result.status, "delivery_failed")
        self.metrics.inc(counter, recipient=d.recipient_id)
        await self.sender.send(self.topics.delivery_outcomes, d.patient_key, result)

    async def _dead_letter(self, d: Delivery, step: NextStep, attempt: Attempt) -> None:
        code = "delivery-rejected" if attempt.permanent else "delivery-exhausted"
        parked = replace(d, attempt=0, due_at=0.0)  # a replay is a fresh start: attempt 1, the same idempotency key
        letter = DeadLetter(
            stage="deliver",
            error_code=code,
            reason=step.reason,
            source_topic=self.topics.deliveries,
            source_partition=-1,
            source_offset=-1,
            failed_at=now_iso(),
            record=parked.to_dict(),
        )
        await self.sender.send(self.topics.delivery_dead_letters, d.patient_key, letter)
        await self.journal.db.run(self.journal.park, parked, code, step.reason)
        self.metrics.inc("delivery_dead_lettered", recipient=d.recipient_id)
        log.warning("delivery %s recipient=%s dead-lettered: %s", d.delivery_id, d.recipient_id, code)
        await self._finish(d, "failed", step.attempts, step.reason, attempt.status)

    async def _track_task_again(self, d: Delivery) -> None:
        """A delivered Task after a crash: its row may have been made and its "created" event lost with the
        batch, so the event goes out again while the Task is as it was created (not once it has moved on: its
        later events were sent by whoever moved it, and a "created" after them would set it back)."""
        task = task_from_delivery(d)
        if task is None:
            return
        j = self.journal
        made = await j.db.run(j.tasks.put, task, d.recipient_id, "hub", d.patient_key)
        if not made:
            stored = await j.db.run(j.tasks.get, str(task["id"]))
            made = stored is not None and stored.get("status") == task.get("status", "requested")
        if made:
            await self._task_created(d, task)

    async def _task_created(self, d: Delivery, task: JSONObject) -> None:
        """The "created" event of a Task the journal holds, out on task.events (keyed by patient, as all)."""
        event = TaskEvent(
            task_id=task["id"],
            kind="created",
            from_status=None,
            to_status=str(task.get("status", "requested")),
            at=now_iso(),
            source="hub",
            owner=str(task.get("owner", {}).get("reference", "")),
            requester=str(task.get("requester", {}).get("reference", "")),
        )
        await self.sender.send(self.topics.task_events, d.patient_key, event)


def _journal_delivered(
    j: Journal, d: Delivery, number: int, attempt: Attempt, result: DeliveryOutcome, task: JSONObject | None
) -> bool:
    """The successful attempt, its outcome and the new Task it carried, in one journal call and transaction
    (one round trip per delivered Task, not two); True when the Task is new to the journal."""
    with j.db.transaction():
        j.record_delivered(d, number, attempt.result, attempt.status, attempt.detail, result)
        return task is not None and j.tasks.put(task, d.recipient_id, "hub", d.patient_key)


def _where(endpoint: str) -> str:
    """An endpoint for the log: scheme, host and port only (no path, query or credentials)."""
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _audit_sink(ctx: AgentContext) -> Callable[[str, JSONObject], Awaitable[None]]:
    async def publish(key: str, audit: JSONObject) -> None:
        await ctx.send_json(ctx.deps.topics.audit_events, key, audit)

    return publish


_FLOWS: weakref.WeakKeyDictionary[AgentContext, DeliveryFlow] = weakref.WeakKeyDictionary()


def flow_for(ctx: AgentContext) -> DeliveryFlow:
    """The one flow of an agent context, shared by the deliver and retry agents."""
    flow = _FLOWS.get(ctx)
    if flow is None:
        deps = ctx.deps
        journal = deps.journal or open_journal("sqlite:///:memory:")
        consent = following_merges(deps.consent, journal.retired_into)  # merged records' consents apply
        gate = SendGate(consent, deps.routing, journal, _audit_sink(ctx), clock=now_iso)
        routing = deps.routing
        flow = DeliveryFlow(ctx, deps.topics, journal, deps.destinations, deps.retry, deps.metrics, gate=gate,
                            timeout_s=deps.delivery_timeout_s,
                            directory=lambda rid: routing.current().recipients.get(rid))  # fmt: skip
        _FLOWS[ctx] = flow
    return flow
