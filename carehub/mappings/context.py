"""Per-message state while a bundle is built: resources so far, and their ids.

The engine writes every resource here exactly once under ``Type/id``; later
sections reach earlier resources by type (``ref: Patient``, ``merge: true``),
which is how PD1 lands in the Patient of the PID and DG1 in the Encounter of
the PV1 without the mapping files naming ids.
"""

from __future__ import annotations

from typing import Any

from carehub.adapters.hl7.tokenizer import Delimiters, Segment, unescape

Resource = dict[str, Any]


class BuildContext:
    __slots__ = (
        "comp",
        "sub",
        "rep",
        "esc",
        "delimiters",
        "resources",
        "latest",
        "patient_key",
        "ids",
        "segment",
        "issues",
        "message_key",
        "default_authority",
        "memo",
    )

    def __init__(self, delimiters: Delimiters, patient_key: str, message_key: str, default_authority: str = "") -> None:
        self.delimiters = delimiters
        self.comp = delimiters.component
        self.sub = delimiters.subcomponent
        self.rep = delimiters.repetition
        self.esc = delimiters.escape
        self.resources: dict[str, Resource] = {}
        self.latest: dict[str, Resource] = {}
        self.ids: dict[str, str] = {}
        self.patient_key = patient_key
        self.message_key = message_key
        #: The authority of identifiers without CX.4 (core.patient.sender_authority).
        self.default_authority = default_authority
        self.segment: Segment | None = None
        self.issues: list[str] = []
        #: Values already built in this message, by producer and input (``compiler._create``).
        self.memo: dict[tuple[Any, ...], str | None] = {}

    def text(self, raw: str) -> str | None:
        """Unescaped, trimmed value; ``None`` for empty and for the HL7 null ``""``."""
        if not raw or raw == '""':
            return None
        value = unescape(raw, self.delimiters) if self.esc in raw else raw
        value = value.strip()
        return value or None

    def add(self, resource: Resource, *, latest: bool = True) -> Resource:
        """Store a new resource; a second one with the same id is merged into the first.

        ``latest=False`` stores it without making it the target of later ``ref``/``merge``
        (the retired and other-group patients of a merge message).
        """
        key = f"{resource['resourceType']}/{resource['id']}"
        existing = self.resources.get(key)
        if existing is not None:
            for name, value in resource.items():
                existing.setdefault(name, value)
            if latest:
                self.latest[resource["resourceType"]] = existing
            return existing
        self.resources[key] = resource
        if latest:
            self.latest[resource["resourceType"]] = resource
        return resource

    def reference(self, resource_type: str) -> dict[str, str] | None:
        """Reference to the most recent resource of a type, or to a precomputed id."""
        found = self.latest.get(resource_type)
        if found is not None:
            return {"reference": f"{resource_type}/{found['id']}"}
        known = self.ids.get(resource_type)
        return {"reference": f"{resource_type}/{known}"} if known else None
