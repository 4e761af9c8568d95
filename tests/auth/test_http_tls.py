"""TLS and mutual TLS on the HTTP listener, certificates made by the test (trustme), and the plain-HTTP refusal."""

from __future__ import annotations

import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import trustme

from carehub.adapters.httpauth import Access
from carehub.core.errors import ConfigError
from carehub.core.metrics import Metrics
from carehub.core.principal import OPS_READ
from carehub.core.settings import AuthSettings, ClientCertificateSettings, HTTPSettings, Settings
from carehub.hub import Hub
from carehub.ops_http import HTTPServer, check_listener, ops_routes, server_ssl_context
from tests.authkit import Issuer
from tests.conftest import CONFIG


@dataclass
class Pki:
    ca: trustme.CA
    ca_file: Path
    server_cert: Path
    server_key: Path

    def client(self, tmp: Path, name: str, ca: trustme.CA | None = None) -> tuple[str, str]:
        cert = (ca or self.ca).issue_cert(f"{name}.test", common_name=name)
        cert_file, key_file = tmp / f"{name}.crt", tmp / f"{name}.key"
        cert.cert_chain_pems[0].write_to_path(str(cert_file))
        cert.private_key_pem.write_to_path(str(key_file))
        return str(cert_file), str(key_file)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    files = Pki(ca, tmp_path / "ca.pem", tmp_path / "server.crt", tmp_path / "server.key")
    ca.cert_pem.write_to_path(str(files.ca_file))
    server.cert_chain_pems[0].write_to_path(str(files.server_cert))
    server.private_key_pem.write_to_path(str(files.server_key))
    return files


@pytest.fixture
async def listener(pki: Pki, issuer: Issuer) -> AsyncIterator[HTTPServer]:
    http = HTTPSettings("127.0.0.1", 0, str(pki.server_cert), str(pki.server_key), str(pki.ca_file))
    auth = AuthSettings(
        issuers=issuer.auth_settings().issuers,
        client_certificates=(ClientCertificateSettings("ops-console", (OPS_READ,)),),
    )
    access = Access(auth)
    server = HTTPServer(
        ops_routes(Metrics(), lambda: True),
        http.host,
        http.port,
        ssl_context=server_ssl_context(http),
        middlewares=[access.middleware],
    )
    await server.start()
    yield server
    await server.stop()


def _context(pki: Pki, cert: tuple[str, str] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    if cert is not None:
        context.load_cert_chain(*cert)
    return context


async def _get(url: str, context: ssl.SSLContext | bool, headers: dict[str, str] | None = None) -> int:
    async with aiohttp.ClientSession() as http, http.get(url, ssl=context, headers=headers or {}) as response:
        return response.status


async def test_https_with_a_token_or_a_mapped_client_certificate(
    listener: HTTPServer, pki: Pki, issuer: Issuer, tmp_path: Path
) -> None:
    url = f"https://127.0.0.1:{listener.port}/metrics"
    assert await _get(f"https://127.0.0.1:{listener.port}/health", _context(pki)) == 200
    assert await _get(url, _context(pki)) == 401, "TLS alone is not authentication"
    assert await _get(url, _context(pki), issuer.headers(OPS_READ)) == 200, "a token over TLS, no certificate"
    assert await _get(url, _context(pki, pki.client(tmp_path, "ops-console"))) == 200, "mTLS identity"
    assert await _get(url, _context(pki, pki.client(tmp_path, "someone-else"))) == 401, "unmapped certificate"
    foreign = trustme.CA()
    with pytest.raises(aiohttp.ClientError):  # a certificate from another CA does not even complete the handshake
        await _get(url, _context(pki, pki.client(tmp_path, "ops-console-forged", foreign)))
    with pytest.raises(aiohttp.ClientError):  # plain HTTP to the TLS port gets nothing
        await _get(f"http://127.0.0.1:{listener.port}/metrics", False)


def test_plain_http_on_a_public_address_is_refused_unless_insecure(pki: Pki) -> None:
    with pytest.raises(ConfigError, match="refusing to serve plain HTTP on 0.0.0.0"):
        check_listener(HTTPSettings("0.0.0.0", 8080))
    check_listener(HTTPSettings("0.0.0.0", 8080), insecure=True)
    check_listener(HTTPSettings("0.0.0.0", 8080, str(pki.server_cert), str(pki.server_key)))
    for loopback in ("127.0.0.1", "::1", "localhost"):
        check_listener(HTTPSettings(loopback, 8080))


async def test_the_hub_refuses_before_it_starts_anything() -> None:
    hub = Hub(Settings(http=HTTPSettings("0.0.0.0", 0)))
    with pytest.raises(ConfigError, match="plain HTTP"):
        await hub.start()
    assert hub._broker is None, "nothing was started"


def test_carehub_run_on_a_public_address_without_tls_exits_with_a_clear_message() -> None:
    carehub = Path(sys.executable).parent / "carehub"
    proc = subprocess.run(
        [str(carehub), "run", "--http-host", "0.0.0.0", "--config-dir", str(CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "refusing to serve plain HTTP on 0.0.0.0" in proc.stderr and "--insecure" in proc.stderr
