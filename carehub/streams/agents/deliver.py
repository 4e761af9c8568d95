"""deliver: deliveries -> one attempt each, then delivered / a retry topic / the dead-letter topic (a stage).

Each (recipient, patient) pair's deliveries go one after another, in the order
they were read, while other pairs proceed at once: every delivery waits only
for the one before it of its pair, across batches too, since the stage takes
its next batches while earlier ones are in hand (``IN_FLIGHT``; streams.stage
commits them in order). A failing recipient never holds this agent up: its
delivery moves to a retry topic (streams.agents.retry) and later ones for the
same pair queue behind it in the journal (streams.delivery_flow).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiokafka.structs import ConsumerRecord

from carehub.core.records import Delivery
from carehub.streams.context import AgentContext
from carehub.streams.delivery_flow import flow_for
from carehub.streams.stage import Handler

log = logging.getLogger(__name__)
BATCH = 256
#: Batches in hand at once: a batch lasts as long as its longest pair (a discharge's four deliveries to one
#: PCP, one after another), and what arrived meanwhile need not wait for it (docs/benchmarks.md).
IN_FLIGHT = 4

Pair = tuple[str, str]


class EarlierUnhandled(Exception):
    """The pair's delivery before this one failed without an outcome: its batch, and this one's, go again."""


def handler(ctx: AgentContext) -> Handler:
    m = ctx.metrics
    flow = flow_for(ctx)
    #: each pair's last delivery handed out (done when it and every earlier one of the pair is)
    tails: dict[Pair, asyncio.Task[None]] = {}

    async def deliver_one(item: Delivery, record: ConsumerRecord, before: asyncio.Task[None] | None) -> None:
        if before is not None:
            await asyncio.wait([before])  # its pair's earlier delivery first
            if before.cancelled() or before.exception() is not None:  # not handled: nor is this one (order)
                raise EarlierUnhandled(f"the delivery before {item.delivery_id} for its pair was not handled")
        try:
            await flow.fresh(item)
        except Exception as exc:  # one record must never stop the stage: parked with its reason
            m.inc("delivery_failed", recipient=item.recipient_id)
            await ctx.dead_letter("deliver", exc, record)
            return
        ctx.stage_done("deliver", record)

    def forget(pair: Pair, task: asyncio.Task[None]) -> None:
        if tails.get(pair) is task:
            del tails[pair]

    def hand_out(item: Delivery, record: ConsumerRecord) -> asyncio.Task[None]:
        """Start ``item`` behind its pair's last delivery (no await: a batch hands out all of its own in order
        before the next batch can hand out any). The task runs in this batch's context (its outbox)."""
        pair = (item.recipient_id, item.patient_key)
        task = asyncio.create_task(deliver_one(item, record, tails.get(pair)))
        tails[pair] = task
        task.add_done_callback(lambda done: forget(pair, done))
        return task

    async def deliver_batch(records: Sequence[ConsumerRecord]) -> None:
        started: list[asyncio.Task[None]] = []
        unreadable: list[tuple[ConsumerRecord, Exception]] = []
        for record in records:
            try:
                item = Delivery.from_json(record.value)
            except Exception as exc:
                unreadable.append((record, exc))
                continue
            started.append(hand_out(item, record))
        for record, error in unreadable:
            m.inc("delivery_failed", recipient="unknown")
            await ctx.dead_letter("deliver", error, record)
        results = await asyncio.gather(*started, return_exceptions=True)
        failed = next((r for r in results if isinstance(r, BaseException)), None)
        if failed is not None:
            raise failed  # the batch (and those after it) is taken again

    return deliver_batch
