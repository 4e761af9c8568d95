"""Connectors against real peers: an MLLP listener, a FHIR server with a SMART token endpoint, Kafka."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from kafka import KafkaAdminClient

from carehub.connectors.fhir_rest import FhirRestDestination
from carehub.connectors.kafka_topic import KafkaTopicDestination
from carehub.connectors.mllp import MLLPDestination, frame
from carehub.core.errors import DeliveryError
from carehub.kafka import ensure_topics
from carehub.ops_http import HTTPServer
from tests.delivery.helpers import delivery

MSG = "MSH|^~\\&|A|RGH|B|PCP|202603011000||ADT^A01|CTRL42|P|2.5\rPID|1||MRN1^^^RGH"


class MLLPPeer:
    """A real MLLP listener answering each message with the next scripted MSA code (or silence)."""

    def __init__(self, codes: list[str]) -> None:
        self.codes = codes
        self.received: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                block = await reader.readuntil(b"\x1c\r")
                self.received.append(block[1:-2])
                code = self.codes.pop(0) if self.codes else "AA"
                if code == "silent":
                    continue
                ack = f"MSH|^~\\&|B|PCP|A|RGH|202603011000||ACK|A1|P|2.5\rMSA|{code}|CTRL42".encode()
                writer.write(frame(ack))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return f"mllp://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.close()


async def test_mllp_forward_waits_for_the_ack_and_judges_it() -> None:
    peer = MLLPPeer(["AA", "AE", "AR", "silent"])
    async with peer as endpoint:
        destination = MLLPDestination(timeout_s=0.5)
        forward = replace(delivery(1, endpoint=endpoint, channel="mllp"), payload={"hl7": MSG})
        assert await destination.send(forward) == 200
        with pytest.raises(DeliveryError) as ae:
            await destination.send(forward)
        assert not ae.value.permanent
        with pytest.raises(DeliveryError) as ar:
            await destination.send(forward)
        assert ar.value.permanent
        with pytest.raises(DeliveryError) as timeout:
            await destination.send(forward)
        assert not timeout.value.permanent and "no ACK" in timeout.value.message
        assert await destination.send(forward) == 200, "a new connection after the timeout"
        with pytest.raises(DeliveryError) as bad:
            await destination.send(replace(forward, payload={"hl7": "not hl7"}))
        assert bad.value.permanent
        await destination.close()
    assert peer.received[0] == MSG.encode()


@pytest.fixture
def key_pair(tmp_path: Path) -> tuple[Path, Any]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "hub.pem"
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return path, private.public_key()


class FhirServer:
    """A FHIR server that takes $process-message and transactions only with a token from its token endpoint."""

    def __init__(self, public_key: Any) -> None:
        self.public_key = public_key
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.tokens_issued = 0
        self.server = HTTPServer(
            [web.post("/token", self.token), web.post("/fhir/{op}", self.fhir), web.post("/fhir", self.fhir)],
            "127.0.0.1",
            0,
        )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        claims = jwt.decode(
            str(form["client_assertion"]), self.public_key, algorithms=["RS384"], audience=f"{self.base}/token"
        )
        assert claims["iss"] == claims["sub"] == "carehub-client" and form["grant_type"] == "client_credentials"
        self.tokens_issued += 1
        return web.json_response({"access_token": f"tok-{self.tokens_issued}", "expires_in": 300})

    async def fhir(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.headers), json.loads(await request.read())))
        if request.headers.get("Authorization") != f"Bearer tok-{self.tokens_issued}":
            return web.json_response({"resourceType": "OperationOutcome"}, status=401)
        return web.json_response({"resourceType": "OperationOutcome"}, status=200)


@pytest.fixture
async def fhir_server(key_pair: tuple[Path, Any]) -> AsyncIterator[FhirServer]:
    server = FhirServer(key_pair[1])
    await server.server.start()
    yield server
    await server.server.stop()


async def test_fhir_rest_uses_process_message_and_smart_backend_auth(
    fhir_server: FhirServer, key_pair: tuple[Path, Any]
) -> None:
    options = {
        "client_id": "carehub-client",
        "token_url": f"{fhir_server.base}/token",
        "private_key_file": str(key_pair[0]),
    }
    destination = FhirRestDestination(5.0, options_for=lambda _: options)
    notify = delivery(1, endpoint=f"{fhir_server.base}/fhir", channel="fhir-rest")
    task = replace(notify, action="task", payload={"resourceType": "Bundle", "type": "transaction", "entry": []})
    assert await destination.send(notify) == 200
    assert await destination.send(task) == 200
    assert fhir_server.tokens_issued == 1, "the token is cached"
    paths = [path for path, _, _ in fhir_server.requests]
    assert paths == ["/fhir/$process-message", "/fhir"]
    headers = fhir_server.requests[0][1]
    assert headers["Idempotency-Key"] == notify.idempotency_key and headers["Content-Type"] == "application/fhir+json"
    fhir_server.tokens_issued += 1  # the server rotates its token: the next call gets 401, then a fresh token
    assert await destination.send(notify) == 200
    unauthorized = FhirRestDestination(5.0)
    with pytest.raises(DeliveryError) as refused:
        await unauthorized.send(notify)
    assert refused.value.permanent and refused.value.status == 401
    await destination.close()
    await unauthorized.close()


async def test_kafka_topic_publishes_per_recipient_with_the_idempotency_key(broker: str) -> None:
    destination = KafkaTopicDestination(broker, 10.0, options_for=lambda _: {"topic": "t-out.{recipient}"})
    item = delivery(3, recipient="hie-state", channel="kafka", endpoint="kafka:ignored")
    assert await destination.send(item) == 200
    await destination.close()
    consumer = AIOKafkaConsumer("t-out.hie-state", bootstrap_servers=broker, auto_offset_reset="earliest")
    await consumer.start()
    try:
        message = await asyncio.wait_for(consumer.getone(), 10)
    finally:
        await consumer.stop()
    assert message.key == item.patient_key.encode() and json.loads(message.value) == item.payload
    assert dict(message.headers)["idempotency-key"] == item.idempotency_key.encode()


async def test_kafka_topic_is_provisioned_by_the_hubs_topic_provisioner(broker: str) -> None:
    """The channel creates a recipient's topic with carehub.kafka.ensure_topics (here: 3 partitions)."""
    topic = f"t-out.prov-{uuid.uuid4().hex[:8]}"

    async def provision(name: str) -> object:
        return await asyncio.to_thread(ensure_topics, broker, [name], 3)

    destination = KafkaTopicDestination(broker, 10.0, options_for=lambda _: {"topic": topic}, provision=provision)
    assert await destination.send(delivery(4, recipient="hie-state", channel="kafka", endpoint="kafka:x")) == 200
    await destination.close()
    admin = KafkaAdminClient(bootstrap_servers=broker)
    try:
        (described,) = admin.describe_topics([topic])
    finally:
        admin.close()
    assert len(described["partitions"]) == 3
