"""normalize: hl7v2.inbound -> care.events (dead letter with the reason on failure)."""

from __future__ import annotations

from typing import Any

import faust

from carehub.core.records import InboundMessage
from carehub.streams.context import AgentContext
from carehub.streams.normalize import normalize


def register(app: faust.App, ctx: AgentContext) -> None:
    topics = ctx.deps.topics
    registry = ctx.deps.consent.policy.registry if ctx.deps.consent is not None else None

    async def normalize_agent(stream: Any) -> None:
        async for event in stream.events():
            try:
                inbound = InboundMessage.from_json(event.value)
                care_event = normalize(inbound, registry, ctx.deps.default_authorities)
                await ctx.send(topics.care_events, inbound.patient_key, care_event)  # checks the size first
            except Exception as exc:  # one bad record must never stop the stream
                await ctx.dead_letter("normalize", exc, event)
                continue
            ctx.metrics.inc("normalized", kind=care_event.kind)
            ctx.stage_done("normalize", event)

    app.agent(ctx.topic(topics.hl7v2_inbound), name="normalize")(normalize_agent)
