"""audit: audit.events -> the journal's audit table (the accounting of disclosures).

AuditEvents are written in batches, one transaction each, so the trail keeps
up with the decisions without a database round trip per record.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
import orjson

from carehub.streams.context import AgentContext

log = logging.getLogger(__name__)
BATCH = 500
BATCH_WINDOW_S = 0.05


def register(app: faust.App, ctx: AgentContext) -> None:
    journal = ctx.deps.journal
    if journal is None:
        return

    async def audit_agent(stream: Any) -> None:
        async for batch in stream.take(BATCH, within=BATCH_WINDOW_S):
            resources = []
            for value in batch:
                try:
                    resources.append(orjson.loads(value))
                except orjson.JSONDecodeError:
                    ctx.metrics.inc("audit_failed")
                    log.error("unreadable audit record skipped")
            await journal.db.run(journal.audit.record_many, resources)
            ctx.metrics.inc("audited", len(resources))

    app.agent(ctx.topic(ctx.deps.topics.audit_events), name="audit")(audit_agent)
