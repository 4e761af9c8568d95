"""Consents on a compacted Kafka topic, read by every worker as a global table.

The topic is keyed by Consent id (compaction keeps each consent's latest
version; a revocation is a new version with status ``inactive``). Every
version is also kept under its own key ``<id>/_history/<n>`` (meta.versionId
``n``, with who wrote it), so compaction never loses one: the history is
readable through ``GET /fhir/Consent/<id>/_history``. §2.51 emergency
attestations live on the same topic under ``emergency/<id>``. Each
process tails the whole topic into memory, indexed by patient key, so a
decision needs no database round trip. A writer in the same process waits
until its write is applied locally before answering, so a revocation
acknowledged by the API takes effect before the next event is routed there;
other workers apply it as soon as they read it (milliseconds on a healthy
cluster).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from carehub.core.errors import StorageUnavailableError
from carehub.core.kafka_security import PLAINTEXT, KafkaSecurity
from carehub.streams.consent.emergency import KEY_PREFIX, Attestation, from_record
from carehub.streams.consent.model import ConsentDirective, ConsentError, parse_consent

log = logging.getLogger(__name__)
HISTORY = "/_history/"


def history_key(consent_id: str, version: int | str) -> str:
    return f"{consent_id}{HISTORY}{version}"


def _written_at(resource: dict[str, Any]) -> tuple[str, int, str]:
    """Order of versions: when written, then the version number (a source's own ids need not be numbers)."""
    meta = resource.get("meta", {})
    version = str(meta.get("versionId", ""))
    return str(meta.get("lastUpdated", "")), int(version) if version.isdigit() else 0, version


def fingerprint(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


class ConsentTable:
    def __init__(self, bootstrap: str, topic: str, *, security: KafkaSecurity = PLAINTEXT) -> None:
        self._bootstrap = bootstrap
        self._security = security
        self._topic = topic
        self._by_id: dict[str, tuple[ConsentDirective, dict[str, Any], str]] = {}
        self._by_patient: dict[str, dict[str, ConsentDirective]] = {}
        self._history: dict[str, dict[str, dict[str, Any]]] = {}
        self._by_id_print: dict[str, str] = {}
        self._emergencies: dict[str, dict[str, Attestation]] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self.applied = 0

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, group_id=None, enable_auto_commit=False,
                                    fetch_max_wait_ms=50, **self._security.aiokafka())  # fmt: skip
        await consumer.start()
        partitions = consumer.partitions_for_topic(self._topic) or set()
        assigned = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        self._consumer = consumer
        end = await consumer.end_offsets(assigned)
        while await self._behind(consumer, end):
            await self._poll(consumer, timeout_ms=200)
        self._task = asyncio.create_task(self._tail(consumer))

    @staticmethod
    async def _behind(consumer: AIOKafkaConsumer, end: dict[TopicPartition, int]) -> bool:
        for tp, offset in end.items():
            if await consumer.position(tp) < offset:
                return True
        return False

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await _stop_quietly(self._consumer)

    async def _tail(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            try:
                await self._poll(consumer, timeout_ms=500)
            except KafkaError as exc:
                log.warning("consent table: %s; retrying", type(exc).__name__)
                await asyncio.sleep(0.5)

    async def _poll(self, consumer: AIOKafkaConsumer, timeout_ms: int) -> None:
        batches = await consumer.getmany(timeout_ms=timeout_ms)
        for records in batches.values():
            for record in records:
                self.apply(record.key.decode() if record.key else "", record.value)

    def apply(self, consent_id: str, value: bytes | None) -> None:
        """Apply one topic record (None = tombstone)."""
        if consent_id.startswith(KEY_PREFIX) or HISTORY in consent_id:
            self._apply_other(consent_id, value)
            self.applied += 1
            self._changed.set()
            return
        previous = self._by_id.pop(consent_id, None)
        if previous is not None:
            self._by_patient.get(previous[0].patient_key, {}).pop(consent_id, None)
        if value is not None:
            try:
                raw = orjson.loads(value)
                directive = parse_consent(raw)
            except (ConsentError, ValueError) as exc:
                log.error("consent table: unreadable consent %s skipped (%s)", consent_id, type(exc).__name__)
            else:
                self._by_id[consent_id] = (directive, raw, fingerprint(value))
                self._by_patient.setdefault(directive.patient_key, {})[consent_id] = directive
        self.applied += 1
        self._changed.set()

    def _apply_other(self, key: str, value: bytes | None) -> None:
        try:
            raw = orjson.loads(value) if value is not None else None
            if key.startswith(KEY_PREFIX):
                if raw is not None:
                    found = from_record(raw)
                    self._emergencies.setdefault(found.patient_key, {})[found.id] = found
                    self._by_id_print[key] = fingerprint(value or b"")
            else:
                consent_id, _, version = key.partition(HISTORY)
                if raw is not None:
                    self._history.setdefault(consent_id, {})[version] = raw
        except (ConsentError, ValueError, KeyError) as exc:
            log.error("consent table: unreadable record %s skipped (%s)", key, type(exc).__name__)

    def for_patient(self, patient_key: str) -> list[ConsentDirective]:
        return list(self._by_patient.get(patient_key, {}).values())

    def emergencies_for(self, patient_key: str) -> list[Attestation]:
        """The §2.51 attestations made for the patient (each covers its own recipient and period)."""
        return list(self._emergencies.get(patient_key, {}).values())

    def history(self, consent_id: str) -> list[dict[str, Any]]:
        """Every version written, newest first."""
        versions = self._history.get(consent_id, {}).values()
        return sorted(versions, key=_written_at, reverse=True)

    def resource(self, consent_id: str) -> dict[str, Any] | None:
        found = self._by_id.get(consent_id)
        return found[1] if found else None

    def resources_for(self, patient_key: str) -> list[dict[str, Any]]:
        return [self._by_id[c][1] for c in self._by_patient.get(patient_key, {})]

    async def wait_for(self, consent_id: str, print_: str, timeout_s: float = 10.0) -> bool:
        """Until the table holds exactly this version of the consent."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            found = self._by_id.get(consent_id)
            if (found is not None and found[2] == print_) or self._by_id_print.get(consent_id) == print_:
                return True
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)


async def _stop_quietly(client: AIOKafkaConsumer | AIOKafkaProducer) -> None:
    """Stop a Kafka client even when the broker is gone.

    aiokafka's fetcher surfaces a CancelledError of its own task on close when the
    node is unreachable; only a cancellation of *this* task is passed on.
    """
    try:
        await client.stop()
    except KafkaError:
        pass
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise


class ConsentWriter:
    """Writes consents to the compacted topic with acks=all."""

    def __init__(self, bootstrap: str, topic: str, *, security: KafkaSecurity = PLAINTEXT) -> None:
        self._topic = topic
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", request_timeout_ms=10000, **security.aiokafka()
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await _stop_quietly(self._producer)

    async def write(self, consent: dict[str, Any], key: str = "", topic: str = "") -> str:
        """Store one record durably (by default a Consent under its id, on the consents topic); its fingerprint."""
        value = orjson.dumps(consent)
        try:
            await (await self._producer.send(topic or self._topic, value, key=(key or str(consent["id"])).encode()))
        except (KafkaError, OSError) as exc:
            raise StorageUnavailableError("the consent could not be stored durably; resend it") from exc
        return fingerprint(value)
