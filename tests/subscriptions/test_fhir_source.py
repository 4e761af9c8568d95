"""fhirclient against the source server over HTTP: bearer tokens, SMART Backend Services, Subscriptions."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from carehub.commands import subscribe
from carehub.connectors.fhir_source import BearerAuth, FhirSource, SmartBackendAuth, SourceError
from carehub.streams.subscriptions.config import load_subscriptions
from carehub.streams.subscriptions.resource import subscription_resource
from tests.subscriptions.conftest import SOURCE_TOKEN, subscriptions_yaml
from tests.subscriptions.fixtures import patient
from tests.subscriptions.source_server import SourceServer

pytestmark = pytest.mark.integration


def _key_pair(tmp_path: Path, name: str) -> tuple[Path, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path = tmp_path / f"{name}.pem"
    path.write_bytes(pem)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return path, public.decode()


@pytest.fixture
async def smart_source(tmp_path: Path) -> AsyncIterator[tuple[SourceServer, Path]]:
    key_file, public = _key_pair(tmp_path, "client")
    server = SourceServer(client_public_key=public, client_id="carehub-client")
    await server.start()
    server.put(patient())
    yield server, key_file
    await server.stop()


async def test_smart_backend_services_token_then_read(smart_source: tuple[SourceServer, Path]) -> None:
    server, key_file = smart_source
    auth = SmartBackendAuth(server.token_url, "carehub-client", str(key_file), key_id="k1")
    client = FhirSource(server.base_url, auth)
    found = await asyncio.to_thread(client.read, f"{server.base_url}/Patient/p-rivera")
    assert found["identifier"][0]["value"] == "MRN100234"
    await asyncio.to_thread(client.read, "Patient/p-rivera")
    assert server.requests.count("POST /token") == 1, "the token is cached until it expires"


async def test_a_wrong_key_or_token_is_a_source_error(smart_source: tuple[SourceServer, Path], tmp_path: Path) -> None:
    server, _ = smart_source
    other_key, _ = _key_pair(tmp_path, "intruder")
    intruder = FhirSource(server.base_url, SmartBackendAuth(server.token_url, "carehub-client", str(other_key)))
    with pytest.raises(SourceError, match="token endpoint answered 401"):
        await asyncio.to_thread(intruder.read, "Patient/p-rivera")
    with pytest.raises(SourceError, match="401"):
        await asyncio.to_thread(FhirSource(server.base_url, BearerAuth("guess")).read, "Patient/p-rivera")
    with pytest.raises(SourceError, match="another server"):
        await asyncio.to_thread(FhirSource(server.base_url).read, "https://elsewhere.example/fhir/Patient/1")


async def test_subscribe_creates_then_updates_the_backport_subscription(source: SourceServer, tmp_path: Path) -> None:
    (tmp_path / "subscriptions.yaml").write_text(subscriptions_yaml(source.base_url))
    args = argparse.Namespace(source="ehr", config_dir=tmp_path)
    assert await asyncio.to_thread(subscribe.run, args) == 0  # no receiver: the handshake fails, creation holds
    assert await asyncio.to_thread(subscribe.run, args) == 0
    assert len(source.subscriptions) == 1
    stored = next(iter(source.subscriptions.values())).resource
    config = load_subscriptions(tmp_path)
    src = config.sources[0]
    assert {k: v for k, v in stored.items() if k != "id"} == subscription_resource(src, src.subscriptions[0])
    assert stored["criteria"] == "http://hl7.org/SubscriptionTopic/admission"
    assert stored["channel"]["_payload"]["extension"][0]["valueCode"] == "id-only"
    assert stored["channel"]["extension"][0]["valueUnsignedInt"] == 60
    assert stored["_criteria"]["extension"][0]["valueString"] == "Encounter?status=in-progress,finished"
    assert any(r.startswith("PUT /fhir/Subscription/") for r in source.requests)
    assert SOURCE_TOKEN not in str(stored), "the source's token is not the subscription's secret"


async def test_subscribe_refuses_an_unknown_source_or_a_missing_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "subscriptions.yaml").write_text(
        subscriptions_yaml("http://127.0.0.1:1/fhir").replace(
            "secret: subscription-secret-0001\n        heartbeat_period_s: 60",
            "secret: ''\n        heartbeat_period_s: 60",
        )
    )
    assert subscribe.run(argparse.Namespace(source="nobody", config_dir=tmp_path)) == 2
    assert "no source named 'nobody'" in capsys.readouterr().err
    assert subscribe.run(argparse.Namespace(source="ehr", config_dir=tmp_path)) == 2
    assert "subscriptions.yaml:16: subscription 'encounters' has an empty secret" in capsys.readouterr().err


def test_r5_subscription_resource(tmp_path: Path) -> None:
    (tmp_path / "subscriptions.yaml").write_text(
        subscriptions_yaml("https://ehr/fhir").replace(
            "    facility: RGH\n    supports_events: true",
            "    facility: RGH\n    fhir_version: r5\n    supports_events: true",
            1,
        )
    )
    src = load_subscriptions(tmp_path).sources[0]
    resource = subscription_resource(src, src.subscriptions[0])
    assert resource["topic"] == "http://hl7.org/SubscriptionTopic/admission"
    assert resource["channelType"]["code"] == "rest-hook" and resource["content"] == "id-only"
    assert resource["filterBy"] == [
        {"resourceType": "Encounter", "filterParameter": "status", "value": "in-progress,finished"}
    ]
    assert resource["parameter"] == [{"name": "X-Carehub-Subscription-Secret", "value": "subscription-secret-0001"}]
    assert resource["heartbeatPeriod"] == 60
