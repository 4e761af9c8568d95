"""route: care.events -> deliveries, one record per recipient x action."""

from __future__ import annotations

from typing import Any

import faust

from core.records import CareEvent
from streams.agents.visit_once import VisitOnce
from streams.context import AgentContext, now_iso
from streams.plan import plan_deliveries
from streams.routing.decide import decide


def register(app: faust.App, ctx: AgentContext) -> None:
    topics = ctx.deps.topics
    once = VisitOnce(app, ctx)  # the same visit by ADT and by FHIR is routed once (streams.dedup)

    async def route_agent(stream: Any) -> None:
        async for event in stream.events():
            try:
                care_event = CareEvent.from_json(event.value)
                if not once.first(care_event):
                    continue
                decision = decide(care_event, ctx.deps.routing.current())
                planned = plan_deliveries(care_event, decision, ctx.deps.hub, now_iso())
            except Exception as exc:
                await ctx.dead_letter("route", exc, event)
                continue
            ctx.metrics.inc("routed_events")
            for item in planned:
                ctx.metrics.inc("routed", recipient=item.recipient_id)
                await ctx.send(topics.deliveries, item.patient_key, item)

    app.agent(ctx.topic(topics.care_events), name="route")(route_agent)
