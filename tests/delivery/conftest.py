"""Journals on SQLite and on the real PostgreSQL of this machine (own schema per run); an HTTP recipient."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest

from carehub.journal import Journal, open_journal
from tests.delivery.recipients import HttpRecipient

PG_ADMIN = os.environ.get("CAREHUB_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh schema on the real PostgreSQL server, dropped at the end of the session."""
    schema = f"carehub_t_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN}: {exc}")
    admin.execute(f'CREATE SCHEMA "{schema}"')
    yield f"{PG_ADMIN}?options=-csearch_path%3D{schema}"
    admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
    admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Journal]:
    sqlite = f"sqlite:///{tmp_path / 'journal.db'}"
    url = sqlite if request.param == "sqlite" else request.getfixturevalue("pg_url")
    opened = open_journal(url)
    yield opened
    if opened.dialect == "postgresql":
        for table in (
            "delivery_attempts",
            "delivery_outcomes",
            "dead_letters",
            "delivery_holds",
            "delivery_queue",
            "tasks",
            "task_changes",
            "messages",
            "care_facts",
            "care_fact_tasks",
            "patient_links",
            "care_plans",
            "care_plan_members",
            "care_plan_tasks",
            "orders",
            "offers",
            "order_steps",
            "logistics_lease",
        ):
            opened.db.execute(f"DELETE FROM {table}")
    opened.close()


@pytest.fixture
async def recipient(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[HttpRecipient]:
    """The far side of pcp-riverside: the directory names its URL (endpoints are resolved at send time)."""
    far = HttpRecipient()
    monkeypatch.setenv("CAREHUB_ENDPOINT_PCP_RIVERSIDE", far.url)
    yield far
    await far.stop()
