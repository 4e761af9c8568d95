"""The demo's console sign-in: a token issuer made for one demo run, trusted by that run's hub only.

A fresh EC key per run; its public key is written beside the demo journal and
configured as an ``auth.issuers`` entry with ``public_key_files``, so the hub
verifies the demo token exactly as it verifies an identity provider's. The
token holds the ops and PHI scopes for one hour; nothing else trusts the issuer.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from carehub.core.principal import OPS_READ, OPS_WRITE, PHI_READ
from carehub.core.settings import IssuerSettings

DEMO_ISSUER = "urn:carehub:demo-issuer"
DEMO_AUDIENCE = "urn:carehub:demo"
DEMO_SUBJECT = "demo-analyst"
TOKEN_LIFETIME_S = 3600


@dataclass(frozen=True, slots=True)
class DemoSignIn:
    issuer: IssuerSettings
    token: str


def demo_signin(folder: Path) -> DemoSignIn:
    key = ec.generate_private_key(ec.SECP256R1())
    folder.mkdir(parents=True, exist_ok=True)
    public = folder / "demo-issuer.pem"
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    now = int(time.time())
    claims = {
        "iss": DEMO_ISSUER, "aud": DEMO_AUDIENCE, "sub": DEMO_SUBJECT, "iat": now, "exp": now + TOKEN_LIFETIME_S,
        "jti": uuid.uuid4().hex, "scope": " ".join((OPS_READ, OPS_WRITE, PHI_READ)),
    }  # fmt: skip
    issuer = IssuerSettings(issuer=DEMO_ISSUER, audience=DEMO_AUDIENCE, public_key_files=(str(public),),
                            algorithms=("ES256",))  # fmt: skip
    return DemoSignIn(issuer, jwt.encode(claims, key, algorithm="ES256"))
