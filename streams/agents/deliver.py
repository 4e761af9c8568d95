"""deliver: deliveries -> delivery.outcomes, through the recipient's channel.

Deliveries are taken in batches and sent concurrently as one sequence per
(recipient, patient), so a batch never reorders one patient's deliveries to
one recipient while other patients and recipients proceed in parallel.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

import faust

from core.records import Delivery
from streams.context import AgentContext
from streams.deliver import deliver

log = logging.getLogger(__name__)
BATCH = 256
BATCH_WINDOW_S = 0.005


def register(app: faust.App, ctx: AgentContext) -> None:
    topics = ctx.deps.topics
    m = ctx.metrics

    async def deliver_sequence(sequence: list[Delivery]) -> None:
        for item in sequence:
            destination = ctx.deps.destinations.get(item.channel)
            if destination is None:
                m.inc("delivery_failed", recipient=item.recipient_id)
                log.error("no connector for channel %s (delivery %s)", item.channel, item.delivery_id)
                continue
            outcome = await deliver(item, destination, ctx.deps.retry)
            m.inc("delivered" if outcome.status == "delivered" else "delivery_failed", recipient=item.recipient_id)
            log.info(
                "delivery %s recipient=%s status=%s attempts=%d",
                item.delivery_id,
                item.recipient_id,
                outcome.status,
                outcome.attempts,
            )
            await ctx.send(topics.delivery_outcomes, item.patient_key, outcome)

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
