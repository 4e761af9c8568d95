"""normalize: hl7v2.inbound -> care.events (dead letter with the reason on failure); a stage (streams.stage)."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka.structs import ConsumerRecord

from carehub.core.records import InboundMessage
from carehub.streams.context import AgentContext
from carehub.streams.normalize import normalize
from carehub.streams.stage import Handler


def handler(ctx: AgentContext) -> Handler:
    topics = ctx.deps.topics
    registry = ctx.deps.consent.policy.registry if ctx.deps.consent is not None else None

    async def normalize_batch(records: Sequence[ConsumerRecord]) -> None:
        for record in records:
            try:
                inbound = InboundMessage.from_json(record.value)
                care_event = normalize(inbound, registry, ctx.deps.default_authorities)
                await ctx.send(topics.care_events, inbound.patient_key, care_event)  # checks the size first
            except Exception as exc:  # one bad record must never stop the stream
                await ctx.dead_letter("normalize", exc, record)
                continue
            ctx.metrics.inc("normalized", kind=care_event.kind)
            ctx.stage_done("normalize", record)

    return normalize_batch
