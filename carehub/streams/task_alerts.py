"""Closed-loop referral tasks: which delivered Task to track, and overdue alerts.

``task_from_delivery`` picks the Gravity Task out of a delivered ``task``
Bundle (pure). ``overdue_alert`` builds the FHIR message Bundle that tells
the requester a Task went past ``restriction.period.end`` (pure).
``watch_overdue`` is the periodic check the hub runs; flagging a Task is a
conditional update in the journal, so with several workers one alert is
raised per Task.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from carehub.core.clock import now_iso
from carehub.core.records import Delivery, JSONObject, TaskEvent
from carehub.journal import Journal
from carehub.journal.tasks import patient_reference

log = logging.getLogger(__name__)
TASK_EVENT_SYSTEM = "http://carehub.dev/fhir/CodeSystem/task-event"


def task_from_delivery(d: Delivery) -> dict[str, Any] | None:
    """The new Task of a ``task`` delivery (transaction Bundle), with an id; None otherwise.

    Its ``for`` is the hub's Patient identity (``urn:carehub:patient`` + the patient key): the
    Bundle's ``urn:uuid`` means nothing outside it. A correction (a Task update) is no new Task.
    """
    if d.action != "task" or d.payload.get("resourceType") != "Bundle" or d.corrects:
        return None
    for entry in d.payload.get("entry", []):
        resource = entry.get("resource", {})
        if resource.get("resourceType") == "Task" and entry.get("request", {}).get("method", "POST") == "POST":
            identifiers = [i.get("value") for i in resource.get("identifier", []) if i.get("value")]
            task_id = resource.get("id") or (identifiers[0] if identifiers else d.idempotency_key)
            owner = {"reference": f"Organization/{d.recipient_id}"}
            task = {**resource, "id": str(task_id), "owner": owner, "for": patient_reference(d.patient_key)}
            labels = d.payload.get("meta", {}).get("security", [])
            if labels:  # the Task keeps the labels it was disclosed under (read API, overdue alerts)
                task["meta"] = {**resource.get("meta", {}), "security": labels}
            return task
    return None


def with_task(bundle: JSONObject, task: JSONObject) -> JSONObject:
    """``bundle`` with its Task entry's resource replaced by ``task`` as the recipient knows it (no hub id)."""
    sent = {k: v for k, v in task.items() if k not in ("id", "meta")}
    labels = task.get("meta", {}).get("security", [])
    if labels:
        sent["meta"] = {"security": labels}
    entries = [
        {**e, "resource": sent} if e.get("resource", {}).get("resourceType") == "Task" else e
        for e in bundle.get("entry", [])
    ]
    return {**bundle, "entry": entries}


def requester_recipient(task: dict[str, Any]) -> str:
    """The directory id named by Task.requester (``Organization/<id>`` or an identifier value)."""
    requester = task.get("requester", {})
    reference = str(requester.get("reference", ""))
    if reference:
        return reference.rsplit("/", 1)[-1]
    return str(requester.get("identifier", {}).get("value", ""))


def overdue_alert(task: dict[str, Any], hub_url: str, at: str) -> dict[str, Any]:
    """A FHIR message Bundle: MessageHeader (event task-overdue, focus the Task) + the Task."""
    bundle_id = hashlib.sha256(f"overdue|{task['id']}".encode()).hexdigest()[:32]
    task_url = f"{hub_url.rstrip('/')}/Task/{task['id']}"
    header = {
        "resourceType": "MessageHeader",
        "id": f"{bundle_id[:16]}-h",
        "eventCoding": {"system": TASK_EVENT_SYSTEM, "code": "task-overdue"},
        "source": {"endpoint": hub_url},
        "focus": [{"reference": task_url}],
    }
    return {
        "resourceType": "Bundle",
        "id": bundle_id,
        "type": "message",
        "timestamp": at,
        "entry": [
            {"fullUrl": f"urn:uuid:{bundle_id[:8]}-0000-4000-8000-{bundle_id[:12]}", "resource": header},
            {"fullUrl": task_url, "resource": task},
        ],
    }


OverdueSink = Callable[[dict[str, Any], TaskEvent], Awaitable[None]]


async def check_overdue(journal: Journal, sink: OverdueSink, now: str | None = None) -> int:
    """Raise one alert per open Task past its due time; returns how many were raised."""
    at = now or now_iso()
    raised = 0
    for due in await journal.db.run(journal.tasks.due_overdue, at):
        task = await journal.db.run(journal.tasks.mark_overdue, due["id"])
        if task is None:
            continue
        event = TaskEvent(
            task_id=task["id"],
            kind="overdue",
            from_status=str(task.get("status", "")),
            to_status=str(task.get("status", "")),
            at=at,
            source="hub",
            owner=str(task.get("owner", {}).get("reference", "")),
            requester=str(task.get("requester", {}).get("reference", "")),
        )
        await sink(task, event)
        raised += 1
        log.info("task %s overdue; alert raised", task["id"])
    return raised


async def watch_overdue(journal: Journal, sink: OverdueSink, interval_s: float = 30.0) -> None:
    while True:
        try:
            await check_overdue(journal, sink)
        except Exception as exc:  # a failed check is retried next round, never ends the loop
            log.error("overdue check failed: %s", type(exc).__name__)
        await asyncio.sleep(interval_s)
