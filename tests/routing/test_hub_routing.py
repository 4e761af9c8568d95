"""End to end through a running hub: tasks reach the PCP, pharmacy and CBO; the map and rosters hot-reload."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from carehub.connectors.mllp import MLLPClient, ack_code
from carehub.core.settings import RoutingSettings
from carehub.demo_receivers import DemoRecipient
from carehub.hub import Hub
from carehub.streams.routing.apply import apply_config
from carehub.streams.routing.source import ReloadingRoutingMap
from tests.authkit import Issuer
from tests.conftest import CONFIG, FEED
from tests.integration.conftest import eventually, hub_settings

pytestmark = pytest.mark.integration


@pytest.fixture
async def pharmacy_and_cbo(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[dict[str, DemoRecipient]]:
    started = {"pharmacy-mainst": DemoRecipient("pharmacy-mainst"), "cbo-foodbank": DemoRecipient("cbo-foodbank")}
    for recipient in started.values():
        await recipient.start()
    monkeypatch.setenv("CAREHUB_ENDPOINT_PHARMACY_MAINST", started["pharmacy-mainst"].url)
    monkeypatch.setenv("CAREHUB_ENDPOINT_CBO_FOODBANK", started["cbo-foodbank"].url)
    yield started
    for recipient in started.values():
        await recipient.stop()


async def _send(port: int, *messages: bytes) -> None:
    client = MLLPClient("127.0.0.1", port)
    try:
        for message in messages:
            assert ack_code(await client.send(message)) == "AA"
    finally:
        await client.close()


def _readmission() -> bytes:
    raw = (FEED / "05-a01-admit-okafor.hl7").read_bytes()
    return raw.replace(b"RGH0005", b"RGH0099").replace(b"20261103", b"20261110").replace(b"V77002", b"V77099")


async def test_discharge_tasks_signals_and_hot_reload(
    pharmacy_and_cbo: dict[str, DemoRecipient], hub: Hub, recipients: dict[str, DemoRecipient], config_dir: Path
) -> None:
    pharmacy, cbo, pcp = (
        pharmacy_and_cbo["pharmacy-mainst"],
        pharmacy_and_cbo["cbo-foodbank"],
        recipients["pcp-riverside"],
    )
    first_version = hub.routing.current().version
    await _send(
        hub.mllp_port,
        (FEED / "05-a01-admit-okafor.hl7").read_bytes(),
        (FEED / "07-a03-discharge-okafor.hl7").read_bytes(),
    )
    await eventually(lambda: pharmacy.received and cbo.received and len(pcp.received) == 5)
    assert [r.event_code for r in pcp.received] == [
        "notification-admit",
        "notification-discharge",
        "task:tcm-contact",
        "task:tcm-visit",
        "toc-packet",  # after everything else of the discharge (docs/packet.md)
    ]
    assert pharmacy.received[0].event_code == "task:med-rec" and cbo.received[0].event_code == "task:sdoh-referral"

    routes = config_dir / "routes.yaml"
    good = routes.read_text()
    routes.write_text(good.replace("rules:", "rules: [", 1))
    await eventually(lambda: hub.routing.last_error is not None)  # type: ignore[attr-defined]
    assert hub.routing.current().version == first_version, "a broken edit keeps the old map"

    extra = (
        "  - id: readmission-to-cbo\n    when: {flags: [readmission]}\n    actions:\n"
        "      - task: {to: cbo-foodbank, code: readmission-support, due: {days: 3}}\n"
    )
    routes.write_text(good.replace('version: "2026-11-22.2"', 'version: "hot-2"') + extra)
    await eventually(lambda: hub.routing.current().version.startswith("hot-2+"))
    await _send(hub.mllp_port, _readmission())
    await eventually(lambda: len(cbo.received) == 2)
    assert cbo.received[1].event_code == "task:readmission-support", "the readmission flag came from the table"
    assert hub.metrics.total("signal") >= 1


def test_roster_edits_reload_and_broken_rosters_keep_the_old_map(tmp_path: Path) -> None:
    shutil.copytree(CONFIG, tmp_path / "config", ignore=shutil.ignore_patterns("schemas"))
    source = ReloadingRoutingMap(tmp_path / "config")
    before = source.current()
    roster = tmp_path / "config" / "rosters" / "attribution.csv"
    roster.write_text(roster.read_text() + "RGH,MRN5,pcp-riverside,,,\n")
    os.utime(roster, ns=(1, 1))
    assert source.reload_if_changed() is True
    assert source.current().version != before.version
    assert "RGH|MRN5" in source.current().rosters[1].members
    roster.write_text(roster.read_text() + "RGH,MRN6,nobody,,,\n")
    os.utime(roster, ns=(2, 2))
    assert source.reload_if_changed() is False
    assert source.last_error is not None and f"{roster}:5:" in source.last_error.message
    (tmp_path / "config" / "rosters" / "new.csv").write_text("assigning_authority,patient_id,pcp\nX,1,pcp-riverside\n")
    roster.write_text("assigning_authority,patient_id,pcp\n")
    assert source.reload_if_changed() is True and len(source.current().rosters) == 3


async def test_with_watch_off_an_edit_waits_for_an_explicit_reload(
    broker: str, config_dir: Path, recipients: dict[str, DemoRecipient], issuer: Issuer, tmp_path: Path
) -> None:
    hub = Hub(replace(hub_settings(config_dir, broker), routing=RoutingSettings(watch=False)))
    await hub.start()
    try:
        first = hub.routing.current().version
        routes = config_dir / "routes.yaml"
        good = routes.read_text()
        routes.write_text(good.replace('version: "2026-11-22.2"', 'version: "saved-1"'))
        for _ in range(6):  # several of the watcher's one-second polls
            await asyncio.sleep(0.5)
            assert hub.routing.current().version == first, "watch: false: a saved edit is not deployed"
        # the console's reload (POST /console/routing/reload) loads it
        assert hub.routing.reload_if_changed() is True
        assert hub.routing.current().version.startswith("saved-1+")

        staging = tmp_path / "staging"
        shutil.copytree(config_dir, staging)
        (staging / "routes.yaml").write_text(good.replace('version: "2026-11-22.2"', 'version: "applied-2"'))
        problems, version = apply_config(staging, config_dir)  # carehub routes apply STAGING --config-dir LIVE
        assert problems == [] and version.startswith("applied-2+")
        await eventually(lambda: hub.routing.current().version == version)
    finally:
        await hub.stop()
