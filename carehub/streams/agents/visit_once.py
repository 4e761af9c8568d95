"""The table behind streams.dedup: routed (visit, kind) keys per patient key.

care.events is keyed by patient key, so the table row of a patient lives in
the partition the route agent is consuming; its changelog is the compacted
``visits.seen`` topic (streams.store). Used by the route agent: ``if not once.first(event)``.
"""

from __future__ import annotations

import logging

from carehub.core.records import CareEvent
from carehub.streams.context import AgentContext
from carehub.streams.dedup import decide, read_seen
from carehub.streams.store import ChangelogStore

TABLE = "visits-seen"

log = logging.getLogger(__name__)


class VisitOnce:
    def __init__(self, table: ChangelogStore, ctx: AgentContext) -> None:
        self._table = table
        self._ctx = ctx

    def first(self, event: CareEvent) -> bool:
        """True when the event should be routed; records it as routed."""
        key = event.patient_key
        seen = read_seen(self._table.get(key))
        decision = decide(event, seen)
        if decision.seen != seen:
            self._table.put(key, [list(pair) for pair in decision.seen])
        if not decision.route:
            self._ctx.metrics.inc("duplicates_suppressed", kind=event.kind)
            log.info("duplicate not routed: event=%s kind=%s reason=%s", event.event_id, event.kind, decision.reason)
        return decision.route
