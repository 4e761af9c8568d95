"""retry: deliveries.retry.N -> the next attempt once it is due.

One agent per backoff tier. Every record on tier N waited at most the tier's
backoff bound, so waiting for the head record never delays a later one by
more than that bound; the deliveries topic is never held up. The record
carries its attempt count and due time, so a worker that takes over the
partition after a crash continues where the other stopped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import faust

from carehub.core.records import Delivery
from carehub.core.topics import RETRY_TIERS
from carehub.streams.context import AgentContext
from carehub.streams.delivery_flow import flow_for

log = logging.getLogger(__name__)


def register(app: faust.App, ctx: AgentContext) -> None:
    flow = flow_for(ctx)
    longest = ctx.deps.retry.longest_wait_s

    async def retry_agent(stream: Any) -> None:
        async for event in stream.events():
            try:
                item = Delivery.from_json(event.value)
                wait = min(item.due_at - time.time(), longest)
                if wait > 0:
                    await asyncio.sleep(wait)
                await flow.retry(item)
            except Exception as exc:  # one record must never stop the agent: parked with its reason
                await ctx.dead_letter("retry", exc, event)

    for tier in range(1, RETRY_TIERS + 1):
        topic = ctx.topic(ctx.deps.topics.delivery_retry(tier))
        app.agent(topic, name=f"retry-{tier}")(retry_agent)
