"""What a redacted disclosure may carry: resource types, their elements, event attributes (data).

Read from ``redaction`` in config/part2.yaml (schema: config/schemas/part2.schema.json);
anything not listed is removed. ``resourceType`` and ``id`` are always kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class AllowList:
    #: resourceType -> the elements kept (Patient and Encounter are the roots a disclosure starts from)
    resources: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: CareEvent.attributes kept (routing and task building read them)
    attributes: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, data: dict[str, Any]) -> AllowList:
        resources = {kind: tuple(elements) for kind, elements in data.get("resources", {}).items()}
        return cls(resources, tuple(data.get("attributes", ())))


#: The demographics, the fact, class and period of an encounter, and who pays: nothing else.
DEFAULT_ALLOW_LIST = AllowList(
    resources={
        "Patient": ("identifier", "name", "birthDate", "gender", "address", "telecom"),
        "Encounter": ("status", "class", "period", "subject"),
        "Coverage": ("status", "beneficiary", "payor", "subscriberId"),
        "Organization": ("name", "identifier"),
    },
    attributes=("pcp", "payers", "birth_date", "patient_class"),
)
