"""Fixtures for the MLLP adapter tests: a real listener on port 0 and TLS material."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from carehub.adapters.mllp.inbound import Assessment, InboundHandler, Publisher
from carehub.adapters.mllp.server import MLLPServer
from carehub.core.settings import MLLPSettings

TEST_SETTINGS = MLLPSettings(host="127.0.0.1", port=0, idle_timeout_s=30.0, max_message_bytes=64 * 1024)

StartServer = Callable[..., Awaitable[MLLPServer]]


@pytest.fixture
def settings() -> MLLPSettings:
    return TEST_SETTINGS


@pytest.fixture
async def serve() -> AsyncIterator[StartServer]:
    """Start real listeners on free ports; all are stopped after the test."""
    started: list[MLLPServer] = []

    async def start(
        publisher: Publisher,
        settings: MLLPSettings = TEST_SETTINGS,
        ssl_context: ssl.SSLContext | None = None,
        publish_timeout_s: float | None = None,
        assess: Assessment | None = None,
        **overrides: Any,
    ) -> MLLPServer:
        """``overrides`` replace MLLPSettings fields (e.g. ``idle_timeout_s=0.2``)."""
        effective = replace(settings, **overrides)
        handler = InboundHandler(publisher, effective, publish_timeout_s=publish_timeout_s, assess=assess)
        server = MLLPServer(handler, effective, ssl_context)
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop(grace_s=1.0)


@dataclass(frozen=True)
class TLSFiles:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, signing_key = issuer if issuer else (name, key)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(signing_key, hashes.SHA256())


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """A throwaway CA (self-signed) with one server and one client certificate."""
    base = tmp_path_factory.mktemp("tls")
    ca_key = _key()
    ca_cert = _certificate("carehub test CA", ca_key, None, ca=True)
    issuer = (ca_cert.subject, ca_key)
    server_key, client_key = _key(), _key()
    server_cert = _certificate("localhost", server_key, issuer, server=True)
    client_cert = _certificate("test sender", client_key, issuer)
    pem = serialization.Encoding.PEM
    (base / "ca.pem").write_bytes(ca_cert.public_bytes(pem))
    (base / "server.pem").write_bytes(server_cert.public_bytes(pem))
    (base / "client.pem").write_bytes(client_cert.public_bytes(pem))
    return TLSFiles(
        ca=base / "ca.pem",
        server_cert=base / "server.pem",
        server_key=_write_key(server_key, base / "server.key"),
        client_cert=base / "client.pem",
        client_key=_write_key(client_key, base / "client.key"),
    )
