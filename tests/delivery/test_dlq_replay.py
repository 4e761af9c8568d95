"""Dead letters against a real broker, real HTTP recipients and the real hub wiring.

* a recipient answering 4xx fills the dead-letter topic; ``carehub dlq replay`` delivers once it is fixed;
* a replay after exhausted retries starts again at attempt 1 with the same idempotency key;
* a fixed URL reaches queued, retrying and replayed deliveries.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import jsonschema
import pytest

from carehub.broker import free_port
from carehub.core.records import DeadLetter
from tests.authkit import OPS, Issuer
from tests.core.test_record_versions import schema_of
from tests.delivery.helpers import delivery, produce
from tests.delivery.recipients import HttpRecipient
from tests.delivery.test_faults import read_all, run_cli, settings, start_hub
from tests.integration.conftest import eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_a_4xx_recipient_fills_the_dead_letters_and_replay_delivers_once_fixed(
    broker: str, tmp_path: Path, recipient: HttpRecipient, issuer: Issuer
) -> None:
    recipient.status = 400
    await recipient.start()
    hub = await start_hub(settings(tmp_path, broker))
    try:
        records = [delivery(n, patient=f"RGH|D{n}", endpoint=recipient.url) for n in range(3)]
        await produce(broker, hub.topics.deliveries, records)
        await eventually(lambda: hub.metrics.total("delivery_dead_lettered") == 3)
        assert len(recipient.seen) == 3, "a permanent answer is not retried"
        letters = await read_all(broker, hub.topics.delivery_dead_letters, 3)
        assert {DeadLetter.from_json(v).record["delivery_id"] for v in letters} == {r.delivery_id for r in records}
        assert all("HTTP 400" in DeadLetter.from_json(v).reason for v in letters)
        for value in letters:  # the published contract of the dead-letter topic
            jsonschema.Draft202012Validator(schema_of(DeadLetter)).validate(json.loads(value))
        url = f"http://127.0.0.1:{hub.http_port}"
        ops = issuer.token(*OPS)
        refused = await asyncio.to_thread(run_cli, "dlq", "list", "--hub", url)
        assert refused.returncode == 2 and "HTTP 401" in refused.stderr, "no token, no dead letters"
        listed = await asyncio.to_thread(run_cli, "dlq", "list", "--hub", url, "--json", token=ops)
        assert listed.returncode == 0, listed.stderr
        assert {row["delivery_id"] for row in json.loads(listed.stdout)} == {r.delivery_id for r in records}
        recipient.status = 200  # fixed
        replayed = await asyncio.to_thread(run_cli, "dlq", "replay", "--all", "--hub", url, token=ops)
        assert replayed.returncode == 0 and "replayed 3" in replayed.stdout, replayed.stderr
        await eventually(lambda: hub.metrics.total("delivered") == 3)
        keys = [key for key, _, _ in recipient.seen]
        assert sorted(keys[3:]) == sorted(r.idempotency_key for r in records), "replays keep their keys"
        again = await asyncio.to_thread(run_cli, "dlq", "replay", "--id", "nope", "--hub", url, token=ops)
        assert again.returncode == 1 and "not a parked dead letter" in again.stderr
    finally:
        await hub.stop()


async def test_a_replay_after_exhausted_retries_starts_at_attempt_1_with_the_same_key(
    broker: str, tmp_path: Path, recipient: HttpRecipient, issuer: Issuer
) -> None:
    recipient.status = 503
    await recipient.start()
    hub = await start_hub(settings(tmp_path, broker, max_attempts=3))
    try:
        record = delivery(1, patient="RGH|X1", endpoint=recipient.url)
        await produce(broker, hub.topics.deliveries, [record])
        await eventually(lambda: hub.metrics.total("delivery_dead_lettered") == 1)
        assert len(recipient.seen) == 3, "a transient answer is retried up to max_attempts"
        recipient.status = 200  # fixed
        url, ops = f"http://127.0.0.1:{hub.http_port}", issuer.token(*OPS)
        replayed = await asyncio.to_thread(run_cli, "dlq", "replay", "--all", "--hub", url, token=ops)
        assert replayed.returncode == 0 and "replayed 1" in replayed.stdout, replayed.stderr
        await eventually(lambda: hub.metrics.total("delivered") == 1)
        assert recipient.seen[-1][0] == record.idempotency_key, "the replay keeps the idempotency key"
        rows = await attempts_over_http(url, ops, record.delivery_id)
        assert [r["attempt"] for r in rows] == [1, 2, 3, 1], "the replay is a fresh start, not attempt 4"
        assert rows[-1]["result"] == "ok"
    finally:
        await hub.stop()


def point_directory_at(config: Path, url: str) -> None:
    """Edit recipients.yaml as an admin would: pcp-riverside's endpoint becomes ``url`` (hot-reloaded)."""
    path = config / "recipients.yaml"
    text = path.read_text()
    old = "${CAREHUB_ENDPOINT_PCP_RIVERSIDE:-http://127.0.0.1:9101/fhir/$process-message}"
    assert old in text
    path.write_text(text.replace(old, url))


async def test_a_fixed_url_reaches_queued_retrying_and_replayed_deliveries(
    broker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, issuer: Issuer
) -> None:
    wrong = f"http://127.0.0.1:{free_port()}/fhir"  # nobody listens: connection refused (transient)
    monkeypatch.setenv("CAREHUB_ENDPOINT_PCP_RIVERSIDE", wrong)
    s = settings(tmp_path, broker, max_attempts=2)
    hub = await start_hub(s)
    fixed = HttpRecipient()
    await fixed.start()
    try:
        parked = delivery(1, patient="RGH|F1", endpoint=wrong)
        await produce(broker, hub.topics.deliveries, [parked])
        await eventually(lambda: hub.metrics.total("delivery_dead_lettered") == 1)
        point_directory_at(s.config_dir, fixed.url)
        await eventually(lambda: hub.routing.current().recipients["pcp-riverside"].endpoint == fixed.url)
        # planned with the old URL after the fix (a delivery already on the topic): sent to the new one
        late = delivery(2, patient="RGH|F2", endpoint=wrong)
        await produce(broker, hub.topics.deliveries, [late])
        await eventually(lambda: hub.metrics.total("delivered") == 1)
        url, ops = f"http://127.0.0.1:{hub.http_port}", issuer.token(*OPS)
        replayed = await asyncio.to_thread(run_cli, "dlq", "replay", "--all", "--hub", url, token=ops)
        assert replayed.returncode == 0 and "replayed 1" in replayed.stdout, replayed.stderr
        await eventually(lambda: hub.metrics.total("delivered") == 2)
        assert {key for key, _, _ in fixed.seen} == {parked.idempotency_key, late.idempotency_key}
        rows = await attempts_over_http(url, ops, parked.delivery_id)
        assert [(r["attempt"], r["result"]) for r in rows][-1] == (1, "ok"), rows
        assert all(r["idempotency_key"] == parked.idempotency_key for r in rows)
    finally:
        await hub.stop()
        await fixed.stop()


async def attempts_over_http(url: str, token: str, delivery_id: str) -> list[dict[str, object]]:
    """GET /admin/deliveries/{id}: the journaled attempts, as an operator sees them."""
    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {token}"}
        async with session.get(f"{url}/admin/deliveries/{delivery_id}", headers=headers) as response:
            assert response.status == 200, await response.text()
            body = await response.json()
    rows: list[dict[str, object]] = body["attempts"]
    return rows
