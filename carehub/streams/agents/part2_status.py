"""The table behind streams.consent.sticky: each patient's Part 2 history.

A table (streams.store) keyed by patient key like care.events, so the row of a patient
lives with the partition whose events the worker routes, and a worker that
takes over a partition (or restarts) recovers it from the compacted
``part2.status`` changelog. Keys and values are encoded one way
(as ``streams.tables.JsonTable`` did), so a restarted worker reads back what it
wrote. A merge reads the retired record's row too: with one stream worker
(the default) every row is local; with several, a retired record on another
worker's partition is not seen here, so merges also match program
identifiers directly (``labels``: MRG-1 assigning authority of a program
facility). Used by the route agent before the consent gate.
"""

from __future__ import annotations

from carehub.core.records import CareEvent
from carehub.streams.consent.codes import PART2
from carehub.streams.consent.labels import Registry, apply_labels, has_label
from carehub.streams.consent.sticky import Part2Status, observe, prior
from carehub.streams.store import ChangelogStore

TABLE = "part2-status"


class Part2Statuses:
    def __init__(self, table: ChangelogStore, registry: Registry) -> None:
        self._table = table
        self._registry = registry

    def get(self, patient_key: str) -> Part2Status:
        return Part2Status.from_dict(self._table.get(patient_key))

    def label(self, event: CareEvent) -> CareEvent:
        """The event labelled with what it inherits from earlier events; the history updated."""
        own = self.get(event.patient_key)
        merged = [self.get(str(k)) for k in event.attributes.get("merged_from", []) if k != event.patient_key]
        inherited = prior(event, own, merged, self._registry.ed_of_open_episode)
        labelled = apply_labels(event, self._registry, inherited)
        part2 = has_label(labelled.labels, PART2)
        program = str(labelled.attributes.get("part2_program") or ("sender-labelled" if part2 else ""))
        basis = str(labelled.attributes.get("part2_basis", "")) if part2 else ""
        after = observe(own, labelled, program, basis, merged)
        if after != own:
            self._table.put(event.patient_key, after.to_dict())
        return labelled
