"""Authorization for FHIR REST recipients: a static bearer token or SMART Backend Services.

SMART Backend Services (client-credentials with a signed JWT client
assertion): the hub signs ``{iss, sub = client_id, aud = token_url, exp, jti}``
with its private key (RS384 or ES384), posts it to the token URL with
``grant_type=client_credentials`` and caches the access token until shortly
before it expires. Options come from the recipient's ``connection`` block.

The assertion, the token request and the reading of the answer are the one
SMART client of carehub: the FHIR source reader (carehub/connectors/fhir_source.py)
posts the same form over its synchronous session.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import jwt

from carehub.core.errors import DeliveryError
from carehub.core.transport import insecure_url_reason

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def client_assertion(client_id: str, token_url: str, key_pem: bytes | str, algorithm: str, key_id: str = "") -> str:
    """The signed JWT a SMART backend client presents (valid for 5 minutes)."""
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": token_url, "exp": now + 300, "jti": uuid.uuid4().hex}
    headers = {"kid": key_id} if key_id else None
    return jwt.encode(claims, key_pem, algorithm=algorithm, headers=headers)


def token_request(
    client_id: str, token_url: str, key_pem: bytes | str, algorithm: str, key_id: str, scope: str
) -> dict[str, str]:
    """The client-credentials form a SMART backend client posts to the token URL."""
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": client_assertion(client_id, token_url, key_pem, algorithm, key_id),
        "scope": scope,
    }


@dataclass
class _Token:
    value: str
    expires_at: float


def access_token(body: object, now: float) -> _Token | None:
    """The token of a token-endpoint answer, to be used until 30 s before it expires; None without one."""
    if not isinstance(body, dict) or "access_token" not in body:
        return None
    lifetime = float(body.get("expires_in", 300))
    return _Token(str(body["access_token"]), now + max(lifetime - 30.0, 1.0))


class TokenSource:
    """Bearer tokens per recipient, fetched and cached as its options say."""

    def __init__(self, timeout_s: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._cache: dict[str, _Token] = {}

    def forget(self, recipient_id: str) -> None:
        self._cache.pop(recipient_id, None)

    async def header(self, recipient_id: str, options: Mapping[str, str], session: aiohttp.ClientSession) -> str | None:
        """``Bearer <token>`` or None when the recipient needs no authorization."""
        if options.get("bearer_token"):
            return f"Bearer {options['bearer_token']}"
        if not options.get("client_id"):
            return None
        cached = self._cache.get(recipient_id)
        if cached is None or cached.expires_at <= time.time():
            cached = await self._fetch(options, session)
            self._cache[recipient_id] = cached
        return f"Bearer {cached.value}"

    async def _fetch(self, options: Mapping[str, str], session: aiohttp.ClientSession) -> _Token:
        token_url = options.get("token_url", "")
        key_file = options.get("private_key_file", "")
        if not token_url or not key_file:
            raise DeliveryError("SMART backend auth needs token_url and private_key_file", permanent=True)
        refused = insecure_url_reason(token_url)
        if refused is not None:
            raise DeliveryError(f"token_url refused: {refused}", permanent=True)
        try:
            key = Path(key_file).read_bytes()
        except OSError as exc:
            raise DeliveryError(f"cannot read the signing key: {exc.strerror}", permanent=True) from exc
        form = token_request(
            options["client_id"],
            token_url,
            key,
            options.get("algorithm", "RS384"),
            options.get("key_id", ""),
            options.get("scope", "system/*.write"),
        )
        try:
            async with session.post(token_url, data=form, timeout=self._timeout, allow_redirects=False) as response:
                body = await response.json(content_type=None) if response.status == 200 else {}
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise DeliveryError(f"token endpoint unreachable: {type(exc).__name__}", permanent=False) from exc
        token = access_token(body, time.time()) if status == 200 else None
        if token is None:
            permanent = 400 <= status < 500 and status not in (408, 429)
            raise DeliveryError(f"token endpoint answered HTTP {status}", permanent=permanent, status=status)
        return token
