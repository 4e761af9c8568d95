"""audit: audit.events -> the journal's audit table (the accounting of disclosures); a stage (streams.stage).

Each batch of AuditEvents is written in one statement (their JSON kept as read), so the trail keeps up
with the decisions without a database round trip per record; the batch's
offsets are committed after that transaction, so a worker killed before it
writes the batch again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson
from aiokafka.structs import ConsumerRecord

from carehub.core.errors import JournalError
from carehub.journal import Journal
from carehub.streams.context import AgentContext
from carehub.streams.stage import Handler

log = logging.getLogger(__name__)
#: AuditEvents per batch (one transaction each).
BATCH = 500


def handler(ctx: AgentContext, journal: Journal) -> Handler:
    async def audit_one(record: ConsumerRecord, resource: Any) -> bool:
        """One AuditEvent alone (a batch that failed); one the journal cannot take is dead-lettered."""
        try:
            await journal.db.run(journal.audit.record, resource)
            return True
        except JournalError:
            raise  # the journal is unavailable: the batch is taken again
        except Exception as exc:  # not an AuditEvent the trail can hold (fields missing): parked with why
            ctx.metrics.inc("audit_failed")
            await ctx.dead_letter("audit", exc, record)
            return False

    async def audit_batch(records: Sequence[ConsumerRecord]) -> None:
        read: list[tuple[ConsumerRecord, Any]] = []
        for record in records:
            try:
                read.append((record, orjson.loads(record.value)))
            except orjson.JSONDecodeError as exc:
                ctx.metrics.inc("audit_failed")
                await ctx.dead_letter("audit", exc, record)
        try:
            resources = [resource for _, resource in read]
            await journal.db.run(journal.audit.record_many, resources, [record.value for record, _ in read])
            stored = len(read)
        except JournalError:
            raise
        except Exception:  # one record the trail cannot hold must not hold up the others: one by one
            stored = sum([await audit_one(record, resource) for record, resource in read])
        ctx.metrics.inc("audited", stored)
        for record in records:
            ctx.stage_done("audit", record)

    return audit_batch
