"""The ingest publisher's direct produce path: inbound records on the producer's connections, batched per leader.

aiokafka's producer hands every record to its sender task through a queue, and the loop turns between
them cost about 0.1 ms on this VM: latency on every stop-and-wait message, and CPU on every record when
several connections send at once. :class:`DirectWriter` writes a record as its own produce request at
once (on the wire when :meth:`DirectWriter.write` returns) when no request of its own is in flight to
that partition's leader. Records that arrive while one is in flight wait, and go out together in one
request (one batch per partition) as soon as its response is in: one request in flight per leader,
as many records in each as arrived meanwhile, no timer. The request of a record that went out alone is
awaited by its own caller; a later request by a task of its own.

Records are partitioned as the producer would (murmur2 of the key over the topic's partitions), so the
topic stays co-partitioned with the stages that read it. Each record's outcome is None when the broker
stored it, else the broker's error for its partition (the publisher retries a retriable one through the
producer's own path); a lost or timed-out request is raised to each of its records' callers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import aiokafka.errors as aiokafka_errors
from aiokafka.client import ConnectionGroup
from aiokafka.conn import CloseReason
from aiokafka.errors import KafkaError as AIOKafkaError
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.structs import TopicPartition

from carehub.kafka_wire import ProduceRecords
from carehub.partitioner import partition_for

#: Batch and request framing around one record (the producer's own check decides near the limit).
RECORD_OVERHEAD = 512

#: A record's outcome: None once stored, else the broker's error for its partition.
Outcome = type[AIOKafkaError] | None
#: Produce errors about size: for one record, its own (answered as content); for a batch of several, no one's.
TOO_LARGE: tuple[type[AIOKafkaError], ...] = (
    aiokafka_errors.MessageSizeTooLargeError,
    aiokafka_errors.RecordListTooLargeError,
    aiokafka_errors.RecordTooLargeError,
)


class Resend(AIOKafkaError):  # type: ignore[misc]
    """Not stored by this path, for a reason that is not the record's own: the producer's path takes it."""

    retriable = True


@dataclass(eq=False, slots=True)
class _Record:
    partition: int
    key: bytes
    value: bytes
    answer: asyncio.Future[Outcome]


@dataclass(eq=False, slots=True)
class _Request:
    """A produce request on the wire: the leader it went to, its connection, its records, its response."""

    node: int
    conn: Any
    records: list[_Record]
    response: Awaitable[Any]


class DirectWriter:
    """Acks=all produce requests of one topic's records, written on an AIOKafkaClient's connections."""

    def __init__(self, client: Any, topic: str, max_request_size: int, timeout_ms: int) -> None:
        self._client = client
        self._topic = topic
        self._max_request_size = max_request_size
        self._timeout_ms = timeout_ms
        #: Leaders with a request of ours in flight, and the records waiting for its response.
        self._waiting: dict[int, list[_Record]] = {}
        #: The tasks driving requests no caller awaits (held until done: the loop keeps only weak references).
        self._drivers: set[asyncio.Task[None]] = set()
        #: Produce requests sent, and the records they carried.
        self.requests = 0
        self.records = 0

    def write(self, key: bytes, value: bytes) -> Awaitable[Outcome] | None:
        """Start storing one record; None where this path cannot take it now (no metadata for the topic,
        no leader, no open connection, too large to judge here): the producer's own path takes it then."""
        if len(key) + len(value) + RECORD_OVERHEAD > self._max_request_size:
            return None
        cluster = self._client.cluster
        partitions = cluster.partitions_for_topic(self._topic)
        if not partitions:
            return None
        partition = partition_for(key, list(partitions))
        node = cluster.leader_for_partition(TopicPartition(self._topic, partition))
        if node is None or node == -1:
            return None
        record = _Record(partition, key, value, asyncio.get_running_loop().create_future())
        waiting = self._waiting.get(node)
        if waiting is not None:
            waiting.append(record)
            return record.answer
        conn = self._conn(node)
        if conn is None:
            return None
        request = self._send(node, conn, [record])  # raises KafkaConnectionError when the socket is gone
        self._waiting[node] = []
        return self._lead(request, record)

    def _conn(self, node: int) -> Any:
        conn = self._client._conns.get((node, ConnectionGroup.DEFAULT))
        return conn if conn is not None and conn.connected() else None

    def _send(self, node: int, conn: Any, records: list[_Record]) -> _Request:
        batches: dict[int, BatchBuilder] = {}
        for record in records:
            batch = batches.get(record.partition)
            if batch is None:
                batch = batches[record.partition] = BatchBuilder(self._max_request_size, 0, is_transactional=False)
            batch.append(timestamp=None, key=record.key, value=record.value)
        request = ProduceRecords(
            required_acks=-1,
            timeout=self._timeout_ms,
            topics=[(self._topic, [(partition, batch._build()) for partition, batch in batches.items()])],
            transactional_id=None,
        )
        sent = _Request(node, conn, records, conn.send(request))
        self.requests += 1
        self.records += len(records)
        return sent

    async def _lead(self, request: _Request, record: _Record) -> Outcome:
        """A request that went out with its caller's record: the caller awaits it, then passes the lane on."""
        try:
            await self._settle(request)
        finally:
            following = self._next(request.node)
            if following is not None:
                driver = asyncio.ensure_future(self._drive(following))
                self._drivers.add(driver)
                driver.add_done_callback(self._drivers.discard)
        return record.answer.result()

    async def _drive(self, request: _Request | None) -> None:
        """Requests of waiting records, one after another while records keep arriving."""
        while request is not None:
            try:
                await self._settle(request)
            finally:
                request = self._next(request.node)

    async def _settle(self, request: _Request) -> None:
        """Await a request's response and answer each of its records (raises only when cancelled)."""
        try:
            response = await request.response
            errors = self._errors(request.records, response)
        except asyncio.CancelledError:
            # The caller that awaited it stopped waiting: the answer for the others is lost with it.
            self._fail(request.records, aiokafka_errors.KafkaTimeoutError("the produce response was abandoned"))
            raise
        except TimeoutError as exc:
            # The broker did not answer in time: neither this request's records nor those waiting
            # behind it get another full timeout's wait (the publisher marks the broker lost).
            request.conn.close(reason=CloseReason.CONNECTION_TIMEOUT)
            self._fail(request.records, exc)
            self._fail(self._waiting.get(request.node, []), exc)
        except AIOKafkaError as exc:
            if getattr(exc, "retriable", False):
                self._answer(request.records, {}, type(exc))
            else:
                self._fail(request.records, exc)
        except Exception as exc:  # never leave a record unanswered: its caller raises it
            self._fail(request.records, exc)
        else:
            self._answer(request.records, errors, None)

    def _errors(self, records: list[_Record], response: Any) -> dict[int, type[AIOKafkaError]]:
        """The broker's error per partition written; a batch of several records refused as too large is
        no one record's fault, and each is resent alone."""
        errors: dict[int, type[AIOKafkaError]] = {}
        for _topic, partitions in response.topics:
            for answer in partitions:
                error: type[AIOKafkaError] = aiokafka_errors.for_code(answer[1])
                if error is aiokafka_errors.NoError:
                    continue
                if getattr(error, "invalid_metadata", False):
                    self._client.force_metadata_update()
                errors[answer[0]] = error
        if not errors:
            return errors
        counts: dict[int, int] = {}
        for record in records:
            counts[record.partition] = counts.get(record.partition, 0) + 1
        return {p: Resend if counts.get(p, 0) > 1 and e in TOO_LARGE else e for p, e in errors.items()}

    @staticmethod
    def _answer(records: list[_Record], errors: dict[int, type[AIOKafkaError]], default: Outcome) -> None:
        for record in records:
            if not record.answer.done():
                record.answer.set_result(errors.get(record.partition, default))

    @staticmethod
    def _fail(records: list[_Record], exc: BaseException) -> None:
        for record in records:
            if not record.answer.done():
                record.answer.set_exception(exc)

    def _next(self, node: int) -> _Request | None:
        """Send what waited for a leader's request in flight (as much as one request may carry), or free it."""
        waiting = [r for r in self._waiting.pop(node, ()) if not r.answer.done()]  # given up: not sent
        if not waiting:
            return None
        conn = self._conn(node)
        if conn is None:
            self._answer(waiting, {}, Resend)
            return None
        taken: list[_Record] = []
        size = 0
        for record in waiting:
            size += len(record.key) + len(record.value) + RECORD_OVERHEAD
            if taken and size > self._max_request_size:
                break
            taken.append(record)
        try:
            request = self._send(node, conn, taken)
        except AIOKafkaError:
            self._answer(waiting, {}, Resend)
            return None
        self._waiting[node] = waiting[len(taken) :]
        return request
