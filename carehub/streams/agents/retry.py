"""retry: deliveries.retry.N -> the next attempt once it is due (a stage per tier: streams.stage).

One stage per backoff tier, each its own consumer group. A record is taken
only once its ``due_at`` has come, and waits at most the tier's backoff bound
(``RetryPolicy.tier_wait_s``): the stage pauses the record's partition and
seeks back to it rather than sleeping, so it keeps polling (no rebalance for
a long wait), its other partitions go on, and waiting for the head record
never delays a later one by more than that bound. The deliveries topic is
never held up: a failing recipient's deliveries wait here, not there. The
record carries its attempt count and due time, so a worker that takes over
the partition after a crash continues where the other stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from aiokafka.structs import ConsumerRecord

from carehub.core.records import Delivery
from carehub.streams.context import AgentContext
from carehub.streams.delivery_flow import flow_for
from carehub.streams.stage import Handler

log = logging.getLogger(__name__)


def due_at(record: ConsumerRecord) -> float:
    """When a retry record's next attempt is due (epoch seconds)."""
    return float(Delivery.from_json(record.value).due_at)


def handler(ctx: AgentContext, tier: int) -> Handler:
    """The batch handler of retry tier ``tier``: the stage hands it only records that are due."""
    flow = flow_for(ctx)
    name = f"retry-{tier}"

    async def retry_batch(records: Sequence[ConsumerRecord]) -> None:
        for record in records:
            try:
                await flow.retry(Delivery.from_json(record.value))
            except Exception as exc:  # one record must never stop the stage: parked with its reason
                await ctx.dead_letter("retry", exc, record)
                continue
            ctx.stage_done(name, record)

    return retry_batch
