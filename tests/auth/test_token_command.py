"""``carehub token keygen|mint``: a local issuer whose tokens the hub's verifier accepts."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import yaml

from carehub.adapters.httpauth.tokens import TokenVerifier
from carehub.core.principal import CONSENT_WRITE, TASK_READ
from carehub.core.settings import auth_settings

CAREHUB = str(Path(sys.executable).parent / "carehub")


async def test_keygen_then_mint_gives_tokens_the_hub_verifies(tmp_path: Path) -> None:
    keys = tmp_path / "issuer"
    made = subprocess.run([CAREHUB, "token", "keygen", "--dir", str(keys)], capture_output=True, text=True, check=True)
    assert stat.S_IMODE((keys / "private.pem").stat().st_mode) == 0o600
    settings = auth_settings(yaml.safe_load(made.stdout)["auth"])
    token = subprocess.run(
        [CAREHUB, "token", "mint", "--key", str(keys / "private.pem"), "--scope", CONSENT_WRITE, "--scope", TASK_READ,
         "--recipient", "cbo-foodbank"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    who = await TokenVerifier(settings).verify(token)
    assert who.scopes == {CONSENT_WRITE, TASK_READ} and who.recipient == "cbo-foodbank"
    assert who.issuer == "urn:carehub:local-issuer"
