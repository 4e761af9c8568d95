"""A referral Task goes requested -> accepted -> completed through the hub's Task endpoint."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest

from carehub.core.records import TaskEvent
from carehub.streams.task_alerts import check_overdue
from tests.authkit import RECIPIENT, Issuer
from tests.core.test_record_versions import schema_of
from tests.delivery.helpers import delivery, produce
from tests.delivery.recipients import HttpRecipient
from tests.delivery.test_faults import read_keyed, settings, start_hub
from tests.integration.conftest import eventually

pytestmark = pytest.mark.integration


def task_delivery(endpoint: str, task_id: str, due: str) -> Any:
    task = {
        "resourceType": "Task",
        "identifier": [{"system": "urn:carehub:task", "value": task_id}],
        "status": "requested",
        "intent": "order",
        "authoredOn": "2026-03-01T10:00:00Z",
        "requester": {"reference": "urn:uuid:hub"},
        "owner": {"reference": "urn:uuid:owner"},
        "restriction": {"period": {"end": due}},
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"seq": 0, "patient": "RGH|T1"}, {"fullUrl": "urn:uuid:t", "resource": task}],
    }
    return replace(
        delivery(0, recipient="cbo-foodbank", patient="RGH|T1", endpoint=endpoint),
        action="task",
        delivery_id=task_id,
        idempotency_key=task_id,
        payload=bundle,
    )


async def test_a_referral_task_is_closed_through_the_endpoint(
    broker: str, tmp_path: Path, issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipient = HttpRecipient()
    monkeypatch.setenv("CAREHUB_ENDPOINT_CBO_FOODBANK", recipient.url)  # the directory is read at send time
    await recipient.start()
    hub = await start_hub(settings(tmp_path, broker))
    base = f"http://127.0.0.1:{hub.http_port}/fhir"
    try:
        await produce(
            broker,
            hub.topics.deliveries,
            [
                task_delivery(recipient.url, "task-1", "2099-01-01"),
                task_delivery(recipient.url, "task-late", "2026-03-02"),
            ],
        )
        # the food bank's own principal: a token bound to its directory entry
        async with aiohttp.ClientSession(headers=issuer.headers(*RECIPIENT, recipient="cbo-foodbank")) as http:

            async def search(query: str) -> list[str]:
                async with http.get(f"{base}/Task?{query}") as r:
                    return [e["resource"]["id"] for e in (await r.json())["entry"]]

            found: list[str] = []

            async def poll() -> None:
                found[:] = await search("owner=Organization/cbo-foodbank&status=requested")

            await eventually(lambda: hub.metrics.total("delivered") == 2)
            await poll()
            assert sorted(found) == ["task-1", "task-late"]
            async with http.patch(f"{base}/Task/task-1", json={"status": "accepted"}) as r:
                assert r.status == 200 and (await r.json())["status"] == "accepted"
            done = {
                "resourceType": "Task",
                "id": "task-1",
                "status": "completed",
                "output": [{"type": {"text": "resulting-activity"}, "valueString": "food delivered"}],
            }
            async with http.put(f"{base}/Task/task-1", json=done) as r:
                assert r.status == 200 and (await r.json())["meta"]["versionId"] == "3"
            async with http.patch(f"{base}/Task/task-1", json={"status": "in-progress"}) as r:
                body = await r.json()
                assert r.status == 422 and body["resourceType"] == "OperationOutcome"
            for path, payload, status in [
                ("task-1", {"status": 5}, 400),
                ("nope", {"status": "accepted"}, 404),
                ("task-1", {"color": "red"}, 400),
            ]:
                async with http.patch(f"{base}/Task/{path}", json=payload) as r:
                    assert r.status == status and (await r.json())["resourceType"] == "OperationOutcome"
            async with http.get(f"{base}/Task?colour=red") as r:
                assert r.status == 400
            assert await search("status=completed") == ["task-1"]
        journal = hub._delivery.journal if hub._delivery else None
        assert journal is not None
        turnaround = journal.tasks.turnaround_s("task-1")
        assert turnaround is not None and turnaround > 0
        raised: list[TaskEvent] = []

        async def sink(_task: dict[str, Any], event: TaskEvent) -> None:
            raised.append(event)

        assert await check_overdue(journal, sink) == 1 and raised[0].task_id == "task-late"
        keyed = await read_keyed(broker, hub.topics.task_events, 4)
        assert {key for key, _ in keyed} == {b"RGH|T1"}, "task.events is keyed by patient key, as documented"
        for _, value in keyed:  # every record on task.events matches its published schema
            jsonschema.Draft202012Validator(schema_of(TaskEvent)).validate(json.loads(value))
        events = [TaskEvent.from_json(v) for _, v in keyed]
        assert [(e.task_id, e.kind, e.to_status) for e in events if e.task_id == "task-1"] == [
            ("task-1", "created", "requested"),
            ("task-1", "status-changed", "accepted"),
            ("task-1", "status-changed", "completed"),
        ]
        assert [e for e in events if e.task_id == "task-1"][-1].turnaround_s == pytest.approx(turnaround)
    finally:
        await hub.stop()
        await recipient.stop()
