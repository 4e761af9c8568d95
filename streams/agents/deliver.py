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

from core.records import Delivery
from streams.context import AgentContext
from streams.delivery_flow import flow_for

log = logging.getLogger(__name__)
BATCH = 256
BATCH_WINDOW_S = 0.005


def register(app: faust.App, ctx: AgentContext) -> None:
    topics = ctx.deps.topics
    m = ctx.metrics
    flow = flow_for(ctx)

    async def deliver_sequence(sequence: list[Delivery]) -> None:
        for item in sequence:
            await flow.fresh(item)

    async def deliver_agent(stream: Any) -> None:
        async for batch in stream.take(BATCH, within=BATCH_WINDOW_S):
            sequences: dict[tuple[str, str], list[Delivery]] = defaultdict(list)
            for value in batch:
                try:
                    item = Delivery.from_json(value)
                except Exception as exc:
                    m.inc("delivery_failed", recipient="unknown")
                    log.error("unreadable delivery record: %s", type(exc).__name__)
                    continue
                sequences[(item.recipient_id, item.patient_key)].append(item)
            await asyncio.gather(*(deliver_sequence(s) for s in sequences.values()))

    app.agent(ctx.topic(topics.deliveries), name="deliver")(deliver_agent)
