"""Kafka client security, built once and passed identically to every client; replication refusals.

A SASL or TLS Kafka broker cannot be run here (the embedded broker, Tansu,
speaks PLAINTEXT only), so the SASL/SSL part checks the keyword arguments
each real client object ends up with; the replication part runs against the
embedded broker.
"""

from __future__ import annotations

import ssl
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from carehub.connectors.kafka_topic import KafkaTopicDestination
from carehub.core.errors import BrokerError, ConfigError
from carehub.core.kafka_security import KafkaSecurity
from carehub.core.metrics import Metrics
from carehub.core.settings import KafkaSettings
from carehub.core.topics import Topics
from carehub.hub import Hub
from carehub.kafka import KafkaPublisher, ensure_topics, replication_for
from carehub.streams.app import StreamWorker
from carehub.streams.consent.store import ConsentTable, ConsentWriter
from carehub.streams.context import StreamDeps
from carehub.streams.delivery_policy import RetryPolicy
from carehub.streams.notify import Hub as HubIdentity
from carehub.streams.routing.source import ReloadingRoutingMap
from tests.conftest import CONFIG
from tests.integration.conftest import hub_settings


@pytest.fixture
def tls_files(tmp_path: Path) -> dict[str, str]:
    ca = trustme.CA()
    client = ca.issue_cert("carehub-ingest.test", common_name="carehub-ingest")
    files = {"ca": tmp_path / "ca.pem", "cert": tmp_path / "client.pem", "key": tmp_path / "client.key"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    client.cert_chain_pems[0].write_to_path(str(files["cert"]))
    client.private_key_pem.write_to_path(str(files["key"]))
    (tmp_path / "password").write_text("s3cret-from-a-file\n")
    return {k: str(v) for k, v in files.items()} | {"password": str(tmp_path / "password")}


def _sasl(files: dict[str, str], mechanism: str = "SCRAM-SHA-512") -> KafkaSettings:
    return KafkaSettings(
        bootstrap="kafka1.example.org:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism=mechanism,
        sasl_username="carehub-ingest",
        sasl_password_file=files["password"],
        ssl_cafile=files["ca"],
        ssl_certfile=files["cert"],
        ssl_keyfile=files["key"],
    )


def _client_view(client: Any) -> tuple[Any, ...]:
    return (
        client._security_protocol,
        client._sasl_mechanism,
        client._sasl_plain_username,
        client._sasl_plain_password,
        client._ssl_context.verify_mode if client._ssl_context else None,
    )


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_every_client_gets_the_same_sasl_ssl_settings(tls_files: dict[str, str], mechanism: str) -> None:
    kafka = _sasl(tls_files, mechanism)
    security = KafkaSecurity.from_settings(kafka)
    assert "s3cret" not in repr(security), "the password is never in a repr (or a log line)"
    assert "hunter2" not in repr(replace(kafka, sasl_password="hunter2", sasl_password_file=None))
    expected = ("SASL_SSL", mechanism, "carehub-ingest", "s3cret-from-a-file", ssl.CERT_REQUIRED)

    publisher = KafkaPublisher("kafka1.example.org:9093", "t.in", 2.0, security=security)
    writer = ConsentWriter("kafka1.example.org:9093", "t.consents", security=security)
    views = {
        "ingest publisher": _client_view(publisher._producer.client),
        "consent writer": _client_view(writer._producer.client),
    }
    assert set(views.values()) == {expected}, views
    table = ConsentTable("kafka1.example.org:9093", "t.consents", security=security)
    destination = KafkaTopicDestination("kafka1.example.org:9093", 1.0, security=security)
    assert table._security is security and destination._security is security

    context = security.ssl_context()
    assert context is not None and context.check_hostname and context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert len(context.get_ca_certs()) == 1, "the configured CA, not the system store"
    for kwargs in (security.aiokafka(), security.kafka_python()):
        assert {k: v for k, v in kwargs.items() if k != "ssl_context"} == {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": mechanism,
            "sasl_plain_username": "carehub-ingest",
            "sasl_plain_password": "s3cret-from-a-file",
        }
        assert isinstance(kwargs["ssl_context"], ssl.SSLContext)

    deps = StreamDeps(
        topics=Topics("t."),
        routing=ReloadingRoutingMap(CONFIG),
        destinations={},
        retry=RetryPolicy(1, 0.1, 0.1),
        hub=HubIdentity(base_url="https://hub.example.org/fhir"),
        metrics=Metrics(),
    )
    worker = StreamWorker("security-test", "kafka1.example.org:9093", kafka, deps)
    producer = AIOKafkaProducer(**worker._producer_options)  # the one producer every stage sends with
    consumers = [AIOKafkaConsumer(**stage.consumer_options) for stage in worker.stages]
    worker_views = {_client_view(producer.client), *(_client_view(c._client) for c in consumers)}
    assert worker_views == {expected}, worker_views
    assert len(worker.stages) >= 6, "route (with normalize), deliver and the retry tiers at least"
    await producer.client.close()
    for consumer in consumers:
        await consumer._client.close()
    await publisher._producer.client.close()
    await writer._producer.client.close()


def test_ssl_only_with_a_client_certificate(tls_files: dict[str, str]) -> None:
    kafka = KafkaSettings(security_protocol="SSL", ssl_cafile=tls_files["ca"], ssl_certfile=tls_files["cert"],
                          ssl_keyfile=tls_files["key"])  # fmt: skip
    security = KafkaSecurity.from_settings(kafka)
    assert security.aiokafka().keys() == {"security_protocol", "ssl_context"}
    assert KafkaSecurity.from_settings(KafkaSettings()).aiokafka() == {"security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"security_protocol": "SASL_PLAINTEXT"}, "security_protocol must be one of"),
        ({"sasl_mechanism": "GSSAPI"}, "SASL_SSL needs sasl_mechanism"),
        ({"sasl_password_file": None}, "needs sasl_username and sasl_password"),
        ({"security_protocol": "SSL"}, "sasl_mechanism is set but security_protocol is not SASL_SSL"),
        ({"ssl_keyfile": None}, "ssl_certfile and ssl_keyfile go together"),
        ({"sasl_password_file": "/nonexistent/password"}, "cannot read sasl_password_file"),
    ],
)
def test_incomplete_security_settings_are_refused(
    tls_files: dict[str, str], changes: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        KafkaSecurity.from_settings(replace(_sasl(tls_files), **changes))


def test_default_replication_follows_the_cluster_size() -> None:
    assert replication_for(1) == replication_for(2) == type(replication_for(1))(1, 1)
    assert (replication_for(3).factor, replication_for(3).min_insync) == (3, 2)
    assert (replication_for(5, 4, 3).factor, replication_for(5, 4, 3).min_insync) == (4, 3)
    with pytest.raises(BrokerError, match="exceeds replication_factor"):
        replication_for(3, 2, 3)


def test_a_topic_with_fewer_replicas_than_configured_is_refused(broker: str) -> None:
    ensure_topics(broker, ["t.rf.thin"], 1)  # the embedded default: one copy
    with pytest.raises(BrokerError, match=r"refusing to start: topic\(s\) t.rf.thin \(1\) have fewer replicas"):
        ensure_topics(broker, ["t.rf.thin"], 1, replication_factor=2)
    with pytest.raises(BrokerError, match="replication_factor 2 needs at least 2 brokers, the cluster has 1"):
        ensure_topics(broker, ["t.rf.new"], 1, replication_factor=2)


async def test_ingest_refuses_to_start_on_an_under_replicated_inbound_topic(broker: str, tmp_path: Path) -> None:
    settings = hub_settings(tmp_path / "config", broker)
    ensure_topics(broker, [Topics(settings.kafka.topic_prefix).hl7v2_inbound], 1)
    settings = replace(settings, config_dir=CONFIG)
    hub = Hub(replace(settings, kafka=replace(settings.kafka, replication_factor=2)), roles=("ingest",))
    with pytest.raises(BrokerError, match="hl7v2.inbound \\(1\\) have fewer replicas than kafka.replication_factor 2"):
        await hub.start()
    assert hub.mllp_port == 0, "the MLLP listener never opened"
