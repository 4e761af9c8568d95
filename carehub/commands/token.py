"""``carehub token keygen|mint``: a local token issuer for development on one machine.

Production tokens come from your identity provider (docs/security.md). For a
hub on your workstation, ``keygen`` makes an ES256 key pair (the private key
0600) and prints the ``auth.issuers`` entry that trusts its public key, and
``mint`` signs a short-lived token with the scopes you name. The hub verifies
these exactly like any other issuer's (signature, iss, aud, exp); nothing is
switched off.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

LOCAL_ISSUER = "urn:carehub:local-issuer"
LOCAL_AUDIENCE = "urn:carehub:hub"
DEFAULT_DIR = Path("var") / "local-issuer"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "token",
        help="a local token issuer for development: make a key pair, mint bearer tokens",
        description="Development only: production tokens come from your identity provider (docs/security.md).",
    )
    actions = parser.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    keygen = actions.add_parser("keygen", help="make an ES256 key pair and print the auth.issuers entry for it")
    keygen.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"where the keys go (default {DEFAULT_DIR})")
    keygen.set_defaults(func=run_keygen)
    mint = actions.add_parser("mint", help="print a signed bearer token")
    mint.add_argument("--key", type=Path, default=DEFAULT_DIR / "private.pem", help="the private key from keygen")
    mint.add_argument("--scope", action="append", required=True, help="a scope (repeatable), e.g. carehub/ops.read")
    mint.add_argument("--recipient", help="bind the token to a directory recipient (the Task endpoint)")
    mint.add_argument("--subject", default="local-developer", help="the token's sub (default local-developer)")
    mint.add_argument("--issuer", default=LOCAL_ISSUER)
    mint.add_argument("--audience", default=LOCAL_AUDIENCE)
    mint.add_argument("--minutes", type=float, default=60.0, help="lifetime (default 60)")
    mint.set_defaults(func=run_mint)


def run_keygen(args: argparse.Namespace) -> int:
    args.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = args.dir / "private.pem", args.dir / "public.pem"
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(private, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    print(f"wrote {private} (0600) and {public}; add to carehub.yaml:", file=sys.stderr)
    print(
        f"auth:\n  issuers:\n    - issuer: {LOCAL_ISSUER}\n      audience: {LOCAL_AUDIENCE}\n"
        f"      public_key_files: [{public.resolve()}]\n      algorithms: [ES256]"
    )
    return 0


def run_mint(args: argparse.Namespace) -> int:
    try:
        key = serialization.load_pem_private_key(args.key.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        print(f"carehub token mint: cannot read the key {args.key}: {exc}", file=sys.stderr)
        return 2
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": args.issuer,
        "sub": args.subject,
        "aud": args.audience,
        "iat": now,
        "exp": now + int(args.minutes * 60),
        "jti": uuid.uuid4().hex,
        "scope": " ".join(args.scope),
    }
    if args.recipient:
        claims["carehub_recipient"] = args.recipient
    print(jwt.encode(claims, key, algorithm="ES256"))  # type: ignore[arg-type]
    return 0
