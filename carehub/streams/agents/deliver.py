"""deliver: deliveries -> one attempt each, then delivered / a retry topic / the dead-letter topic.

Deliveries are taken in batches and handled concurrently as one sequence per
(recipient, patient), so a batch never reorders one patient's deliveries to
one recipient while other patients and recipients proceed in parallel. A
failing recipient never holds this agent up: its delivery moves to a retry
topic (streams.agents.retry) and later ones for the same pair queue behind
it in the journal (streams.delivery_flow).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

import faust

from carehub.core.records import Delivery
from carehub.streams.context import AgentContext
from carehub.streams.delivery_flow import flow_for

log = logging.getLogger(__name__)
BATCH = 256
BATCH_WINDOW_S = 0.005


def register(app: faust.App, ctx: AgentContext) -> None:
    topics = ctx.deps.topics
    m = ctx.metrics
    flow = flow_for(ctx)

    async def deliver_sequence(sequence: list[tuple[Delivery, Any]]) -> None:
        for item, event in sequence:
            try:
                await flow.fresh(item)
            except Exception as exc:  # one record must never stop the agent: parked with its reason
                m.inc("delivery_failed", recipient=item.recipient_id)
                await ctx.dead_letter("deliver", exc, event)
                continue
            ctx.stage_done("deliver", event)

    async def deliver_agent(stream: Any) -> None:
        async for batch in stream.take_events(BATCH, within=BATCH_WINDOW_S):
            sequences: dict[tuple[str, str], list[tuple[Delivery, Any]]] = defaultdict(list)
            for event in batch:
                try:
                    item = Delivery.from_json(event.value)
                except Exception as exc:
                    m.inc("delivery_failed", recipient="unknown")
                    await ctx.dead_letter("deliver", exc, event)
                    continue
                sequences[(item.recipient_id, item.patient_key)].append((item, event))
            await asyncio.gather(*(deliver_sequence(s) for s in sequences.values()))

    app.agent(ctx.topic(topics.deliveries), name="deliver")(deliver_agent)
