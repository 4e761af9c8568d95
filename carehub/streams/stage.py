"""One stream stage as a plain aiokafka consumer group: take a batch, handle it, make its outputs durable, commit.

The hot path (normalize, route, deliver) runs here rather than in Faust
(docs/benchmarks.md: 14-16x fewer CPU-seconds per record; docs/architecture.md:
Faust acknowledged inputs whose outputs were not durable). For each batch:

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
partitions is handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError, RebalanceInProgressError
from aiokafka.structs import ConsumerRecord

from carehub.core.kafka_security import PLAINTEXT, KafkaSecurity
from carehub.core.lograte import LogThrottle
from carehub.core.settings import KafkaSettings
from carehub.streams import outbox
from carehub.streams.outbox import Outbox, Send

log = logging.getLogger(__name__)
_errors = LogThrottle(10.0)
Handler = Callable[[Sequence[ConsumerRecord]], Awaitable[None]]
Partitions = Callable[[set[int]], Awaitable[None]]
#: Pause before a batch whose handler raised is taken again (seconds).
HANDLER_RETRY_S = 1.0


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, stage: Stage) -> None:
        self._stage = stage

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self._stage.batch_lock:  # the batch in hand finishes (and commits) first
            if self._stage.on_revoked is not None:
                await self._stage.on_revoked({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if self._stage.on_assigned is not None:
            await self._stage.on_assigned({tp.partition for tp in assigned})
        log.info("stage %s: partitions %s", self._stage.name, sorted(tp.partition for tp in assigned))


class Stage:
    def __init__(
        self,
        name: str,
        topic: str,
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
    ) -> None:
        self.name = name
        self.topic = topic
        self._handler = handler
        self._send = send
        self._batch = batch
        self.on_assigned = on_assigned
        self.on_revoked = on_revoked
        self.batch_lock = asyncio.Lock()
        session_ms = int(kafka.session_timeout_s * 1000)
        self._group = group
        self._consumer_options: dict[str, Any] = dict(
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=kafka.fetch_max_wait_ms,
            max_poll_records=batch,
            # one fetch per partition holds at most this much (records of up to max_record_bytes still pass)
            max_partition_fetch_bytes=1_048_576,
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=min(1000, session_ms // 3),
            rebalance_timeout_ms=session_ms,
            **security.aiokafka(),
        )
        self._consumer: Any = None  # created on start (inside the running loop)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.batches = 0
        self.records = 0

    def highwater(self, record: ConsumerRecord) -> int | None:
        if self._consumer is None:
            return None
        try:
            return self._consumer.highwater(TopicPartition(record.topic, record.partition))  # type: ignore[no-any-return]
        except (IllegalStateError, KeyError, AssertionError):
            return None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(**self._consumer_options)
        self._consumer.subscribe([self.topic], listener=_Listener(self))
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name=f"stage-{self.name}")

    async def _run(self) -> None:
        while not self._stopping:
            try:
                batches = await self._consumer.getmany(timeout_ms=500, max_records=self._batch)
            except asyncio.CancelledError:
                raise
            except KafkaError as exc:  # the broker gone: the consumer reconnects by itself
                self._log_error(f"fetch failed ({type(exc).__name__})")
                await asyncio.sleep(1.0)
                continue
            if batches:
                async with self.batch_lock:
                    await self._take({tp: records for tp, records in batches.items() if records})

    async def _take(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        records = [record for tp_records in batches.values() for record in tp_records]
        if not records:
            return
        box = Outbox(self._send)
        token = outbox.CURRENT.set(box)
        try:
            await self._handler(records)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # nothing committed: the batch is taken again
            log.exception("stage %s: the handler failed on a batch (%s); taking it again", self.name,
                          type(exc).__name__)  # fmt: skip
            for tp, tp_records in batches.items():
                with contextlib.suppress(IllegalStateError):  # revoked meanwhile: the next owner takes it
                    self._consumer.seek(tp, tp_records[0].offset)
            await asyncio.sleep(HANDLER_RETRY_S)
            return
        finally:
            outbox.CURRENT.reset(token)
        await box.durable()  # every output acknowledged (acks=all) ...
        await self._commit({tp: tp_records[-1].offset + 1 for tp, tp_records in batches.items()})  # ... then commit
        self.batches += 1
        self.records += len(records)

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, RebalanceInProgressError, IllegalStateError) as exc:
            # the group moved on: the partitions' next owner takes these records again (same idempotency keys)
            log.info("stage %s: commit not accepted (%s); the records are taken again", self.name, type(exc).__name__)
        except KafkaError as exc:  # broker trouble: the next batch's commit covers these offsets too
            self._log_error(f"commit failed ({type(exc).__name__})")

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
                self.batch_lock.release()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._consumer.stop(), max(1.0, grace_s))
