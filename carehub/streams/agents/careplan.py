"""careplan: task.events -> deliveries, a Task's change brought to the CarePlan and its care team.

The plan and its members are in the journal (streams.packet.sync); this agent
only moves records: one TaskEvent in, the ``careplan-update`` deliveries out.
"""

from __future__ import annotations

from typing import Any

import faust

from carehub.core.records import TaskEvent
from carehub.streams.context import AgentContext
from carehub.streams.packet.sync import plan_updates


def register(app: faust.App, ctx: AgentContext) -> None:
    journal = ctx.deps.journal
    if journal is None:  # no journal, no plans to keep
        return
    topics = ctx.deps.topics

    async def careplan_agent(stream: Any) -> None:
        async for event in stream.events():
            try:
                change = TaskEvent.from_json(event.value)
                routing = ctx.deps.routing.current()
                updates = await journal.db.run(plan_updates, journal, change, hub=ctx.deps.hub,
                                               directory=routing.recipients, map_version=routing.version)  # fmt: skip
                outputs = [ctx.fit(d.to_json(), "a Delivery") for d in updates]
            except Exception as exc:
                await ctx.dead_letter("careplan", exc, event)
                continue
            for item, value in zip(updates, outputs, strict=True):
                ctx.metrics.inc("careplan_updates", recipient=item.recipient_id)
                await ctx.send_bytes(topics.deliveries, item.patient_key, value)
            ctx.stage_done("careplan", event)

    app.agent(ctx.topic(topics.task_events), name="careplan")(careplan_agent)
