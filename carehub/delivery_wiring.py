"""Delivery wiring for the hub: journal, connectors per channel, Task and DLQ routes, overdue alerts.

Kept apart from carehub.hub so the hub only asks for these parts by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from carehub.adapters.dlqapi import dlq_routes
from carehub.adapters.logisticsapi import logistics_routes
from carehub.adapters.taskapi import task_routes
from carehub.connectors.base import Destination
from carehub.connectors.fhir_rest import FhirRestDestination
from carehub.connectors.kafka_topic import KafkaTopicDestination
from carehub.connectors.logistics import LogisticsDesk
from carehub.connectors.mllp import MLLPDestination
from carehub.core.clock import iso, now
from carehub.core.kafka_security import PLAINTEXT, KafkaSecurity
from carehub.core.payload import Payload
from carehub.core.records import Delivery, Record, TaskEvent
from carehub.core.settings import Settings
from carehub.core.topics import Topics
from carehub.journal import Journal, open_journal
from carehub.kafka import Replication, ensure_topics
from carehub.streams.logistics.engine import LogisticsEngine
from carehub.streams.packet.step import load_packet_settings
from carehub.streams.recipient_tasks import watch_recipient_tasks
from carehub.streams.routing.model import Recipient
from carehub.streams.routing.source import ReloadingRoutingMap
from carehub.streams.task_alerts import overdue_alert, requester_recipient, watch_overdue

log = logging.getLogger(__name__)
FHIR_JSON = "application/fhir+json"


def journal_url(settings: Settings, app_id: str) -> str:
    """The journal's URL; unset, a SQLite file in ``<app id>-data/`` (where Faust kept the worker's local
    state before the stages; kept so an upgraded worker finds its journal)."""
    return settings.database_url or f"sqlite:///{app_id}-data/journal.db"


class DeliveryParts:
    def __init__(
        self,
        settings: Settings,
        routing: ReloadingRoutingMap,
        topics: Topics,
        bootstrap: str,
        app_id: str,
        *,
        security: KafkaSecurity = PLAINTEXT,
        replication: Replication | None = None,
    ) -> None:
        self.settings = settings
        self.database_url = journal_url(settings, app_id)
        self.routing = routing
        self.topics = topics
        timeout = settings.delivery.timeout_s
        copies = replication or Replication(1, 1)

        async def provision(topic: str) -> object:  # the hub's one topic provisioner, for a recipient's topic
            return await asyncio.to_thread(
                ensure_topics,
                bootstrap,
                [topic],
                settings.kafka.partitions,
                security=security,
                replication_factor=copies.factor,
                min_insync_replicas=copies.min_insync,
            )

        self.kafka = KafkaTopicDestination(bootstrap, timeout, self.options_for, security=security, provision=provision)
        self.destinations: dict[str, Destination] = {
            "fhir-rest": FhirRestDestination(timeout, self.options_for),
            "mllp": MLLPDestination(timeout, self.options_for),
            "kafka": self.kafka,
        }
        self.journal: Journal | None = None
        self.logistics: LogisticsEngine | None = None
        self.destinations["logistics"] = LogisticsDesk(lambda: self.journal, self._orders_placed)
        self._overdue: asyncio.Task[None] | None = None
        self._logistics: asyncio.Task[None] | None = None
        self._retention: asyncio.Task[None] | None = None
        self._recipient_tasks: asyncio.Task[None] | None = None

    def _directory(self) -> Mapping[str, Recipient]:
        return self.routing.current().recipients

    def options_for(self, recipient_id: str) -> Mapping[str, str]:
        recipient = self.routing.current().recipients.get(recipient_id)
        return dict(recipient.connection) if recipient is not None else {}

    async def start(self) -> Journal:
        self.journal = await asyncio.to_thread(open_journal, self.database_url)
        self._overdue = asyncio.create_task(watch_overdue(self.journal, self._overdue_alert))
        poll_s = load_packet_settings(self.settings.config_dir).poll_s
        if poll_s > 0:  # Tasks worked on recipients' own FHIR servers (docs/packet.md)
            self._recipient_tasks = asyncio.create_task(
                watch_recipient_tasks(
                    self.journal, self._directory, self._task_event, poll_s, self.settings.delivery.timeout_s
                )
            )
        self._retention = asyncio.create_task(self._purge_expired())
        self.logistics = LogisticsEngine(
            self.journal,
            self._vendors,
            self.republish,
            hub_url=self.settings.hub_base_url,
            clock=now,
            map_version=lambda: self.routing.current().version,
            care_manager=self.settings.delivery.overdue_owner,
        )
        self._logistics = asyncio.create_task(self.logistics.run())
        return self.journal

    def _vendors(self) -> dict[str, Recipient]:
        return self.routing.current().recipients

    def _orders_placed(self) -> None:
        if self.logistics is not None:
            self.logistics.kick()

    async def purge_expired_once(self) -> int:
        """Delete the dead letters older than ``delivery.dead_letter_retention_days``; how many."""
        assert self.journal is not None
        keep = timedelta(days=self.settings.delivery.dead_letter_retention_days)
        cutoff = iso(datetime.now(UTC) - keep)
        purged = await self.journal.db.run(self.journal.purge_dead_letters, cutoff)
        if purged:
            log.info("retention: %d dead letter(s) older than %s deleted", purged, keep)
        return purged

    async def _purge_expired(self, every_s: float = 3600.0) -> None:
        while True:
            try:
                await self.purge_expired_once()
            except Exception as exc:  # a failed purge is retried next round, never fatal
                log.error("retention purge failed: %s", type(exc).__name__)
            await asyncio.sleep(every_s)

    async def publish(self, topic: str, key: str, record: Record) -> None:
        await self.kafka.publish(topic, key.encode(), record.to_json(), [])

    async def _task_event(self, event: TaskEvent) -> None:
        """task.events is keyed by patient key like every patient topic (the task id for legacy Tasks)."""
        assert self.journal is not None
        patient = await self.journal.db.run(self.journal.tasks.patient_of, event.task_id)
        await self.publish(self.topics.task_events, patient or event.task_id, event)

    async def republish(self, delivery: Delivery) -> None:
        await self.publish(self.topics.deliveries, delivery.patient_key, delivery)

    async def _overdue_alert(self, task: dict[str, Any], event: TaskEvent) -> None:
        await self._task_event(event)
        directory = self.routing.current().recipients
        recipient = directory.get(requester_recipient(task)) or directory.get(self.settings.delivery.overdue_owner)
        if recipient is None:
            log.warning("task %s overdue; neither its requester nor delivery.overdue_owner is in the directory,"
                        " event only", task["id"])  # fmt: skip
            return
        key = hashlib.sha256(f"{task['id']}|{recipient.id}|task-overdue".encode()).hexdigest()[:32]
        patient = str(task.get("for", {}).get("identifier", {}).get("value", "")) or task["id"]
        delivery = Delivery(
            delivery_id=key,
            idempotency_key=key,
            event_id=f"task-overdue:{task['id']}",
            patient_key=patient,
            recipient_id=recipient.id,
            action="notify",
            channel=recipient.channel,
            endpoint=recipient.endpoint,
            content_type=FHIR_JSON,
            payload=Payload(overdue_alert(task, self.settings.hub_base_url, event.at)),
            rule_id="task-overdue",
            map_version=self.routing.current().version,
        )
        await self.republish(delivery)

    def routes(self) -> list[web.RouteDef]:
        if self.journal is None:
            return []
        return [
            *task_routes(self.journal, self._task_answered, self.settings.hub_base_url),
            *dlq_routes(self.journal, self.republish),
            *logistics_routes(self.journal, self._vendors, self._orders_placed),
        ]

    async def _task_answered(self, event: TaskEvent) -> None:
        """A performer changed a Task: published, and the logistics engine looks at once (it may be an offer)."""
        await self._task_event(event)
        self._orders_placed()

    async def stop(self) -> None:
        for task in (self._overdue, self._retention, self._logistics, self._recipient_tasks):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for destination in self.destinations.values():
            await destination.close()
        if self.journal is not None:
            await asyncio.to_thread(self.journal.close)
        self.journal = None
