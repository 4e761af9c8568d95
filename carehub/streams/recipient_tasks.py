"""Tasks changed on a recipient's own FHIR server, read back into the journal (and so into the CarePlan).

A ``fhir-rest`` recipient receives its Tasks as a transaction on its own server and works
them there, not on carehub's ``/fhir/Task``. Every ``poll_s`` seconds carehub asks each such
server for its open Tasks by the identifier it gave them
(``GET [base]/Task?identifier=urn:carehub:task|<id>``, the recipient's bearer or SMART
Backend Services token) and applies what the performer changed (status, statusReason,
businessStatus, output, note) under the same Gravity status rules as the endpoint
(journal.tasks.check_transition), journaled with ``recipient-server:<id>`` as its source and
published as a TaskEvent: the careplan agent brings the CarePlan up to date from it. A
server that does not answer, or answers something unusable, is skipped until the next round.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp

from carehub.adapters.taskapi import PERFORMER_FIELDS, task_event
from carehub.connectors.auth import TokenSource
from carehub.core.errors import DeliveryError
from carehub.core.records import TaskEvent
from carehub.journal import Journal
from carehub.journal.tasks import TERMINAL
from carehub.streams.referrals import TASK_IDENTIFIER
from carehub.streams.routing.model import Recipient

log = logging.getLogger(__name__)
Publish = Callable[[TaskEvent], Awaitable[None]]


def performer_change(local: dict[str, Any], remote: dict[str, Any]) -> dict[str, Any]:
    """What the performer changed on its server: the performer's fields that differ ({} when none)."""
    return {k: remote[k] for k in PERFORMER_FIELDS if k in remote and remote[k] != local.get(k)}


async def _remote_task(
    http: aiohttp.ClientSession, tokens: TokenSource, recipient: Recipient, task_id: str
) -> dict[str, Any] | None:
    url = f"{recipient.endpoint.rstrip('/')}/Task"
    options = dict(recipient.connection)
    headers = {"Accept": "application/fhir+json"}
    authorization = await tokens.header(recipient.id, options, http)
    if authorization:
        headers["Authorization"] = authorization
    params = {"identifier": f"{TASK_IDENTIFIER}|{task_id}"}
    async with http.get(url, params=params, headers=headers, allow_redirects=False) as response:
        if response.status != 200:
            raise DeliveryError(f"Task search answered HTTP {response.status}", permanent=False)
        bundle = await response.json(content_type=None)
    found = [e.get("resource") for e in (bundle.get("entry") or []) if isinstance(e, dict)]
    tasks = [t for t in found if isinstance(t, dict) and t.get("resourceType") == "Task"]
    return tasks[0] if len(tasks) == 1 else None


async def poll_once(
    journal: Journal, directory: Mapping[str, Recipient], tokens: TokenSource, http: aiohttp.ClientSession,
    publish: Publish,
) -> int:  # fmt: skip
    """One round over every fhir-rest recipient's open Tasks; how many changes were applied."""
    applied = 0
    for recipient in directory.values():
        if recipient.channel != "fhir-rest" or "fhir-task" not in recipient.formats:
            continue
        tasks = await journal.db.run(journal.tasks.search, None, None, recipient.id)
        for task in (t for t in tasks if t.get("status") not in TERMINAL):
            try:
                remote = await _remote_task(http, tokens, recipient, str(task["id"]))
            except (aiohttp.ClientError, TimeoutError, DeliveryError, ValueError) as exc:
                log.info("recipient %s: Task search failed (%s); next round", recipient.id, type(exc).__name__)
                break  # this server is not answering: the next recipient
            fields = performer_change(task, remote) if remote is not None else {}
            if not fields:
                continue
            source = f"recipient-server:{recipient.id}"
            try:
                change = await journal.db.run(journal.tasks.update, str(task["id"]), fields, source)
            except (KeyError, ValueError) as exc:  # a status the rules refuse, or changed meanwhile
                log.info("task %s: change from %s not applied: %s", task["id"], recipient.id, exc)
                continue
            await publish(task_event(change, source))
            applied += 1
    return applied


async def watch_recipient_tasks(
    journal: Journal, directory: Callable[[], Mapping[str, Recipient]], publish: Publish, poll_s: float,
    timeout_s: float = 10.0,
) -> None:  # fmt: skip
    """Poll every ``poll_s`` seconds until cancelled; a failed round is retried the next time."""
    tokens = TokenSource(timeout_s)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as http:
        while True:
            try:
                await poll_once(journal, directory(), tokens, http, publish)
            except Exception as exc:  # never ends the loop
                log.error("recipient Task poll failed: %s", type(exc).__name__)
            await asyncio.sleep(poll_s)
