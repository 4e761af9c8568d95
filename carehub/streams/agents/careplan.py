"""careplan: task.events -> deliveries, a Task's change brought to the CarePlan and its care team (a stage).

The plan and its members are in the journal (streams.packet.sync); this stage
only moves records: one TaskEvent in, the ``careplan-update`` deliveries out. A batch's
journal calls are queued together (one group commit), and each change's deliveries go out in
order once its call returned.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka.structs import ConsumerRecord

from carehub.core.records import Delivery, TaskEvent
from carehub.journal import Journal
from carehub.streams.context import AgentContext
from carehub.streams.packet.sync import plan_updates
from carehub.streams.stage import Handler


def handler(ctx: AgentContext, journal: Journal) -> Handler:
    topics = ctx.deps.topics

    async def careplan_batch(records: Sequence[ConsumerRecord]) -> None:
        queued: list[tuple[ConsumerRecord, asyncio.Future[list[Delivery]] | Exception]] = []
        for record in records:  # every change's journal call queued first: one group, in order
            try:
                change = TaskEvent.from_json(record.value)
                routing = ctx.deps.routing.current()
                queued.append((record, journal.db.submit(plan_updates, journal, change, hub=ctx.deps.hub,
                                                         directory=routing.recipients,
                                                         map_version=routing.version)))  # fmt: skip
            except Exception as exc:
                queued.append((record, exc))
        for record, pending in queued:
            try:
                if isinstance(pending, Exception):
                    raise pending
                updates = await pending
                outputs = [ctx.fit(d.to_json(), "a Delivery") for d in updates]
            except Exception as exc:
                await ctx.dead_letter("careplan", exc, record)
                continue
            for item, value in zip(updates, outputs, strict=True):
                ctx.metrics.inc("careplan_updates", recipient=item.recipient_id)
                await ctx.send_bytes(topics.deliveries, item.patient_key, value)
            ctx.stage_done("careplan", record)

    return careplan_batch
