"""The token verifier against a real JWKS server: caching, key rotation, static keys, algorithm confusion."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from carehub.adapters.fhirhttp import UnauthenticatedError
from carehub.adapters.httpauth import tokens
from carehub.adapters.httpauth.tokens import TokenVerifier
from carehub.core.errors import ConfigError
from carehub.core.principal import CONSENT_READ, TASK_READ
from carehub.core.settings import AuthSettings, IssuerSettings
from tests.authkit import Issuer


async def test_keys_are_cached_and_a_rotated_key_is_fetched(monkeypatch: pytest.MonkeyPatch) -> None:
    idp = Issuer(issuer="https://rotating.test/idp")
    await idp.start()
    try:
        verifier = TokenVerifier(AuthSettings(issuers=(idp.issuer_settings(),), jwks_cache_s=300))
        for _ in range(3):
            who = await verifier.verify(idp.token(CONSENT_READ, TASK_READ, recipient="cbo-foodbank", sub="client-7"))
        assert (who.subject, who.issuer, who.recipient) == ("client-7", "https://rotating.test/idp", "cbo-foodbank")
        assert who.scopes == {CONSENT_READ, TASK_READ}
        assert idp.fetches == 1, "the JWKS is fetched once and cached"

        idp.key, idp.kid = ec.generate_private_key(ec.SECP256R1()), "rotated-key"
        rotated = idp.token(CONSENT_READ)
        with pytest.raises(UnauthenticatedError, match="no key of the issuer matches"):
            await verifier.verify(rotated)  # an unknown kid right after a fetch: not refetched (rate limit)
        monkeypatch.setattr(tokens, "REFETCH_MIN_S", 0.0)
        assert (await verifier.verify(rotated)).subject == "test-client"
        assert idp.fetches == 2, "an unknown kid fetches the JWKS again"
    finally:
        await idp.stop()


async def test_static_public_keys(tmp_path: Path) -> None:
    idp = Issuer(issuer="https://ehr.test")
    pem = tmp_path / "ehr.pem"
    pem.write_bytes(
        idp.key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    settings = IssuerSettings("https://ehr.test", idp.audience, public_key_files=(str(pem),), algorithms=("ES256",))
    verifier = TokenVerifier(AuthSettings(issuers=(settings,)))
    assert (await verifier.verify(idp.token(CONSENT_READ))).has(CONSENT_READ)
    with pytest.raises(UnauthenticatedError, match="expired"):
        await verifier.verify(idp.token(CONSENT_READ, lifetime_s=-3600))


async def test_algorithm_confusion_and_unsigned_tokens_are_refused(issuer: Issuer) -> None:
    verifier = TokenVerifier(issuer.auth_settings())
    now = int(time.time())
    claims = {"iss": issuer.issuer, "aud": issuer.audience, "sub": "x", "exp": now + 300, "scope": CONSENT_READ}
    public_pem = issuer.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hmac_with_public_key = jwt.encode(claims, public_pem[:32], algorithm="HS256", headers={"kid": issuer.kid})
    unsigned = jwt.encode(claims, None, algorithm="none")
    for token in (hmac_with_public_key, unsigned):
        with pytest.raises(UnauthenticatedError, match="algorithm is not allowed"):
            await verifier.verify(token)
    no_subject = {k: v for k, v in claims.items() if k != "sub"}
    with pytest.raises(UnauthenticatedError, match="lacks a required claim"):
        await verifier.verify(jwt.encode(no_subject, issuer.key, algorithm="ES256", headers={"kid": issuer.kid}))


@pytest.mark.parametrize(
    ("issuer_settings", "problem"),
    [
        (IssuerSettings("https://idp", "aud", jwks_url="http://idp.example.org/jwks"), "jwks_url plain http://"),
        (IssuerSettings("https://idp", "aud"), "give jwks_url or public_key_files"),
        (
            IssuerSettings("https://idp", "aud", jwks_url="https://idp/j", algorithms=("HS256",)),
            "public-key algorithms",
        ),
        (IssuerSettings("https://idp", "aud", public_key_files=("/nonexistent.pem",)), "cannot load public_key_files"),
    ],
)
def test_unsafe_issuer_settings_are_refused(issuer_settings: IssuerSettings, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        TokenVerifier(AuthSettings(issuers=(issuer_settings,)))
