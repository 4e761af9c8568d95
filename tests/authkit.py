"""A real token issuer for tests: an EC key made here, its JWKS served over HTTP, tokens minted with PyJWT.

``TEST_ISSUER`` is started once per session by the ``issuer`` fixture
(tests/conftest.py); hubs built by the test helpers trust it
(``auth_settings()``), and tests call endpoints with ``TEST_ISSUER.headers(...)``.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec

from carehub.core.principal import CONSENT_READ, CONSENT_WRITE, OPS_READ, OPS_WRITE, TASK_READ, TASK_WRITE
from carehub.core.settings import AuthSettings, IssuerSettings
from carehub.ops_http import HTTPServer

ISSUER = "https://idp.test/realms/carehub"
AUDIENCE = "https://carehub.test"
CONSENT_ADMIN = (CONSENT_READ, CONSENT_WRITE)
OPS = (OPS_READ, OPS_WRITE)
RECIPIENT = (TASK_READ, TASK_WRITE)


class Issuer:
    def __init__(self, issuer: str = ISSUER, audience: str = AUDIENCE) -> None:
        self.issuer = issuer
        self.audience = audience
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.kid = uuid.uuid4().hex[:12]
        self.fetches = 0
        self._server: HTTPServer | None = None

    def jwks(self) -> dict[str, Any]:
        jwk = jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "ES256"}]}

    async def _serve_jwks(self, _: web.Request) -> web.Response:
        self.fetches += 1
        return web.json_response(self.jwks())

    async def start(self) -> None:
        if self._server is None:
            self._server = HTTPServer([web.get("/jwks.json", self._serve_jwks)], "127.0.0.1", 0)
            await self._server.start()

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()
            self._server = None

    @property
    def started(self) -> bool:
        return self._server is not None

    @property
    def jwks_url(self) -> str:
        assert self._server is not None, "use the `issuer` fixture: the JWKS server is not started"
        return f"http://127.0.0.1:{self._server.port}/jwks.json"

    def issuer_settings(self) -> IssuerSettings:
        return IssuerSettings(issuer=self.issuer, audience=self.audience, jwks_url=self.jwks_url, algorithms=("ES256",))

    def auth_settings(self) -> AuthSettings:
        return AuthSettings(issuers=(self.issuer_settings(),), clock_skew_s=5.0)

    def token(
        self,
        *scopes: str,
        recipient: str | None = None,
        sub: str = "test-client",
        lifetime_s: float = 300,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            "aud": self.audience,
            "iat": now,
            "exp": now + int(lifetime_s),
            "jti": uuid.uuid4().hex,
            "scope": " ".join(scopes),
        }
        if recipient is not None:
            body["carehub_recipient"] = recipient
        body.update(claims)
        return jwt.encode(body, self.key, algorithm="ES256", headers={"kid": self.kid})

    def headers(self, *scopes: str, recipient: str | None = None, **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(*scopes, recipient=recipient, **claims)}"}


TEST_ISSUER = Issuer()


def trust_test_issuer(config_dir: Path, issuer: Issuer = TEST_ISSUER) -> None:
    """Make a config directory's carehub.yaml trust the test issuer (for hubs run as ``carehub run``)."""
    settings = config_dir / "carehub.yaml"
    text = settings.read_text(encoding="utf-8") if settings.exists() else ""
    settings.write_text(
        text
        + "\nauth:\n  clock_skew_s: 5\n  issuers:\n"
        + f"    - issuer: {issuer.issuer}\n      audience: {issuer.audience}\n"
        + f"      jwks_url: {issuer.jwks_url}\n      algorithms: [ES256]\n",
        encoding="utf-8",
    )
