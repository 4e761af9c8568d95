"""One stream stage as a plain aiokafka consumer group: take a batch, handle it, make its outputs durable, commit.

Every stream of a worker runs here (streams.app): normalize, route, deliver,
the retry tiers, audit, careplan and FHIR inbound. They ran as Faust agents
before (docs/benchmarks.md: 14-16x fewer CPU-seconds per record here;
docs/architecture.md: Faust acknowledged inputs whose outputs were not
durable). For each batch:

1. the handler runs over the batch's records with an outbox in its context
   (streams.outbox): every output it sends is kept;
2. ``outbox.durable()``: every output is acknowledged by the broker (acks=all);
3. only then the batch's offsets are committed.

A worker killed anywhere in 1-3 has not committed, and the next owner of the
partition takes the batch again (outputs repeat with their idempotency keys).
A handler that raises (a bug: handlers dead-letter what they cannot handle)
commits nothing; the stage seeks back to the batch and takes it again after a
pause. Several workers with the same group id share the partitions; a
revocation waits for the batch in hand to finish and commit, and an
assignment runs ``on_assigned`` (state recovery) before any record of the new
partitions is handled (they stay paused until it returned).

A stage with ``in_flight`` above 1 (deliver) takes its next batch while earlier ones are still in hand:
up to that many batches run at once, each with its own outbox, and they are committed strictly in the
order they were taken, each only once it and every batch before it is handled and durable. The handler
keeps its own order across batches (streams.agents.deliver chains each (recipient, patient) pair). A
batch that raised commits nothing, nor does any taken after it: every partition goes back to the first
record not committed, and the batches are taken again. A batch is as slow as its slowest sequence (four
deliveries to one PCP for one discharge, one after another), so with one batch at a time everything that
arrived meanwhile waited for it (docs/benchmarks.md).

A stage with ``due`` (the retry tiers) takes a record only once it is due:
the records of a partition before the first one not yet due are handled, the
partition is sought back to that record and paused until it is due (at most
``max_wait_s`` after the stage first saw it), so the consumer keeps polling
(well within its max poll interval) and the other partitions go on.

A partition the stage's group has no committed offset for starts where the
group named ``upgrade_from`` (the Faust app's group of the workers before the
stages) committed, if it did; else at the earliest record. So an upgraded
worker neither re-sends what the Faust agents had handled nor skips what they
had not. That start is committed at once, so it is not looked up again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError, RebalanceInProgressError
from aiokafka.structs import ConsumerRecord

from carehub.consumer_lag import committed_offsets
from carehub.core.errors import BrokerError
from carehub.core.kafka_security import PLAINTEXT, KafkaSecurity
from carehub.core.lograte import LogThrottle
from carehub.core.settings import KafkaSettings
from carehub.streams import outbox
from carehub.streams.outbox import Outbox, Send

log = logging.getLogger(__name__)
_errors = LogThrottle(10.0)
Handler = Callable[[Sequence[ConsumerRecord]], Awaitable[None]]
Partitions = Callable[[set[int]], Awaitable[None]]
#: A record -> the wall-clock time (epoch seconds) it may be handled at.
Due = Callable[[ConsumerRecord], float]
#: Pause before a batch whose handler raised is taken again (seconds).
HANDLER_RETRY_S = 1.0
#: How long a fetch waits while batches are in hand (``in_flight``): a finished one is committed this soon.
SETTLE_POLL_MS = 20


@dataclass(frozen=True, slots=True)
class _InHand:
    """A batch handled while others are (``in_flight``): where it starts and ends on each partition."""

    starts: dict[TopicPartition, int]
    ends: dict[TopicPartition, int]
    count: int

    @classmethod
    def of(cls, batches: dict[TopicPartition, list[ConsumerRecord]]) -> _InHand:
        return cls(
            {tp: records[0].offset for tp, records in batches.items()},
            {tp: records[-1].offset + 1 for tp, records in batches.items()},
            sum(len(records) for records in batches.values()),
        )


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, stage: Stage) -> None:
        self._stage = stage

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self._stage.batch_lock:  # the batch in hand finishes (and commits) first
            await self._stage.settle_all()
            if self._stage.on_revoked is not None:
                await self._stage.on_revoked({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        # aiokafka starts fetching the new partitions while this callback runs: they are paused (before
        # the first await) until their start offsets are set and their state is recovered.
        consumer = self._stage.consumer
        consumer.pause(*assigned)
        try:
            self._stage.assigned = {tp.partition for tp in assigned}
            self._stage.check_copartitioned(assigned)
            await self._stage.take_over_offsets(assigned)
            if self._stage.on_assigned is not None:
                await self._stage.on_assigned({tp.partition for tp in assigned})
        finally:
            with contextlib.suppress(IllegalStateError):  # revoked again meanwhile
                consumer.resume(*assigned)
        log.info("stage %s: partitions %s", self._stage.name, sorted(tp.partition for tp in assigned))


class Stage:
    def __init__(
        self,
        name: str,
        topic: str | Sequence[str],
        group: str,
        bootstrap: str,
        kafka: KafkaSettings,
        handler: Handler,
        send: Send,
        *,
        batch: int = 256,
        security: KafkaSecurity = PLAINTEXT,
        on_assigned: Partitions | None = None,
        on_revoked: Partitions | None = None,
        due: Due | None = None,
        max_wait_s: float = 0.0,
        upgrade_from: str | None = None,
        take_over: Mapping[str, str] | None = None,
        stall_report_s: float | None = None,
        fetch_wait_ms: int | None = None,
        in_flight: int = 1,
    ) -> None:
        """``fetch_wait_ms``: how long a fetch waits for records (default ``kafka.fetch_max_wait_ms``); a stage
        off the latency path waits longer, so an idle one polls the broker less often. ``in_flight``: batches
        in hand at once (above 1 only for a handler that keeps its own order across batches). Several topics:
        co-partitioned (the range assignor gives a member the same partition numbers of each), so a stage's
        state for partition N serves the records of partition N of every topic. ``take_over``: topic -> the
        group whose offsets a partition of that topic starts from when this group has none (before
        ``upgrade_from``): the stage that used to read it."""
        if in_flight < 1 or (in_flight > 1 and due is not None):
            raise ValueError("in_flight is at least 1, and 1 for a stage with due")
        self.name = name
        self.topics = (topic,) if isinstance(topic, str) else tuple(topic)
        self._handler = handler
        self._send = send
        self._batch = batch
        self.on_assigned = on_assigned
        self.on_revoked = on_revoked
        self.batch_lock = asyncio.Lock()
        self._bootstrap = bootstrap
        self._security = security
        self._due = due
        self._max_wait_s = max_wait_s
        self._upgrade_from = upgrade_from
        self._take_over = dict(take_over or {})
        self._stall_report_s = stall_report_s if stall_report_s is not None else kafka.stall_report_s
        #: partition -> (offset, when it may be taken) of the record it is paused on (stages with ``due``)
        self._waiting: dict[TopicPartition, tuple[int, float]] = {}
        #: the partitions of ``topic`` this member holds now
        self.assigned: set[int] = set()
        session_ms = int(kafka.session_timeout_s * 1000)
        self._group = group
        self.consumer_options: dict[str, Any] = dict(
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=kafka.fetch_max_wait_ms if fetch_wait_ms is None else fetch_wait_ms,
            max_poll_records=batch,
            # one fetch per partition holds at most this much (records of up to max_record_bytes still pass)
            max_partition_fetch_bytes=1_048_576,
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=min(1000, session_ms // 3),
            rebalance_timeout_ms=session_ms,
            **({"partition_assignment_strategy": (RangePartitionAssignor,)} if len(self.topics) > 1 else {}),
            **security.aiokafka(),
        )
        self.consumer: Any = None  # created on start (inside the running loop)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._in_flight = in_flight
        #: the batches in hand (in_flight > 1), oldest first: each one's offsets and its handling
        self._pipeline: collections.deque[tuple[_InHand, asyncio.Task[bool]]] = collections.deque()
        self.batches = 0
        self.records = 0

    def check_copartitioned(self, assigned: set[TopicPartition]) -> None:
        """Several topics hold one state per partition number only if each has the same partitions here."""
        if len(self.topics) < 2:
            return
        numbers = {topic: frozenset(tp.partition for tp in assigned if tp.topic == topic) for topic in self.topics}
        if len(set(numbers.values())) > 1:
            log.error("stage %s: topics %s have different partition counts; give them the same number of "
                      "partitions (they are read together, by patient key)",
                      self.name, ", ".join(self.topics))  # fmt: skip

    def highwater(self, record: ConsumerRecord) -> int | None:
        if self.consumer is None:
            return None
        try:
            return self.consumer.highwater(TopicPartition(record.topic, record.partition))  # type: ignore[no-any-return]
        except (IllegalStateError, KeyError, AssertionError):
            return None

    async def start(self) -> None:
        self.consumer = AIOKafkaConsumer(**self.consumer_options)
        self.consumer.subscribe(list(self.topics), listener=_Listener(self))
        await self.consumer.start()
        self._task = asyncio.create_task(self._run(), name=f"stage-{self.name}")

    async def _run(self) -> None:
        while not self._stopping:
            try:
                wait_ms = self._resume_due() if not self._pipeline else SETTLE_POLL_MS  # commit what finished soon
                batches = await self.consumer.getmany(timeout_ms=wait_ms, max_records=self._batch)
            except asyncio.CancelledError:
                raise
            except KafkaError as exc:  # the broker gone: the consumer reconnects by itself
                self._log_error(f"fetch failed ({type(exc).__name__})")
                await asyncio.sleep(1.0)
                continue
            if batches:
                async with self.batch_lock:
                    taken = {tp: records for tp, records in batches.items() if records}
                    if self._in_flight > 1:
                        await self._launch(taken)
                    else:
                        await self._take(self._only_due(taken) if self._due is not None else taken)
            elif self._pipeline:
                async with self.batch_lock:
                    await self._settle_done()

    def _resume_due(self) -> int:
        """Resume the paused partitions whose record is due; how long the next fetch may wait (ms)."""
        if not self._waiting:
            return 500
        now = time.time()
        paused = self.consumer.paused()
        for tp, (_, at) in list(self._waiting.items()):
            if at <= now and tp in paused:
                with contextlib.suppress(IllegalStateError):  # revoked meanwhile
                    self.consumer.resume(tp)
        later = [at - now for _, at in self._waiting.values() if at > now]
        return max(10, min(500, int(min(later) * 1000))) if later else 500

    def _ready_at(self, tp: TopicPartition, record: ConsumerRecord, now: float) -> float:
        waiting = self._waiting.get(tp)
        if waiting is not None and waiting[0] == record.offset:
            return waiting[1]  # bounded from when the stage first saw it, not from each fetch
        assert self._due is not None
        try:
            due = self._due(record)
        except Exception:  # unreadable: the handler dead-letters it
            return now
        return min(due, now + self._max_wait_s)

    def _only_due(
        self, batches: dict[TopicPartition, list[ConsumerRecord]]
    ) -> dict[TopicPartition, list[ConsumerRecord]]:
        """Per partition, the records before the first one not yet due; that partition waits for it, paused."""
        now = time.time()
        taken: dict[TopicPartition, list[ConsumerRecord]] = {}
        for tp, records in batches.items():
            due = 0
            for record in records:
                at = self._ready_at(tp, record, now)
                if at > now:
                    self._waiting[tp] = (record.offset, at)
                    with contextlib.suppress(IllegalStateError):  # revoked meanwhile: the next owner takes it
                        self.consumer.seek(tp, record.offset)
                        self.consumer.pause(tp)
                    break
                due += 1
            else:
                self._waiting.pop(tp, None)
            if due:
                taken[tp] = records[:due]
        return taken

    async def take_over_offsets(self, assigned: set[TopicPartition]) -> None:
        """Partitions this group never committed start where the ``take_over`` group of their topic stopped,
        else where the ``upgrade_from`` group did (if either did)."""
        for tp in list(self._waiting):
            if tp not in assigned:
                del self._waiting[tp]
        if (self._upgrade_from is None and not self._take_over) or not assigned:
            return
        start: dict[TopicPartition, int] = {}
        try:
            missing = [tp for tp in sorted(assigned) if await self.consumer.committed(tp) is None]
            groups = [self._take_over[tp.topic] for tp in missing if tp.topic in self._take_over]
            for group in [*dict.fromkeys(groups), self._upgrade_from]:  # the stage before, then the Faust app
                if group is None:
                    continue
                last = group == self._upgrade_from
                wanted = [tp for tp in missing if tp not in start and (last or self._take_over.get(tp.topic) == group)]
                if not wanted:
                    continue
                found = await committed_offsets(self._bootstrap, group, wanted, security=self._security)
                start.update(found)
                if found:
                    log.info("stage %s: %d partitions start where group %s stopped", self.name, len(found), group)
        except (KafkaError, BrokerError) as exc:  # broker trouble: fall back on earliest (records repeat, none lost)
            self._log_error(f"cannot read the offsets to start from ({type(exc).__name__})")
            return
        if not start:
            return
        for tp, offset in start.items():
            self.consumer.seek(tp, offset)
        await self._commit(start)

    async def _take(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        records = [record for tp_records in batches.values() for record in tp_records]
        if not records:
            return
        watch = asyncio.get_running_loop().call_later(self._stall_report_s, self._report_stall, len(records))
        try:
            if not await self._handled(batches, records):
                return
        finally:
            watch.cancel()
        await self._commit({tp: tp_records[-1].offset + 1 for tp, tp_records in batches.items()})  # ... then commit
        self.batches += 1
        self.records += len(records)

    async def _launch(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        """Start handling a batch while earlier ones may still be in hand (at most ``in_flight``)."""
        records = [record for tp_records in batches.values() for record in tp_records]
        if not records:
            return
        await self._settle_done()
        while len(self._pipeline) >= self._in_flight:
            await self._settle_oldest()
        task = asyncio.create_task(self._handled_alone(batches, records), name=f"stage-{self.name}-batch")
        self._pipeline.append((_InHand.of(batches), task))

    async def _handled_alone(
        self, batches: dict[TopicPartition, list[ConsumerRecord]], records: list[ConsumerRecord]
    ) -> bool:
        """``_handled`` for a batch among others in hand (``_settle_oldest`` sends it back if it raised)."""
        watch = asyncio.get_running_loop().call_later(self._stall_report_s, self._report_stall, len(records))
        try:
            return await self._handled(batches, records, seek_back=False)
        finally:
            watch.cancel()

    async def _settle_done(self) -> None:
        """Commit the oldest batches in hand that are finished (in order; none past one still running)."""
        while self._pipeline and self._pipeline[0][1].done():
            await self._settle_oldest()

    async def _settle_oldest(self) -> None:
        """Wait for the oldest batch in hand and commit it; if it raised, nothing in hand is committed and
        every partition goes back to the first record not committed (those batches are taken again)."""
        oldest, task = self._pipeline[0]
        if await task:
            self._pipeline.popleft()
            await self._commit(oldest.ends)
            self.batches += 1
            self.records += oldest.count
            return
        held = list(self._pipeline)
        self._pipeline.clear()
        await asyncio.gather(*(t for _, t in held), return_exceptions=True)  # none of them is committed
        back: dict[TopicPartition, int] = {}
        for batch, _ in held:
            for tp, offset in batch.starts.items():
                back[tp] = min(offset, back.get(tp, offset))
        for tp, offset in back.items():
            with contextlib.suppress(IllegalStateError):  # revoked meanwhile: the next owner takes it
                self.consumer.seek(tp, offset)
        await asyncio.sleep(HANDLER_RETRY_S)

    async def settle_all(self) -> None:
        """Every batch in hand finished and committed (a revocation, a stop)."""
        while self._pipeline:
            await self._settle_oldest()

    async def _handled(
        self, batches: dict[TopicPartition, list[ConsumerRecord]], records: list[ConsumerRecord],
        *, seek_back: bool = True,
    ) -> bool:  # fmt: skip
        """Run the handler over the batch and make its outputs durable; False when it raised (sought back,
        unless ``seek_back`` is False: a batch among others in hand, which ``_settle_oldest`` sends back)."""
        box = Outbox(self._send)
        token = outbox.CURRENT.set(box)
        try:
            await self._handler(records)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # nothing committed: the batch is taken again
            log.exception("stage %s: the handler failed on a batch (%s); taking it again", self.name,
                          type(exc).__name__)  # fmt: skip
            if not seek_back:
                return False
            for tp, tp_records in batches.items():
                with contextlib.suppress(IllegalStateError):  # revoked meanwhile: the next owner takes it
                    self.consumer.seek(tp, tp_records[0].offset)
            await asyncio.sleep(HANDLER_RETRY_S)
            return False
        finally:
            outbox.CURRENT.reset(token)
        await box.durable()  # every output acknowledged (acks=all) ...
        return True

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, RebalanceInProgressError, IllegalStateError) as exc:
            # the group moved on: the partitions' next owner takes these records again (same idempotency keys)
            log.info("stage %s: commit not accepted (%s); the records are taken again", self.name, type(exc).__name__)
        except KafkaError as exc:  # broker trouble: the next batch's commit covers these offsets too
            self._log_error(f"commit failed ({type(exc).__name__})")

    def _report_stall(self, records: int) -> None:
        log.warning("stage %s: a batch of %d records is still in hand after %g s (handler or broker slow)",
                    self.name, records, self._stall_report_s)  # fmt: skip

    def _log_error(self, what: str) -> None:
        held = _errors.allow(f"{self.name}:{what}")
        if held is not None:
            log.error("stage %s: %s%s", self.name, what, f" ({held} more not logged)" if held else "")

    async def stop(self, grace_s: float = 5.0) -> None:
        """Finish the batch in hand (up to ``grace_s``), leave the group; an unfinished batch is taken again."""
        self._stopping = True
        if self._task is not None:
            deadline = time.monotonic() + grace_s
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.batch_lock.acquire(), max(0.0, deadline - time.monotonic()))
                try:
                    await asyncio.wait_for(self.settle_all(), max(0.0, deadline - time.monotonic()))
                finally:
                    self.batch_lock.release()
            for _, task in self._pipeline:  # past the grace: not committed, the next owner takes them again
                task.cancel()
            self._pipeline.clear()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.consumer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.consumer.stop(), max(1.0, grace_s))
