"""Wire one hub process: broker, topics, ingest publisher, MLLP, streams, HTTP.

The same wiring serves ``carehub run``, ``carehub demo``, the tests and the
benchmarks. With no bootstrap servers configured the embedded broker is
started here and stopped on exit; otherwise the configured cluster is used
and several processes may run side by side (same app id = same consumer
group; the MLLP port is shared with SO_REUSEPORT).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlparse

from aiohttp import web
from aiokafka.errors import KafkaError as AIOKafkaError

from carehub.adapters.configapi import config_routes
from carehub.adapters.console import ConsoleDeps, SessionStore, console_routes, signin_redirect
from carehub.adapters.console.scorecard import scorecard_routes
from carehub.adapters.httpauth import Access
from carehub.adapters.httpauth.tokens import TokenVerifier
from carehub.adapters.measureapi import measure_routes
from carehub.adapters.mllp.inbound import InboundHandler
from carehub.adapters.mllp.server import MLLPServer
from carehub.broker import EmbeddedBroker
from carehub.connectors.webhook import WebhookDestination
from carehub.consents import ConsentParts, ConsentService
from carehub.consumer_lag import group_lag
from carehub.core.errors import BrokerError, CarehubError, MessageError, UnprocessableMessageError
from carehub.core.kafka_security import KafkaSecurity
from carehub.core.metrics import Metrics
from carehub.core.records import InboundMessage
from carehub.core.settings import Settings
from carehub.core.topics import Topics
from carehub.core.transport import is_loopback
from carehub.delivery_wiring import DeliveryParts, journal_url
from carehub.fhir_subscriptions import health_rows, read_states, resthook_routes, subscription_deps
from carehub.health import DependencyHealth
from carehub.journal import Journal, open_journal
from carehub.kafka import KafkaPublisher, Replication, ensure_topics
from carehub.mappings.events import triggers
from carehub.mappings.plan import default_plans
from carehub.message_journal import MessageJournalFeed
from carehub.ops_http import HTTPServer, check_listener, ops_routes, server_ssl_context
from carehub.packets import packet_deps
from carehub.refusals import RefusalRecorder
from carehub.streams.app import StreamWorker, stage_groups
from carehub.streams.context import StreamDeps
from carehub.streams.delivery_policy import RetryPolicy
from carehub.streams.normalize import normalize
from carehub.streams.notify import Hub as HubIdentity
from carehub.streams.routing.source import ReloadingRoutingMap
from carehub.streams.subscriptions.config import load_subscriptions

log = logging.getLogger(__name__)


def care_event_bytes(record: InboundMessage, default_authorities: Mapping[str, str] | None = None) -> int | None:
    """The size of the CareEvent ``record`` normalizes to (the MLLP listener's size preflight).

    None when it does not convert: normalize dead-letters such a message with
    its reason, so refusing it here would only make the sender resend it.
    """
    try:
        return len(normalize(record, default_authorities=default_authorities).to_json())
    except Exception:  # any conversion failure is the stream's to dead-letter, not a reason to refuse
        return None


def application_check(
    record: InboundMessage, default_authorities: Mapping[str, str] | None = None
) -> MessageError | None:
    """Whether the hub can process a stored message (enhanced mode's application ACK, MSH-16): it converts.

    A message that does not convert gets AE with the reason; normalize dead-letters it as it does any other.
    """
    try:
        normalize(record, default_authorities=default_authorities)
    except CarehubError as exc:
        return UnprocessableMessageError(f"the message cannot be processed: {exc}"[:200])
    return None


#: ``ingest`` = MLLP listener + Kafka publisher; ``streams`` = the stream stages (streams.app).
#: A process runs either or both; ingest and stream workers scale separately.
ROLES = ("ingest", "streams")
#: Share of ``drain_s`` the MLLP listener may use on stop to answer blocks it already received.
MLLP_DRAIN_SHARE = 2 / 3
#: How long the console reuses the subscription health and consumer lag it read from Kafka.
SUBSCRIPTION_HEALTH_TTL_S = 10.0
#: Share of ``drain_s`` the stream stages may use on stop to finish the batch in hand.
STAGE_DRAIN_SHARE = 1 / 3


#: Exit status when the drain time ran out before every part stopped.
EXIT_NOT_DRAINED = 3
#: A part of the hub that takes longer than this to stop is named in the log (seconds).
SLOW_STOP_S = 2.0


@contextlib.asynccontextmanager
async def _step(part: str) -> AsyncIterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        took = time.monotonic() - started
        if took > SLOW_STOP_S:
            log.warning("shutdown: stopping the %s took %.1f s", part, took)


def worker_app_id(settings: Settings) -> str:
    """The stream workers' app id: their stages' consumer groups are ``<app id>-<stage>``; the default
    journal file is ``<app id>-data/journal.db``."""
    return f"{settings.app_id}-{settings.kafka.topic_prefix.strip('.') or 'default'}"


def journal_health(journal: Journal, url: str) -> DependencyHealth:
    """Readiness of a PostgreSQL journal: ``SELECT 1`` on the journal's thread, reconnecting after a failure."""
    where = urlparse(url)
    name = f"{where.hostname}:{where.port or 5432}"  # never the URL: it may hold a password

    async def probe() -> bool:
        async with asyncio.timeout(5.0):
            return await journal.db.run(journal.db.ping)

    return DependencyHealth(
        "PostgreSQL journal", name, probe, impact="/ready is false until it is back", errors=(TimeoutError, OSError)
    )


class Hub:
    def __init__(
        self,
        settings: Settings,
        *,
        roles: tuple[str, ...] = ROLES,
        broker_log: Path | None = None,
        insecure_http: bool = False,
    ) -> None:
        unknown = set(roles) - set(ROLES)
        if unknown or not roles:
            raise ValueError(f"roles must be among {ROLES}, got {roles}")
        self.settings = settings
        self.roles = roles
        self.metrics = Metrics()
        self.topics = Topics(settings.kafka.topic_prefix)
        self.routing = ReloadingRoutingMap(settings.config_dir, watch_files=settings.routing.watch)
        self.subscriptions = load_subscriptions(settings.config_dir)
        self._broker_log = broker_log
        self._broker: EmbeddedBroker | None = None
        self._publisher: KafkaPublisher | None = None
        self._refusals: RefusalRecorder | None = None
        self._subscription_rows: tuple[float, list[dict[str, object]]] | None = None  # (read at, rows): a cache
        self._lag_rows: tuple[float, list[dict[str, object]]] | None = None  # the same for consumer lag
        self._mllp: MLLPServer | None = None
        self._http: HTTPServer | None = None
        self._webhook: WebhookDestination | None = None
        self._delivery: DeliveryParts | None = None
        self._consent: ConsentParts | None = None
        self._journal_health: DependencyHealth | None = None
        self._app: StreamWorker | None = None
        self._watch: asyncio.Task[None] | None = None
        self.bootstrap = settings.kafka.bootstrap or ""
        self._ready = False
        #: Plain HTTP on a non-loopback address only when asked for (``carehub run --insecure``).
        self._insecure_http = insecure_http
        self._security_journal: Journal | None = None
        #: How every Kafka client of this process connects (SSL / SASL_SSL), and the topics' replication.
        self.kafka_security = KafkaSecurity.from_settings(settings.kafka)
        self._tokens = TokenVerifier(settings.auth)  # bad issuer settings stop the hub before anything starts
        self.replication: Replication | None = None
        #: Console browser sessions (adapters.console): a verified token exchanged for a cookie.
        self.console_sessions = SessionStore()
        self._message_feed: MessageJournalFeed | None = None

    @property
    def app_id(self) -> str:
        return worker_app_id(self.settings)

    @property
    def journal_group(self) -> str:
        """The consumer group that feeds the message journal from the inbound topics."""
        return f"{self.app_id}-message-journal"

    @property
    def consents(self) -> ConsentService:
        assert self._consent is not None, "hub not started"
        return self._consent.service

    @property
    def mllp_port(self) -> int:
        return self._mllp.port if self._mllp is not None else 0

    @property
    def http_port(self) -> int:
        assert self._http is not None, "hub not started"
        return self._http.port

    @property
    def mllp_stats(self) -> object:
        assert self._mllp is not None, "hub not started"
        return self._mllp.stats

    async def _start_broker(self) -> None:
        if self.settings.embedded_broker:
            self._broker = EmbeddedBroker(log_file=self._broker_log)
            self.bootstrap = await asyncio.to_thread(self._broker.start)
            self.settings = replace(self.settings, kafka=replace(self.settings.kafka, bootstrap=self.bootstrap))
        await self._ensure_topics()
        self._consent = ConsentParts(
            self.settings.config_dir,
            self.bootstrap,
            self.topics.consents,
            self.topics.audit_events,
            security=self.kafka_security,
        )
        await self._consent.start()

    async def _start_streams(self) -> None:
        s = self.settings
        # Every message plan compiled now, not on the first message of each structure (~0.5 s, once per process):
        # no event waits for it, and what it builds is frozen with the rest of start-up (carehub.core.heap).
        default_plans().compile_all()
        triggers()
        self._webhook = WebhookDestination(s.delivery.timeout_s, secret_for=self.routing.secret_for)
        app_id = self.app_id
        self._delivery = DeliveryParts(
            s,
            self.routing,
            self.topics,
            self.bootstrap,
            app_id,
            security=self.kafka_security,
            replication=self.replication,
        )
        journal = await self._delivery.start()
        journal.db.waited = lambda seconds: self.metrics.observe("journal_call_seconds", seconds)
        if journal.dialect == "postgresql":
            self._journal_health = journal_health(journal, s.database_url)
            self._journal_health.start()
        deps = StreamDeps(
            topics=self.topics,
            routing=self.routing,
            destinations={"webhook": self._webhook, **self._delivery.destinations},
            retry=RetryPolicy(
                s.delivery.max_attempts,
                s.delivery.backoff_initial_s,
                s.delivery.backoff_max_s,
                s.delivery.breaker_failures,
                s.delivery.breaker_reset_s,
            ),
            hub=HubIdentity(base_url=s.hub_base_url),
            metrics=self.metrics,
            journal=journal,
            delivery_timeout_s=s.delivery.timeout_s,
            subscriptions=subscription_deps(self.subscriptions),
            consent=self._consent.deps() if self._consent is not None else None,
            default_authorities=s.default_authorities,
            packet=packet_deps(s.config_dir, self.subscriptions),
        )
        self._message_feed = MessageJournalFeed(
            journal,
            self.bootstrap,
            self.topics,
            self.journal_group,
            security=self.kafka_security,
        )
        worker = StreamWorker(app_id, self.bootstrap, s.kafka, deps)
        tables = worker.compacted_topics()
        await self._provision(tables, tables)
        # The journal feed and the worker join their consumer groups at the same time (each join waits).
        await asyncio.gather(self._message_feed.start(), worker.start())
        self._app = worker

    async def _provision(self, names: list[str], compacted: list[str]) -> None:
        """Create missing topics with the configured replication; refuse topics with fewer copies."""
        k = self.settings.kafka
        self.replication = await asyncio.to_thread(
            ensure_topics,
            self.bootstrap,
            names,
            k.partitions,
            compacted,
            security=self.kafka_security,
            replication_factor=k.replication_factor,
            min_insync_replicas=k.min_insync_replicas,
        )

    async def _ensure_topics(self) -> None:
        """Provision the hub's topics (idempotent); also run when a lost broker comes back."""
        await self._provision(self.topics.all(), list(self.topics.compacted()))

    async def _start_ingest(self) -> None:
        s = self.settings
        self._publisher = KafkaPublisher(
            self.bootstrap,
            self.topics.hl7v2_inbound,
            s.kafka.produce_timeout_s,
            notification_topic=self.topics.fhir_inbound,
            refusal_topic=self.topics.inbound_refused,
            max_request_size=s.kafka.max_record_bytes,
            on_back=self._ensure_topics,
            security=self.kafka_security,
        )
        await self._publisher.start()
        self._refusals = RefusalRecorder(self._publisher.publish_refusal, self.metrics)
        await self._refusals.start()
        handler = InboundHandler(
            self._publisher,
            s.mllp,
            max_record_bytes=s.kafka.max_record_bytes,
            preflight=functools.partial(care_event_bytes, default_authorities=s.default_authorities),
            default_authorities=s.default_authorities,
            on_refusal=self._refusals.record,
            assess=functools.partial(application_check, default_authorities=s.default_authorities),
        )
        listener = f"mllp:{s.mllp.host}:{s.mllp.port}"

        def acked(code: str, seconds: float) -> None:
            self.metrics.inc("mllp_acks", listener=listener, code=code)
            self.metrics.observe("ack_latency_seconds", seconds, listener=listener, code=code)

        self._mllp = MLLPServer(handler, s.mllp, listener=listener, on_ack=acked)
        await self._mllp.start()

    def ready(self) -> bool:
        """/ready: started, the broker reachable (ingest) and the PostgreSQL journal reachable (streams)."""
        if not self._ready:
            return False
        broker = self._publisher is None or self._publisher.health.healthy
        return broker and (self._journal_health is None or self._journal_health.healthy)

    def _http_routes(self) -> list[web.RouteDef]:
        """Every HTTP route the hub serves; each feature adds its own here."""
        delivery = self._delivery.routes() if self._delivery is not None else []
        fhir = resthook_routes(self._publisher, self.subscriptions, self._refusals.record if self._refusals else None)
        consent = self._consent.routes() if self._consent is not None else []
        config = config_routes(self.routing)
        routes = [*ops_routes(self.metrics, self.ready), *config, *delivery, *fhir, *consent, *self._console_routes()]
        return [*routes, *self._scorecard_routes()]

    def _scorecard_routes(self) -> list[web.RouteDef]:
        """GET /fhir/MeasureReport, where this process has the delivery journal (the streams role)."""
        if self._delivery is None or self._delivery.journal is None:
            return []

        def kinds() -> dict[str, str]:
            return {r.id: r.kind for r in self.routing.current().recipients.values()}

        s = self.settings
        return measure_routes(self._delivery.journal, kinds, s.config_dir, s.hub_base_url, "carehub")

    def _console_routes(self) -> list[web.RouteDef]:
        """The console's pages, where this process has the delivery journal (the streams role)."""
        if self._delivery is None or self._delivery.journal is None:
            return []
        journal = self._delivery.journal

        async def audit(event: dict[str, object]) -> None:
            await journal.db.run(journal.security.record, event)

        deps = ConsoleDeps(
            journal, self.routing, self._delivery.republish, self._tokens, self.console_sessions, audit,
            secure_cookies=self.settings.http.tls, subscriptions=self._subscription_health, lag=self._consumer_lag,
        )  # fmt: skip
        return [*console_routes(deps), *scorecard_routes(deps, self.settings.config_dir)]

    async def _subscription_health(self) -> list[dict[str, object]]:
        """Each enabled subscription's health from the compacted state topic (read at most every 10 s)."""
        if not self.subscriptions.enabled():
            return []
        now = asyncio.get_running_loop().time()
        if self._subscription_rows is None or now - self._subscription_rows[0] > SUBSCRIPTION_HEALTH_TTL_S:
            try:
                states = await read_states(self.bootstrap, self.topics.subscription_state, 5.0,
                                           security=self.kafka_security)  # fmt: skip
            except (AIOKafkaError, OSError) as exc:
                raise BrokerError(f"cannot read {self.topics.subscription_state}: {type(exc).__name__}") from exc
            self._subscription_rows = (now, health_rows(self.subscriptions, states))
        return self._subscription_rows[1]

    async def _consumer_lag(self) -> list[dict[str, object]]:
        """The stream workers' and the message journal's groups: records behind per topic (at most every 10 s)."""
        now = asyncio.get_running_loop().time()
        if self._lag_rows is None or now - self._lag_rows[0] > SUBSCRIPTION_HEALTH_TTL_S:
            groups = [*stage_groups(self.app_id), self.journal_group]
            rows = await group_lag(self.bootstrap, groups, self.topics.prefix, security=self.kafka_security)
            self._lag_rows = (now, [row.to_dict() for row in rows])
        return self._lag_rows[1]

    async def _start_http(self) -> None:
        """The HTTP listener, every route behind the access check (adapters.httpauth), TLS when configured."""
        s = self.settings
        journal = self._delivery.journal if self._delivery is not None else None
        if journal is None:
            journal = self._security_journal = await asyncio.to_thread(open_journal, journal_url(s, self.app_id))

        async def audit(event: dict[str, object]) -> None:
            await journal.db.run(journal.security.record, event)

        access = Access(
            s.auth,
            known_recipient=lambda rid: rid in self.routing.current().recipients,
            audit=audit,
            tokens=self._tokens,
            sessions=self.console_sessions.principal,
        )
        if not s.auth.issuers and not s.auth.client_certificates:
            level = logging.INFO if is_loopback(s.http.host) else logging.WARNING
            log.log(level, "no token issuer or client certificate configured (auth in carehub.yaml): "
                    "every HTTP route but /health and /ready answers 401")  # fmt: skip
        self._http = HTTPServer(
            self._http_routes(),
            s.http.host,
            s.http.port,
            ssl_context=server_ssl_context(s.http),
            middlewares=[signin_redirect, access.middleware],
        )
        await self._http.start()

    async def start(self) -> None:
        """Start every part; on failure, stop what was started and re-raise."""
        check_listener(self.settings.http, insecure=self._insecure_http)
        try:
            await self._start_broker()
            if "streams" in self.roles:
                await self._start_streams()
            if "ingest" in self.roles:
                await self._start_ingest()
            await self._start_http()
            self._watch = asyncio.create_task(self.routing.watch())
        except BaseException:
            await self.stop()
            raise
        self._ready = True
        log.info(
            "carehub ready: roles=%s mllp=%s:%d http=%s://%s:%d kafka=%s%s",
            ",".join(self.roles),
            self.settings.mllp.host,
            self.mllp_port,
            "https" if self.settings.http.tls else "http",
            self.settings.http.host,
            self.http_port,
            self.bootstrap,
            " (embedded)" if self._broker else "",
        )

    async def stop_within(self, drain_s: float) -> bool:
        """``stop`` for at most ``drain_s``; False when it did not finish (the embedded broker, if any, is
        stopped regardless, so no broker process outlives the hub).

        A cancellation of the caller does not cut the drain short: a drain given up there left the
        process waiting on the loop's clean-up past ``drain_s``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_s
        stopping = asyncio.ensure_future(self.stop())
        while not stopping.done() and loop.time() < deadline:
            try:
                await asyncio.wait({stopping}, timeout=max(0.0, deadline - loop.time()))
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
        if stopping.done() and not stopping.cancelled():
            error = stopping.exception()
            if error is None:
                return True
            log.error("shutdown: a part failed to stop (%s)", type(error).__name__)
            return False
        log.warning("shutdown: not finished within %g s; exiting with work in flight (it stays on Kafka)", drain_s)
        if self._broker is not None:
            await asyncio.to_thread(self._broker.stop)
        return False

    async def stop(self) -> None:
        self._ready = False
        s = self.settings
        if self._journal_health is not None:
            await self._journal_health.stop()
            self._journal_health = None
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self._mllp is not None:
            # Two thirds of the process's drain time to answer what was received; the rest stops the other parts.
            async with _step("mllp"):
                await self._mllp.stop(grace_s=s.drain_s * MLLP_DRAIN_SHARE)
        if self._http is not None:
            async with _step("http"):
                await self._http.stop()
        if self._refusals is not None:
            await self._refusals.stop()
            self._refusals = None
        if self._publisher is not None:
            async with _step("publisher"):
                await self._publisher.stop()
        if self._app is not None:
            async with _step("streams"):
                await self._app.stop(s.drain_s * STAGE_DRAIN_SHARE)
        if self._message_feed is not None:
            async with _step("message journal feed"):
                await self._message_feed.stop()
            self._message_feed = None
        if self._webhook is not None:
            await self._webhook.close()
        if self._delivery is not None:
            async with _step("delivery journal"):
                await self._delivery.stop()
            self._delivery = None
        if self._consent is not None:
            async with _step("consents"):
                await self._consent.stop()
            self._consent = None
        if self._security_journal is not None:
            await asyncio.to_thread(self._security_journal.close)
            self._security_journal = None
        if self._broker is not None:
            async with _step("embedded broker"):
                await asyncio.to_thread(self._broker.stop)
        self._mllp = self._http = self._publisher = self._app = self._webhook = self._broker = None  # type: ignore[assignment]
