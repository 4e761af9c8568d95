"""The journal on disk is owner-only (0600, with its WAL files), and dead-letter payloads expire."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from carehub.core.settings import DeliverySettings, Settings
from carehub.core.topics import Topics
from carehub.delivery_wiring import DeliveryParts
from carehub.journal import open_journal
from carehub.streams.routing.source import ReloadingRoutingMap
from tests.conftest import CONFIG
from tests.delivery.helpers import delivery


@pytest.fixture
def loose_umask() -> Iterator[None]:
    previous = os.umask(0o022)  # what a shell usually gives: files 0644 unless carehub says otherwise
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_sqlite_journal_and_its_wal_files_are_created_0600(tmp_path: Path, loose_umask: None) -> None:
    path = tmp_path / "new" / "journal.db"
    journal = open_journal(f"sqlite:///{path}")
    try:
        journal.park(delivery(1), "delivery-rejected", "recipient answered HTTP 400")
        files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
        assert all(f.exists() for f in files)
        assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
        assert _mode(path.parent) == 0o700
    finally:
        journal.close()


def test_an_existing_world_readable_journal_is_tightened(tmp_path: Path, loose_umask: None) -> None:
    path = tmp_path / "journal.db"
    open_journal(f"sqlite:///{path}").close()
    os.chmod(path, 0o644)
    open_journal(f"sqlite:///{path}").close()
    assert _mode(path) == 0o600


async def test_dead_letters_past_their_retention_are_deleted(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config, ignore=shutil.ignore_patterns("schemas"))
    settings = replace(
        Settings(config_dir=config, database_url=f"sqlite:///{tmp_path / 'journal.db'}"),
        delivery=DeliverySettings(dead_letter_retention_days=7),
    )
    parts = DeliveryParts(settings, ReloadingRoutingMap(config), Topics("t."), "127.0.0.1:1", "retention")
    journal = await parts.start()
    try:
        old, fresh = delivery(1, patient="RGH|OLD"), delivery(2, patient="RGH|NEW")
        journal.park(old, "delivery-rejected", "HTTP 400")
        journal.park(fresh, "delivery-rejected", "HTTP 400")
        journal.db.execute(
            "UPDATE dead_letters SET parked_at = '2020-01-01T00:00:00.000Z' WHERE delivery_id = ?", (old.delivery_id,)
        )
        assert await parts.purge_expired_once() == 1
        assert [row.delivery_id for row in journal.dead_letters()] == [fresh.delivery_id]
        rows = journal.db.query("SELECT record FROM dead_letters")
        assert all("RGH|OLD" not in row[0] for row in rows), "the expired payload is gone from the journal"
    finally:
        await parts.stop()
