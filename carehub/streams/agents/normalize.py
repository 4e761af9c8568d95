"""normalize: an hl7v2.inbound record -> a CareEvent, routed at once by the same stage (streams.agents.route).

The route stage reads hl7v2.inbound and care.events together (co-partitioned: the same patient keys,
the same partition numbers), so a message is normalized and routed in one hop, without its CareEvent
written, read back and decoded again between two stages, and its Part 2 detection is not run again on
a copy (docs/benchmarks.md). The event is still written to care.events, the normalized stream, marked
with the ``ROUTED`` header: the route stage skips it there (it routes care.events records without it:
those of the FHIR inbound stage, and those an earlier version's normalize stage wrote). A message that
does not convert is dead-lettered with stage ``normalize``, as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiokafka.structs import ConsumerRecord

from carehub.core.records import CareEvent, InboundMessage
from carehub.streams.context import AgentContext
from carehub.streams.normalize import normalize
from carehub.streams.outbox import Headers

#: The header of a care.events record its writer routed already (the route stage skips it).
ROUTED: Headers = (("carehub-routed", b"1"),)

Normalizer = Callable[[ConsumerRecord], Awaitable[CareEvent | None]]


def was_routed(record: ConsumerRecord) -> bool:
    """A care.events record the stage that wrote it has routed."""
    return any(key == ROUTED[0][0] for key, _ in record.headers or ())


def normalizer(ctx: AgentContext) -> Normalizer:
    topics = ctx.deps.topics
    registry = ctx.deps.consent.policy.registry if ctx.deps.consent is not None else None

    async def normalize_one(record: ConsumerRecord) -> CareEvent | None:
        """The record's CareEvent, written to care.events (None: it was dead-lettered with the reason)."""
        try:
            inbound = InboundMessage.from_json(record.value)
            care_event = normalize(inbound, registry, ctx.deps.default_authorities)
            await ctx.send(topics.care_events, inbound.patient_key, care_event, ROUTED)  # checks the size first
        except Exception as exc:  # one bad record must never stop the stream
            await ctx.dead_letter("normalize", exc, record)
            return None
        ctx.metrics.inc("normalized", kind=care_event.kind)
        ctx.stage_done("normalize", record)
        return care_event

    return normalize_one
