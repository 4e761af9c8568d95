"""fhir_inbound: fhir.inbound -> care.events, keeping each subscription's state in a table (a stage).

Records are keyed by source name, so one source's notifications (and the
heartbeat ticks ``Heartbeat`` adds) are handled in order, in one partition,
next to that source's rows of the two tables: subscription state
(``subscriptions.state``) and Encounter snapshots (``fhir.encounters``), both
compacted changelogs (streams.store, the encoding the Faust tables used, so
an upgraded worker reads them back). A batch's table writes are sent only
after its outputs are acknowledged. Decisions (gap, overdue heartbeat,
transition) are the pure functions of carehub/streams/subscriptions and
carehub/mappings/fhir.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from aiokafka.structs import ConsumerRecord

from carehub.adapters.resthook.notification import Notification, read_bundle, read_status
from carehub.core.clock import now_iso
from carehub.core.errors import CarehubError, MappingError
from carehub.core.records import FhirNotification
from carehub.streams.agents.fhir_events import FhirEventEmitter
from carehub.streams.context import AgentContext
from carehub.streams.outbox import CURRENT
from carehub.streams.stage import Handler
from carehub.streams.store import ChangelogStore
from carehub.streams.subscriptions.config import SourceConfig, SubscriptionConfig
from carehub.streams.subscriptions.deps import SubscriptionDeps
from carehub.streams.subscriptions.observe import Observed, after_recovery, check_heartbeat, observe, plan_recovery
from carehub.streams.subscriptions.state import UNHEALTHY, SubscriptionState, parse_time, state_key

log = logging.getLogger(__name__)
CHECK = "carehub-check"
STATE_TABLE = "subscription-state"
SNAPSHOT_TABLE = "fhir-encounters"


def subscription_id(ref: str) -> str:
    parts = [p for p in ref.split("/_history/")[0].split("/") if p]
    return parts[-1] if len(parts) >= 2 and parts[-2] == "Subscription" else ""


class NotificationHandler:
    def __init__(
        self, ctx: AgentContext, deps: SubscriptionDeps, states: ChangelogStore, emitter: FhirEventEmitter
    ) -> None:
        self._ctx = ctx
        self._deps = deps
        self._states = states
        self._emitter = emitter
        self._event: ConsumerRecord | None = None  # the record being handled (an unmappable event's dead letter)

    def _load(self, source: str, subscription: str) -> SubscriptionState:
        stored = self._states.get(state_key(source, subscription))
        return SubscriptionState.from_dict(stored) if stored else SubscriptionState(source, subscription)

    async def handle(self, record: FhirNotification, event: ConsumerRecord | None = None) -> None:
        self._event = event
        source = self._deps.config.source(record.source)
        sub = source.subscription(record.subscription) if source is not None else None
        if source is None or sub is None:
            log.warning("notification for a subscription no longer configured: source=%s", record.source[:40])
            return
        state = self._load(record.source, record.subscription)
        if record.kind == CHECK:
            state = await self._check(state, source, sub)
        else:
            state = await self._notification(state, read_bundle(record.bundle), source, sub, record.received_at)
        self._states.put(state.key, state.to_dict())

    async def _check(
        self, state: SubscriptionState, source: SourceConfig, sub: SubscriptionConfig
    ) -> SubscriptionState:
        now = datetime.now(UTC)
        check = check_heartbeat(state, now, sub.heartbeat_period_s, self._deps.config.heartbeat_grace)
        last_try = parse_time(state.last_recovery_at)
        retry = bool(state.missing) and (
            last_try is None or (now - last_try).total_seconds() >= self._deps.config.check_interval_s
        )
        if check.recover or retry:
            log.warning(
                "subscription unhealthy: source=%s subscription=%s reason=%s", source.name, sub.name, check.reason
            )
            return await self._recover(check.state, source, sub)
        return check.state

    async def _notification(
        self,
        state: SubscriptionState,
        notification: Notification,
        source: SourceConfig,
        sub: SubscriptionConfig,
        received_at: str,
    ) -> SubscriptionState:
        status = notification.status
        previous_contact = state.last_notification_at
        note = Observed(
            status.kind,
            received_at,
            status.events_since_start,
            tuple(notification.event_numbers),
            status.subscription_ref,
            status.status,
        )
        obs = observe(state, note)
        failed = await self._emit(notification, set(obs.fresh), source, sub, received_at, previous_contact)
        state = obs.state
        if failed:
            missing = tuple(sorted(set(state.missing) | failed))
            state = replace(state, missing=missing, health=UNHEALTHY, reason=f"could not read {len(failed)} event(s)")
        if obs.gap:
            log.warning("gap: source=%s subscription=%s missing=%s", source.name, sub.name, list(obs.gap)[:20])
            state = await self._recover(state, source, sub)
        return state

    async def _emit(
        self,
        notification: Notification,
        wanted: set[int],
        source: SourceConfig,
        sub: SubscriptionConfig,
        received_at: str,
        since: str,
    ) -> set[int]:
        """Emit the wanted events; return the numbers that could not be read (to be recovered)."""
        failed: set[int] = set()
        for ev in notification.status.events:
            if ev.number is not None and ev.number not in wanted:
                continue
            try:
                if ev.focus:
                    await self._emitter.emit_focus(
                        ev.focus, notification, source, sub, ev.number, ev.timestamp, received_at
                    )
                else:  # empty payload: ask what changed
                    await self._emitter.emit_changed_since(since, source, sub)
            except MappingError as exc:  # stored but not mappable: dead letter with the reason, never dropped
                await self._unmappable(exc, source, ev.number)
            except CarehubError as exc:
                log.warning("event not read: source=%s number=%s error=%s", source.name, ev.number, exc.code)
                if ev.number is not None:
                    failed.add(ev.number)
        return failed

    async def _unmappable(self, exc: MappingError, source: SourceConfig, number: int | None) -> None:
        log.warning("event not mappable: source=%s number=%s error=%s", source.name, number, exc.code)
        if self._event is not None:
            await self._ctx.dead_letter("fhir-map", exc, self._event)

    async def _recover(
        self, state: SubscriptionState, source: SourceConfig, sub: SubscriptionConfig
    ) -> SubscriptionState:
        sub_id = subscription_id(state.subscription_ref)
        plan = plan_recovery(state, source.supports_events and bool(sub_id))
        now = now_iso()
        try:
            if plan.method == "events":
                return await self._recover_events(state, source, sub, sub_id, plan.since_number, plan.until_number)
            count = await self._emitter.emit_changed_since(plan.since_time, source, sub)
            self._ctx.metrics.inc("subscription_recoveries", method="search")
            log.info("recovered by search: source=%s subscription=%s encounters=%d", source.name, sub.name, count)
            return after_recovery(state, (), None, now, "search")
        except CarehubError as exc:
            log.warning("recovery failed: source=%s subscription=%s error=%s", source.name, sub.name, exc.code)
            return replace(
                state,
                health=UNHEALTHY,
                last_recovery_at=now,
                reason=f"{state.reason.split('; recovery failed')[0]}; recovery failed: {exc.code}",
            )

    async def _recover_events(
        self,
        state: SubscriptionState,
        source: SourceConfig,
        sub: SubscriptionConfig,
        sub_id: str,
        since: int,
        until: int | None,
    ) -> SubscriptionState:
        reader = self._emitter.reader(source)
        status_bundle = await reader.status(sub_id)
        entries = status_bundle.get("entry") or [{}]
        count = read_status(entries[0].get("resource")).events_since_start
        top = until if until is not None else count
        recovered: tuple[int, ...] = ()
        if top is not None and top >= since:
            notification = read_bundle(await reader.events(sub_id, since, top))
            wanted = set(state.missing) | set(range(state.last_event_number + 1, top + 1))
            numbers = {n for n in notification.event_numbers if n in wanted}
            failed = await self._emit(notification, numbers, source, sub, now_iso(), state.last_notification_at)
            recovered = tuple(sorted(numbers - failed))
        self._ctx.metrics.inc("subscription_recoveries", method="events")
        log.info("recovered by $events: source=%s subscription=%s events=%s", source.name, sub.name, list(recovered))
        return after_recovery(state, recovered, count, now_iso(), "$events")


class InboundTables:
    """The stage's two tables (streams.store), on the changelog topics the Faust tables had."""

    def __init__(self, ctx: AgentContext) -> None:
        topics = ctx.deps.topics
        self.states = ChangelogStore(STATE_TABLE, topics.subscription_state)
        self.snapshots = ChangelogStore(SNAPSHOT_TABLE, topics.fhir_encounters)

    @property
    def stores(self) -> list[ChangelogStore]:
        return [self.states, self.snapshots]


def handler(ctx: AgentContext, deps: SubscriptionDeps, tables: InboundTables) -> Handler:
    """The batch handler: notifications and heartbeat checks in order; the tables written after the outputs."""
    notifications = NotificationHandler(ctx, deps, tables.states, FhirEventEmitter(ctx, tables.snapshots, deps.readers))

    async def inbound_batch(records: Sequence[ConsumerRecord]) -> None:
        for store in tables.stores:
            store.discard_staged()  # a batch taken again starts from the state before it
        for record in records:
            for store in tables.stores:
                store.partition = record.partition  # a row lives with its source's partition
            try:
                await notifications.handle(FhirNotification.from_json(record.value), record)
            except Exception as exc:  # one bad record must never stop the stream
                await ctx.dead_letter("fhir-inbound", exc, record)
                continue
            ctx.stage_done("fhir-inbound", record)
        box = CURRENT.get()
        if box is not None:
            await box.durable()  # the outputs first: the changelogs are never ahead of them
        for store in tables.stores:
            await store.settle(ctx.send_raw)

    return inbound_batch


class Heartbeat:
    """Every ``check_interval_s``, one check record per enabled subscription onto fhir.inbound, so the stage
    notices an overdue heartbeat and retries a recovery. Sent by the worker that holds partition 0 of the
    stage (``leads``): one tick per interval for the whole group, as the Faust leader's timer did."""

    def __init__(self, ctx: AgentContext, deps: SubscriptionDeps, leads: Callable[[], bool]) -> None:
        self._ctx = ctx
        self._deps = deps
        self._leads = leads
        self._task: asyncio.Task[None] | None = None
        self.ticks = 0

    async def tick(self) -> None:
        topics = self._ctx.deps.topics
        for source, sub in self._deps.config.enabled():
            check = FhirNotification(source.name, sub.name, CHECK, now_iso(), {})
            await self._ctx.send(topics.fhir_inbound, source.name, check)
        self.ticks += 1

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._deps.config.check_interval_s)
            if not self._leads():
                continue
            try:
                await self.tick()
            except Exception as exc:  # the broker gone: the next interval ticks again
                log.warning("heartbeat check not sent (%s)", type(exc).__name__)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="fhir-heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
