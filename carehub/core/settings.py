"""Process settings: defaults, then the settings file, then the environment.

Flags given on the command line are applied last by the composition root.
With no Kafka bootstrap servers configured carehub starts its embedded broker.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from carehub.core.configfile import load_config_file

SETTINGS_FILE = "carehub.yaml"


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    bootstrap: str | None = None
    topic_prefix: str = "carehub."
    partitions: int = 4
    #: Group session timeout; Tansu holds a JoinGroup for half of it.
    session_timeout_s: float = 6.0
    #: How long the MLLP listener waits for acks=all before answering AR 207 (the broker is down).
    produce_timeout_s: float = 2.0
    #: Largest record any carehub producer writes (Kafka's message.max.bytes / max.request.size).
    #: The MLLP listener refuses, before AA, a message whose records would not fit.
    max_record_bytes: int = 1_000_000
    #: How long a stream consumer's fetch may wait for data (latency per pipeline hop on brokers
    #: that hold a fetch its full wait; Apache Kafka answers as soon as data arrives).
    fetch_max_wait_ms: int = 10
    #: A stage batch still in hand this long (its handler or the acknowledgement of its outputs slow)
    #: is reported in the log as stalled (streams.stage).
    stall_report_s: float = 300.0
    #: How long the stream worker's producer waits to fill a batch before sending it (its outputs of one
    #: stage batch go out together; 0 sends each record at once). 0 measured better on the embedded
    #: broker, where a stage's batch waits for its outputs' acknowledgement (docs/benchmarks.md).
    linger_ms: int = 0
    #: Client security, the same for every Kafka client (core.kafka_security): PLAINTEXT (the
    #: embedded broker), SSL or SASL_SSL; SASL PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    #: Put ``${CAREHUB_KAFKA_PASSWORD}`` here, or name a file with sasl_password_file; never the value.
    sasl_password: str | None = field(default=None, repr=False)
    sasl_password_file: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    #: Replicas per topic carehub creates, and the fewest it accepts on an existing topic
    #: (None: 3 when the cluster has at least 3 brokers, else 1).
    replication_factor: int | None = None
    #: min.insync.replicas for the topics it creates (None: 2 with at least 3 brokers, else 1).
    min_insync_replicas: int | None = None


@dataclass(frozen=True, slots=True)
class MLLPSettings:
    host: str = "127.0.0.1"
    port: int = 2575
    max_message_bytes: int = 1_048_576
    idle_timeout_s: float = 300.0
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    accept_message_types: tuple[str, ...] = ("ADT",)
    min_version: str = "2.1"
    max_version: str = "2.8.1"
    processing_ids: tuple[str, ...] = ("P", "T", "D")
    #: MSA-1 when the failure is unrelated to the content (broker down, internal error):
    #: "AR" as HL7 v2 says, or "AE" for senders that only retry on AE.
    system_error_ack: str = "AR"
    #: "original": AA/AE/AR whatever MSH-15/16 say; "enhanced": commit ACKs (CA/CE/CR) per MSH-15.
    ack_mode: str = "original"
    #: Messages larger than this are converted at ingest to check the CareEvent fits max_record_bytes.
    preflight_bytes: int = 16_384


@dataclass(frozen=True, slots=True)
class HTTPSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    #: TLS on the HTTP listener (PEM files); with tls_client_ca, client certificates are verified (mTLS).
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert and self.tls_key)


@dataclass(frozen=True, slots=True)
class IssuerSettings:
    """A token issuer whose bearer JWTs the HTTP endpoints accept (SMART Backend Services shape)."""

    issuer: str
    audience: str
    #: Where the issuer's signing keys are published (fetched and cached), or PEM public key files.
    jwks_url: str = ""
    public_key_files: tuple[str, ...] = ()
    algorithms: tuple[str, ...] = ("RS384", "ES384", "RS256", "ES256")
    #: The claim naming the directory recipient a token acts for (Task endpoint: its own Tasks only).
    recipient_claim: str = "carehub_recipient"
    #: CA bundle to verify an https JWKS URL with (default: the system store).
    jwks_ca_file: str = ""


@dataclass(frozen=True, slots=True)
class ClientCertificateSettings:
    """A client certificate (by subject CN, verified against http.tls_client_ca) mapped to a principal."""

    subject: str
    scopes: tuple[str, ...] = ()
    recipient: str | None = None


@dataclass(frozen=True, slots=True)
class AuthSettings:
    issuers: tuple[IssuerSettings, ...] = ()
    client_certificates: tuple[ClientCertificateSettings, ...] = ()
    #: Leeway for exp/nbf/iat against this host's clock.
    clock_skew_s: float = 60.0
    #: How long fetched JWKS are kept before they are fetched again (an unknown kid refetches sooner).
    jwks_cache_s: float = 300.0


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    #: Save-to-deploy: reload the routing map when a file in the config dir changes. Off: only an
    #: explicit reload (``carehub routes apply``, ``POST /console/routing/reload``) loads edits.
    watch: bool = True


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    timeout_s: float = 10.0
    max_attempts: int = 5
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 30.0
    #: Circuit breaker per endpoint: opens after this many failures in a row, probes after reset_s.
    breaker_failures: int = 5
    breaker_reset_s: float = 10.0
    #: Dead letters (which keep the whole payload) are deleted from the journal this long after they were parked.
    dead_letter_retention_days: float = 30.0
    #: Directory id of the care manager told of an overdue Task whose requester is not in the directory.
    overdue_owner: str = ""


@dataclass(frozen=True, slots=True)
class Settings:
    config_dir: Path = Path("config")
    app_id: str = "carehub"
    hub_base_url: str = "http://127.0.0.1:8080/fhir"
    #: Journal store: sqlite:///path or postgresql://…; empty = SQLite in the worker's data dir.
    database_url: str = ""
    #: On SIGTERM/SIGINT: how long to finish in-flight work before exiting anyway (Kafka keeps the rest).
    drain_s: float = 15.0
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    mllp: MLLPSettings = field(default_factory=MLLPSettings)
    http: HTTPSettings = field(default_factory=HTTPSettings)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    #: PID-3 without an assigning authority (CX.4): sending facility (MSH-4, else MSH-3) -> the authority
    #: its identifiers belong to. A sender not listed is its own authority (core.patient).
    default_authorities: Mapping[str, str] = field(default_factory=dict)

    @property
    def embedded_broker(self) -> bool:
        return not self.kafka.bootstrap


def _section(cls: Any, current: Any, data: Mapping[str, Any]) -> Any:
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return replace(current, **values) if values else current


def from_mapping(data: Mapping[str, Any], base: Settings | None = None) -> Settings:
    """Apply a (validated) settings document on top of ``base``."""
    s = base or Settings()
    top = {k: v for k, v in data.items() if k not in ("kafka", "mllp", "http", "delivery", "routing", "auth")}
    if "config_dir" in top:
        top["config_dir"] = Path(top["config_dir"])
    return replace(
        s,
        **top,
        kafka=_section(KafkaSettings, s.kafka, data.get("kafka", {})),
        mllp=_section(MLLPSettings, s.mllp, data.get("mllp", {})),
        http=_section(HTTPSettings, s.http, data.get("http", {})),
        delivery=_section(DeliverySettings, s.delivery, data.get("delivery", {})),
        routing=_section(RoutingSettings, s.routing, data.get("routing", {})),
        auth=auth_settings(data["auth"]) if "auth" in data else s.auth,
    )


def auth_settings(data: Mapping[str, Any]) -> AuthSettings:
    """The ``auth`` section: issuers and client certificates (lists become tuples)."""

    def tupled(item: Mapping[str, Any]) -> dict[str, Any]:
        return {k: tuple(v) if isinstance(v, list) else v for k, v in item.items()}

    return AuthSettings(
        issuers=tuple(IssuerSettings(**tupled(i)) for i in data.get("issuers", [])),
        client_certificates=tuple(ClientCertificateSettings(**tupled(c)) for c in data.get("client_certificates", [])),
        **{k: v for k, v in data.items() if k in ("clock_skew_s", "jwks_cache_s")},
    )


def from_environment(s: Settings, env: Mapping[str, str]) -> Settings:
    """CAREHUB_KAFKA_BOOTSTRAP, CAREHUB_TOPIC_PREFIX and CAREHUB_DATABASE_URL."""
    kafka = s.kafka
    if env.get("CAREHUB_KAFKA_BOOTSTRAP"):
        kafka = replace(kafka, bootstrap=env["CAREHUB_KAFKA_BOOTSTRAP"])
    if env.get("CAREHUB_TOPIC_PREFIX"):
        kafka = replace(kafka, topic_prefix=env["CAREHUB_TOPIC_PREFIX"])
    database_url = env.get("CAREHUB_DATABASE_URL") or s.database_url
    return replace(s, kafka=kafka, database_url=database_url)


def load_settings(config_dir: Path, env: Mapping[str, str] | None = None) -> Settings:
    """Settings for a config directory: its carehub.yaml (if any), then the environment."""
    environ = os.environ if env is None else env
    base = Settings(config_dir=config_dir)
    path = config_dir / SETTINGS_FILE
    if path.exists():
        data = load_config_file(path, "settings.schema.json", environ)
        base = from_mapping(data, base)
        base = replace(base, config_dir=config_dir)
    return from_environment(base, environ)
