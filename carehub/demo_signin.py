"""The demo's console sign-in: a token issuer made for one demo run, trusted by that run's hub only.

A fresh EC key per run; its public key is written beside the demo journal and
configured as an ``auth.issuers`` entry with ``public_key_files``, so the hub
verifies the demo token exactly as it verifies an identity provider's. The
token holds the ops and PHI scopes for one hour; nothing else trusts the issuer. The demo vendors
answer their offer Tasks with tokens of the same issuer bound to their directory entries.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from carehub.core.principal import OPS_READ, OPS_WRITE, PHI_READ, TASK_READ, TASK_WRITE
from carehub.core.settings import IssuerSettings

DEMO_ISSUER = "urn:carehub:demo-issuer"
DEMO_AUDIENCE = "urn:carehub:demo"
DEMO_SUBJECT = "demo-analyst"
TOKEN_LIFETIME_S = 3600


@dataclass(frozen=True, slots=True)
class DemoSignIn:
    issuer: IssuerSettings
    token: str
    #: A Task read/write token bound to one directory recipient (the demo vendors answer their offers with it).
    recipient_token: Callable[[str], str]


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

    def recipient_token(recipient_id: str) -> str:
        bound = {**claims, "sub": f"demo-{recipient_id}", "jti": uuid.uuid4().hex,
                 "scope": f"{TASK_READ} {TASK_WRITE}", "carehub_recipient": recipient_id}  # fmt: skip
        return jwt.encode(bound, key, algorithm="ES256")

    return DemoSignIn(issuer, jwt.encode(claims, key, algorithm="ES256"), recipient_token)
