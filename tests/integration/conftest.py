"""A running hub on the session broker, a real HTTP recipient, and helpers."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer

from carehub.connectors.mllp import MLLPClient, ack_code
from carehub.core.records import DeadLetter
from carehub.core.settings import AuthSettings, HTTPSettings, KafkaSettings, Settings
from carehub.demo_receivers import DemoRecipient
from carehub.hub import Hub
from tests.authkit import TEST_ISSUER, Issuer
from tests.conftest import CONFIG
from tests.delivery.conftest import PG_ADMIN

_ids = itertools.count(1)
PCP_SECRET = "pcp-test-shared-secret-0001"


#: The broker's confirmation a test hub waits for before AR 207. The product's default is 2 s (the
#: outage test, tests/integration/test_ingest_durability.py, holds it to that); test hubs share two
#: cores with several others, where a healthy broker can take longer than 2 s to confirm a write.
TEST_PRODUCE_TIMEOUT_S = 10.0


def hub_settings(config_dir: Path, bootstrap: str, **kafka: object) -> Settings:
    """Settings for a test hub: its own topic prefix, any free ports; trusts the test issuer once the
    ``issuer`` fixture started it."""
    prefix = f"t{os.getpid()}-{next(_ids)}."
    base = KafkaSettings(bootstrap=bootstrap, topic_prefix=prefix, produce_timeout_s=TEST_PRODUCE_TIMEOUT_S)
    s = Settings(
        config_dir=config_dir,
        kafka=replace(base, **kafka),
        database_url=f"sqlite:///{config_dir.parent / prefix}journal.db",
        auth=TEST_ISSUER.auth_settings() if TEST_ISSUER.started else AuthSettings(),  # no issuer: trusts nobody
    )
    return replace(s, mllp=replace(s.mllp, port=0), http=HTTPSettings("127.0.0.1", 0))


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A copy of the shipped config whose endpoints come from the environment."""
    target = tmp_path / "config"
    shutil.copytree(CONFIG, target, ignore=shutil.ignore_patterns("schemas"))
    settings = target / "carehub.yaml"
    commented = "  # produce_timeout_s: 2 "
    assert commented in settings.read_text(encoding="utf-8")
    settings.write_text(  # for `carehub run` processes started on this copy (see TEST_PRODUCE_TIMEOUT_S)
        settings.read_text(encoding="utf-8").replace(commented, f"  produce_timeout_s: {TEST_PRODUCE_TIMEOUT_S} "),
        encoding="utf-8",
    )
    return target


@pytest.fixture
async def recipients(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[dict[str, DemoRecipient]]:
    started = {
        "pcp-riverside": DemoRecipient("pcp-riverside", PCP_SECRET),
        "payer-acme": DemoRecipient("payer-acme", os.environ["CAREHUB_SECRET_PAYER_ACME"]),
    }
    # the logistics vendors: Rivera's heart-failure discharge orders oxygen and a ride (config/routes.yaml)
    for vendor in ("nemt-metro", "nemt-prairie", "dme-lincoln"):
        started[vendor] = DemoRecipient(vendor, os.environ[f"CAREHUB_SECRET_{vendor.upper().replace('-', '_')}"])
    for recipient in started.values():
        await recipient.start()
    for rid, recipient in started.items():
        monkeypatch.setenv(f"CAREHUB_ENDPOINT_{rid.upper().replace('-', '_')}", recipient.url)
    monkeypatch.setenv("CAREHUB_SECRET_PCP_RIVERSIDE", PCP_SECRET)
    yield started
    for recipient in started.values():
        await recipient.stop()


@contextlib.contextmanager
def fresh_pg_journal() -> Iterator[str]:
    """A journal URL on the machine's real PostgreSQL in a schema of its own, dropped afterwards."""
    schema = f"carehub_h_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN}: {exc}")
    with admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            yield f"{PG_ADMIN}?options=-csearch_path%3D{schema}"
            tables = admin.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = %s", (schema,))
            assert (tables.fetchone() or (0,))[0] > 0, f"nothing was journaled in PostgreSQL schema {schema}"
        finally:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


#: ``@ON_EACH_JOURNAL`` runs a hub-level test once on SQLite and once on PostgreSQL (a fresh schema).
ON_EACH_JOURNAL = pytest.mark.parametrize("hub", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
async def hub(
    request: pytest.FixtureRequest,
    broker: str,
    config_dir: Path,
    recipients: dict[str, DemoRecipient],
    issuer: Issuer,
) -> AsyncIterator[Hub]:
    """A hub on a SQLite journal, or on PostgreSQL for tests marked ``ON_EACH_JOURNAL``."""
    with contextlib.ExitStack() as stack:
        settings = hub_settings(config_dir, broker)
        if getattr(request, "param", "sqlite") == "postgresql":
            settings = replace(settings, database_url=stack.enter_context(fresh_pg_journal()))
        running = Hub(settings)
        await running.start()
        try:
            yield running
        finally:
            await running.stop()


async def send_accepted(hub: Hub, *messages: bytes) -> None:
    """Send ``messages`` to the hub's MLLP listener in order, each answered AA."""
    client = MLLPClient("127.0.0.1", hub.mllp_port)
    try:
        for message in messages:
            assert ack_code(await client.send(message)) == "AA"
    finally:
        await client.close()


async def eventually(check: object, timeout_s: float = 20.0) -> None:
    """Wait until ``check()`` is truthy (the pipeline is asynchronous)."""
    assert callable(check)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def dead_letters(bootstrap: str, topic: str) -> list[DeadLetter]:
    """Every dead letter on ``topic`` so far (the stage's record of what it parked and why)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None, fetch_max_bytes=16 << 20
    )
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=3000)
        return [DeadLetter.from_json(r.value) for records in batch.values() for r in records]
    finally:
        await consumer.stop()
