"""A whole hub against a Kafka listener that only speaks mutual TLS.

The embedded broker (Tansu) has no TLS listener, so it runs here behind a
TLS-terminating TCP front (certificates made by trustme, client certificates
required) and advertises the front's address: every Kafka connection any
carehub client makes (kafka-python admin provisioning the topics, the
aiokafka ingest producer, the consent table and writer, the Faust stream
app) must complete a TLS handshake with a client certificate, or it gets
nothing. SASL cannot be tested this way; tests/core/test_kafka_security.py
covers its settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import trustme

from carehub.adapters.mllp.server import make_server_ssl_context
from carehub.broker import _accepts_connections, _broker_binary, free_port
from carehub.connectors.mllp import MLLPClient, ack_code
from carehub.core.errors import BrokerError
from carehub.core.kafka_security import KafkaSecurity
from carehub.core.settings import KafkaSettings
from carehub.hub import Hub
from carehub.kafka import KafkaPublisher
from tests.conftest import CONFIG, FEED
from tests.integration.conftest import eventually, hub_settings

pytestmark = pytest.mark.integration


@dataclass
class TlsKafka:
    bootstrap: str
    ca: str
    cert: str
    key: str
    handshakes: int = 0


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def tls_kafka(tmp_path: Path) -> AsyncIterator[TlsKafka]:
    ca = trustme.CA()
    server, client = ca.issue_cert("127.0.0.1", "localhost"), ca.issue_cert("carehub.test", common_name="carehub")
    paths = {name: tmp_path / f"{name}.pem" for name in ("ca", "server", "server-key", "client", "client-key")}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    server.cert_chain_pems[0].write_to_path(str(paths["server"]))
    server.private_key_pem.write_to_path(str(paths["server-key"]))
    client.cert_chain_pems[0].write_to_path(str(paths["client"]))
    client.private_key_pem.write_to_path(str(paths["client-key"]))
    inner, outer = free_port(), free_port()
    broker = subprocess.Popen(
        [_broker_binary(), "broker", "--listener-url", f"tcp://127.0.0.1:{inner}",
         "--advertised-listener-url", f"tcp://127.0.0.1:{outer}", "--storage-engine", "memory://tansu/"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    found = TlsKafka(f"127.0.0.1:{outer}", str(paths["ca"]), str(paths["client"]), str(paths["client-key"]))

    async def front(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        found.handshakes += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", inner)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    context = make_server_ssl_context(paths["server"], paths["server-key"], paths["ca"])  # client certs required
    listener = await asyncio.start_server(front, "127.0.0.1", outer, ssl=context)
    for _ in range(200):
        if _accepts_connections("127.0.0.1", inner):
            break
        await asyncio.sleep(0.05)
    try:
        yield found
    finally:
        listener.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(listener.wait_closed(), 5)
        broker.terminate()
        broker.wait(timeout=10)


def _ssl(tls: TlsKafka, **changes: object) -> KafkaSettings:
    settings = KafkaSettings(
        bootstrap=tls.bootstrap,
        security_protocol="SSL",
        ssl_cafile=tls.ca,
        ssl_certfile=tls.cert,
        ssl_keyfile=tls.key,
    )
    return replace(settings, **changes)  # type: ignore[arg-type]


async def test_a_hub_runs_end_to_end_over_mutual_tls_kafka(tls_kafka: TlsKafka, tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config, ignore=shutil.ignore_patterns("schemas"))
    settings = hub_settings(config, tls_kafka.bootstrap)
    kafka = _ssl(tls_kafka, topic_prefix=settings.kafka.topic_prefix, session_timeout_s=6.0)
    hub = Hub(replace(settings, kafka=kafka))
    await hub.start()  # topics provisioned by kafka-python admin, consents read, Faust joined: all over TLS
    try:
        client = MLLPClient("127.0.0.1", hub.mllp_port)
        ack = await client.send((FEED / "02-a01-admit-rivera.hl7").read_bytes())
        await client.close()
        assert ack_code(ack) == "AA", "acks=all through the TLS listener"
        await eventually(lambda: hub.metrics.total("normalized") >= 1, timeout_s=60)
    finally:
        await hub.stop()
    assert tls_kafka.handshakes >= 4, "every client connected through the TLS front"


async def test_clients_without_tls_or_without_a_certificate_get_nothing(tls_kafka: TlsKafka) -> None:
    for kafka in (KafkaSettings(bootstrap=tls_kafka.bootstrap), _ssl(tls_kafka, ssl_certfile=None, ssl_keyfile=None)):
        publisher = KafkaPublisher(tls_kafka.bootstrap, "t.tls", 2.0, security=KafkaSecurity.from_settings(kafka))
        with pytest.raises(BrokerError):
            await asyncio.wait_for(publisher.start(), 30)
        with contextlib.suppress(Exception):
            await publisher.stop()
