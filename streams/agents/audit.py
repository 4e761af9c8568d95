"""audit: audit.events -> the journal's audit table (the accounting of disclosures)."""

from __future__ import annotations

import logging
from typing import Any

import faust
import orjson

from streams.context import AgentContext

log = logging.getLogger(__name__)


def register(app: faust.App, ctx: AgentContext) -> None:
    journal = ctx.deps.journal
    if journal is None:
        return

    async def audit_agent(stream: Any) -> None:
        async for event in stream.events():
            try:
                await journal.db.run(journal.audit.record, orjson.loads(event.value))
            except Exception as exc:
                await ctx.dead_letter("audit", exc, event)
                continue
            ctx.metrics.inc("audited")

    app.agent(ctx.topic(ctx.deps.topics.audit_events), name="audit")(audit_agent)
