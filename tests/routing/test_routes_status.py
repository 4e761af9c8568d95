"""`GET /admin/config` and `carehub routes status` on a running hub: the map in force, the last rejected reload."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.authkit import OPS, Issuer
from tests.delivery.test_faults import run_cli, settings, start_hub
from tests.integration.conftest import eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_status_shows_the_version_in_force_and_the_last_rejected_reload(
    broker: str, tmp_path: Path, issuer: Issuer
) -> None:
    s = settings(tmp_path, broker)
    hub = await start_hub(s)
    try:
        url, ops = f"http://127.0.0.1:{hub.http_port}", issuer.token(*OPS)
        version = hub.routing.current().version
        refused = await asyncio.to_thread(run_cli, "routes", "status", "--hub", url)
        assert refused.returncode == 2 and "HTTP 401" in refused.stderr, "no token, no config"
        fine = await asyncio.to_thread(run_cli, "routes", "status", "--hub", url, token=ops)
        assert fine.returncode == 0, fine.stderr
        assert f"routing map {version} in force" in fine.stdout and "no rejected reload" in fine.stdout

        routes = s.config_dir / "routes.yaml"
        routes.write_text(routes.read_text().replace("code: med-rec, due: {days: 7}", "code: med-rec, due: 7d"))
        await eventually(lambda: hub.routing.last_rejected is not None, timeout_s=30)
        shown = await asyncio.to_thread(run_cli, "routes", "status", "--hub", url, "--json", token=ops)
        assert shown.returncode == 0, shown.stderr
        answer = json.loads(shown.stdout)
        assert answer["map_version"] == version, "a rejected edit keeps the map in force"
        rejected = answer["last_rejected"]
        assert rejected["kept_version"] == version
        assert any(f"{routes}:" in e and "due: use {days: 7} or {business_days: 2}" in e for e in rejected["errors"])
        text = await asyncio.to_thread(run_cli, "routes", "status", "--hub", url, token=ops)
        assert "last rejected reload at" in text.stdout and "due: use {days: 7}" in text.stdout
    finally:
        await hub.stop()
