"""audit: audit.events -> the journal's audit table (the accounting of disclosures); a stage (streams.stage).

Each batch of AuditEvents is written in one transaction, so the trail keeps up
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

from carehub.journal import Journal
from carehub.streams.context import AgentContext
from carehub.streams.stage import Handler

log = logging.getLogger(__name__)
#: AuditEvents per batch (one transaction each).
BATCH = 500


def handler(ctx: AgentContext, journal: Journal) -> Handler:
    async def audit_batch(records: Sequence[ConsumerRecord]) -> None:
        resources: list[Any] = []
        for record in records:
            try:
                resources.append(orjson.loads(record.value))
            except orjson.JSONDecodeError:
                ctx.metrics.inc("audit_failed")
                log.error("unreadable audit record skipped: partition=%s offset=%s", record.partition, record.offset)
        await journal.db.run(journal.audit.record_many, resources)
        ctx.metrics.inc("audited", len(resources))
        for record in records:
            ctx.stage_done("audit", record)

    return audit_batch
