"""The embedded broker answers Kafka requests, and topics can be provisioned on it."""

from __future__ import annotations

from kafka import KafkaAdminClient

from carehub.broker import EmbeddedBroker
from carehub.kafka import ensure_topics


def test_topics_are_created_once_and_compaction_is_accepted(broker: str) -> None:
    ensure_topics(broker, ["t.broker.a", "t.broker.b"], partitions=3, compacted=["t.broker.b"])
    ensure_topics(broker, ["t.broker.a", "t.broker.b"], partitions=3)  # idempotent
    admin = KafkaAdminClient(bootstrap_servers=broker)
    try:
        described = {t["name"]: t for t in admin.describe_topics(["t.broker.a", "t.broker.b"])}
    finally:
        admin.close()
    assert len(described["t.broker.a"]["partitions"]) == 3


def test_a_second_broker_starts_on_its_own_port_and_stops() -> None:
    with EmbeddedBroker() as other:
        assert other.running
        ensure_topics(other.bootstrap, ["t.broker.c"], partitions=1)
    assert not other.running
