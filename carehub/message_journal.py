"""Feed the message journal from the inbound topics (a consumer group of its own, batched writes).

Kept off the MLLP ACK path: the listener ACKs once the record is on the topic;
this consumer reads ``hl7v2.inbound`` and ``fhir.inbound`` afterwards and
writes each batch to the journal in one transaction before committing its
offsets, so a restart re-reads at most one batch (rows are keyed by topic,
partition and offset; a repeat is skipped). Every record on the inbound topic
was answered AA (the listener publishes only what it accepts); the refused ones
come from ``inbound.refused`` (carehub.refusals), written by whichever ingest
process answered them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

from carehub.core.clock import now_iso
from carehub.core.kafka_security import PLAINTEXT, KafkaSecurity
from carehub.core.records import InboundMessage, InboundRefusal
from carehub.core.topics import Topics
from carehub.journal import Journal
from carehub.journal.messages import MessageRow
from carehub.mappings import event_id_of

log = logging.getLogger(__name__)


def _inbound_row(record: ConsumerRecord) -> tuple[MessageRow, str]:
    message = InboundMessage.from_json(record.value)
    try:  # the id normalize gives its CareEvent, from the header alone (a conversion per message is not needed)
        event_id = event_id_of(message.text())
    except Exception:  # normalize dead-letters it with its reason; the journal still shows the receipt
        event_id = ""
    kind = message.message_type + (f"^{message.trigger_event}" if message.trigger_event else "")
    row = MessageRow(
        record.topic, record.partition, record.offset, "mllp", message.control_id, kind,
        message.sending_facility, message.patient_key, event_id, message.received_at, now_iso(), "AA",
        message.listener,
    )  # fmt: skip
    return row, message.text()


def _refusal_row(record: ConsumerRecord) -> tuple[MessageRow, str]:
    refusal = InboundRefusal.from_json(record.value)
    row = MessageRow(
        record.topic, record.partition, record.offset, refusal.source, refusal.control_id, refusal.message_type,
        refusal.sending_facility, refusal.patient_key, "", refusal.received_at, now_iso(), refusal.ack_code,
        refusal.listener, refusal.error_code or "refused", refusal.reason,
    )  # fmt: skip
    return row, refusal.text()


def _notification_row(record: ConsumerRecord, body: dict[str, object]) -> tuple[MessageRow, str]:
    numbers = body.get("event_numbers")
    numbers = numbers if isinstance(numbers, list) else []
    control = f"{body.get('subscription', '')}#{','.join(str(n) for n in numbers)}" if numbers else ""
    row = MessageRow(
        record.topic, record.partition, record.offset, "fhir", control or str(body.get("subscription", "")),
        f"fhir:{body.get('kind', '')}", str(body.get("source", "")), "", "", str(body.get("received_at", "")),
        now_iso(), "200", "rest-hook",
    )  # fmt: skip
    return row, orjson.dumps(body.get("bundle", {})).decode()


def journal_rows(records: list[ConsumerRecord], topics: Topics) -> list[tuple[MessageRow, str]]:
    rows = []
    for record in records:
        if record.value is None:
            continue
        try:
            body = orjson.loads(record.value)
            if record.topic == topics.hl7v2_inbound:
                rows.append(_inbound_row(record))
            elif record.topic == topics.inbound_refused:
                rows.append(_refusal_row(record))
            else:
                rows.append(_notification_row(record, body))
        except Exception as exc:  # a record the journal cannot read is skipped, never fatal
            log.warning("message journal: %s:%d:%d unreadable (%s)", record.topic, record.partition,
                        record.offset, type(exc).__name__)  # fmt: skip
    return rows


class MessageJournalFeed:
    """Consumes the inbound topics into ``journal.messages``."""

    def __init__(
        self,
        journal: Journal,
        bootstrap: str,
        topics: Topics,
        group: str,
        *,
        security: KafkaSecurity = PLAINTEXT,
    ) -> None:
        self.journal = journal
        self.topics = topics
        self._consumer = AIOKafkaConsumer(
            topics.hl7v2_inbound,
            topics.fhir_inbound,
            topics.inbound_refused,
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **security.aiokafka(),
        )
        self._task: asyncio.Task[None] | None = None
        self.journaled = 0

    async def start(self) -> None:
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=500, max_records=500)
            records = [r for batch in batches.values() for r in batch]
            if records:
                await self._store(journal_rows(records, self.topics))

    async def _store(self, rows: list[tuple[MessageRow, str]]) -> None:
        """Write one batch, then commit its offsets; journal or broker trouble: wait and write it again."""
        while True:
            try:
                await self.journal.db.run(self.journal.messages.record_many, rows)
                await self._consumer.commit()
                self.journaled += len(rows)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("message journal feed: %s; retrying the batch", type(exc).__name__)
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()
