"""Bearer JWTs from configured issuers (SMART Backend Services shape), verified with PyJWT.

A token is accepted only when its ``iss`` is a configured issuer, its header
``alg`` is one that issuer allows (never ``none`` or an HMAC), its signature
verifies against that issuer's keys (a JWKS URL fetched and cached, or static
PEM public keys), its ``aud`` is the configured audience and ``exp``/``nbf``
hold within the clock skew. Scopes come from ``scope`` (space separated) or
``scp`` (a list); the recipient binding from the issuer's recipient claim.
Every refusal is an :class:`UnauthenticatedError` whose text names the check
that failed, never the token.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiohttp
import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from carehub.adapters.fhirhttp import UnauthenticatedError
from carehub.core.errors import ConfigError
from carehub.core.principal import TOKEN, Principal
from carehub.core.settings import AuthSettings, IssuerSettings
from carehub.core.transport import insecure_url_reason

log = logging.getLogger(__name__)
#: An unknown ``kid`` fetches the JWKS again, at most this often (keys rotate; attackers spray kids).
REFETCH_MIN_S = 10.0


class TokenRefusedError(UnauthenticatedError):
    code = "invalid-token"


class JwksKeys:
    """An issuer's keys from its JWKS URL, cached for ``ttl_s``; an unknown kid refetches (rate-limited)."""

    def __init__(self, url: str, ttl_s: float, ca_file: str = "", timeout_s: float = 5.0) -> None:
        self.url = url
        self._ttl = ttl_s
        self._ssl: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._keys: dict[str, jwt.PyJWK] = {}
        self._anonymous: list[jwt.PyJWK] = []
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def _fetch(self) -> None:
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as session,
                session.get(self.url, ssl=self._ssl, allow_redirects=False) as response,
            ):
                if response.status != 200:
                    raise TokenRefusedError(f"the issuer's JWKS answered HTTP {response.status}")
                document = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError, OSError) as exc:
            log.warning("JWKS fetch failed: url=%s error=%s", self.url, type(exc).__name__)
            raise TokenRefusedError("the issuer's keys cannot be fetched") from exc
        try:
            keyset = jwt.PyJWKSet.from_dict(document)
        except jwt.PyJWKSetError as exc:
            raise TokenRefusedError("the issuer's JWKS holds no usable key") from exc
        self._keys = {k.key_id: k for k in keyset.keys if k.key_id}
        self._anonymous = [k for k in keyset.keys if not k.key_id]
        self._fetched_at = time.monotonic()
        log.info("JWKS fetched: url=%s keys=%d", self.url, len(keyset.keys))

    async def keys(self, kid: str | None) -> list[Any]:
        async with self._lock:
            age = time.monotonic() - self._fetched_at
            stale = not self._fetched_at or age > self._ttl
            unknown = kid is not None and kid not in self._keys and age > REFETCH_MIN_S
            if stale or unknown:
                await self._fetch()
        if kid is not None:
            found = self._keys.get(kid)
            return [found.key] if found is not None else []
        return [k.key for k in [*self._keys.values(), *self._anonymous]]


class StaticKeys:
    """PEM public keys read once at start-up."""

    def __init__(self, files: Iterable[str]) -> None:
        self._keys = [load_pem_public_key(Path(f).read_bytes()) for f in files]

    async def keys(self, kid: str | None) -> list[Any]:
        return list(self._keys)


class Issuer:
    def __init__(self, settings: IssuerSettings, cache_s: float) -> None:
        self.settings = settings
        self._sources: list[JwksKeys | StaticKeys] = []
        if not settings.jwks_url and not settings.public_key_files:
            raise ConfigError(f"auth issuer {settings.issuer}: give jwks_url or public_key_files", file="settings")
        unsafe = [a for a in settings.algorithms if not a.startswith(("RS", "ES", "PS", "EdDSA"))]
        if unsafe:
            raise ConfigError(
                f"auth issuer {settings.issuer}: only public-key algorithms, not {unsafe}", file="settings"
            )
        if settings.jwks_url and (reason := insecure_url_reason(settings.jwks_url)) is not None:
            raise ConfigError(f"auth issuer {settings.issuer}: jwks_url {reason}", file="settings")
        if settings.jwks_url:
            self._sources.append(JwksKeys(settings.jwks_url, cache_s, settings.jwks_ca_file))
        if settings.public_key_files:
            try:
                self._sources.append(StaticKeys(settings.public_key_files))
            except (OSError, ValueError) as exc:
                raise ConfigError(
                    f"auth issuer {settings.issuer}: cannot load public_key_files: {type(exc).__name__}",
                    file="settings",
                ) from exc

    async def keys(self, kid: str | None) -> list[Any]:
        found: list[Any] = []
        for source in self._sources:
            found.extend(await source.keys(kid))
        return found


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    scope = claims.get("scope", claims.get("scp", ""))
    if isinstance(scope, str):
        return frozenset(scope.split())
    if isinstance(scope, list):
        return frozenset(str(s) for s in scope)
    return frozenset()


_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "the token has expired"),
    (jwt.ImmatureSignatureError, "the token is not valid yet"),
    (jwt.InvalidAudienceError, "the token is for another audience"),
    (jwt.InvalidIssuerError, "the token is from another issuer"),
    (jwt.MissingRequiredClaimError, "the token lacks a required claim"),
    (jwt.InvalidSignatureError, "the token signature does not verify"),
)


class TokenVerifier:
    """Verifies bearer tokens against the configured issuers."""

    def __init__(self, settings: AuthSettings) -> None:
        self._issuers = {i.issuer: Issuer(i, settings.jwks_cache_s) for i in settings.issuers}
        self._skew = settings.clock_skew_s

    @property
    def configured(self) -> bool:
        return bool(self._issuers)

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError as exc:
            raise TokenRefusedError("the bearer token is not a JWT") from exc
        issuer = self._issuers.get(str(unverified.get("iss", "")))
        if issuer is None:
            raise TokenRefusedError("the token is from an issuer this hub does not trust")
        allowed = list(issuer.settings.algorithms)
        if header.get("alg") not in allowed:
            raise TokenRefusedError("the token's signing algorithm is not allowed")
        keys = await issuer.keys(header.get("kid"))
        if not keys:
            raise TokenRefusedError("no key of the issuer matches the token")
        claims = self._decode(token, keys, issuer.settings, allowed)
        recipient = claims.get(issuer.settings.recipient_claim)
        return Principal(
            kind=TOKEN,
            subject=str(claims["sub"]),
            issuer=issuer.settings.issuer,
            scopes=_scopes(claims),
            recipient=str(recipient) if recipient else None,
        )

    def _decode(self, token: str, keys: list[Any], issuer: IssuerSettings, allowed: list[str]) -> dict[str, Any]:
        failure: Exception | None = None
        for key in keys:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key,
                    algorithms=allowed,
                    audience=issuer.audience,
                    issuer=issuer.issuer,
                    leeway=self._skew,
                    options={"require": ["exp", "iss", "aud", "sub"]},
                )
                return claims
            except jwt.InvalidSignatureError as exc:  # try the next key
                failure = exc
            except jwt.InvalidTokenError as exc:
                failure = exc
                break
        reason = next((text for kind, text in _REASONS if isinstance(failure, kind)), "the token is not valid")
        raise TokenRefusedError(reason) from failure
