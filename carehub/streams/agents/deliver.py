"""deliver: deliveries -> one attempt each, then delivered / a retry topic / the dead-letter topic (a stage).

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
from collections.abc import Sequence

from aiokafka.structs import ConsumerRecord

from carehub.core.records import Delivery
from carehub.streams.context import AgentContext
from carehub.streams.delivery_flow import flow_for
from carehub.streams.stage import Handler

log = logging.getLogger(__name__)
BATCH = 256


def handler(ctx: AgentContext) -> Handler:
    m = ctx.metrics
    flow = flow_for(ctx)

    async def deliver_sequence(sequence: list[tuple[Delivery, ConsumerRecord]]) -> None:
        for item, record in sequence:
            try:
                await flow.fresh(item)
            except Exception as exc:  # one record must never stop the stage: parked with its reason
                m.inc("delivery_failed", recipient=item.recipient_id)
                await ctx.dead_letter("deliver", exc, record)
                continue
            ctx.stage_done("deliver", record)

    async def deliver_batch(records: Sequence[ConsumerRecord]) -> None:
        sequences: dict[tuple[str, str], list[tuple[Delivery, ConsumerRecord]]] = defaultdict(list)
        for record in records:
            try:
                item = Delivery.from_json(record.value)
            except Exception as exc:
                m.inc("delivery_failed", recipient="unknown")
                await ctx.dead_letter("deliver", exc, record)
                continue
            sequences[(item.recipient_id, item.patient_key)].append((item, record))
        await asyncio.gather(*(deliver_sequence(s) for s in sequences.values()))

    return deliver_batch
