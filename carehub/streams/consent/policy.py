"""The Part 2 registry and disclosure policy from config/part2.yaml."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carehub.core.configfile import load_config_file
from carehub.core.records import CareEvent
from carehub.streams.consent.allowlist import DEFAULT_ALLOW_LIST, AllowList
from carehub.streams.consent.decide import Disclosure
from carehub.streams.consent.labels import Program, Registry
from carehub.streams.consent.positions import compile_patterns
from carehub.streams.consent.valueset import BUILTIN_PREFIX, ValueSet, load_value_sets

PART2_FILE = "part2.yaml"


@dataclass(frozen=True, slots=True)
class Policy:
    registry: Registry
    purposes: dict[str, str] = field(default_factory=dict)
    redaction_allowed_for: frozenset[str] = frozenset()
    #: What a redacted disclosure may carry (config/part2.yaml ``redaction``).
    allow_list: AllowList = DEFAULT_ALLOW_LIST

    def disclosure(self, event: CareEvent, recipient_id: str, recipient_kind: str, action: str) -> Disclosure:
        return Disclosure(
            recipient_id=recipient_id,
            recipient_kind=recipient_kind,
            action=action,
            purpose=self.purposes.get(recipient_kind, "TREAT"),
            # never inferred from the message (PV1-2): only an attestation makes an emergency
            redaction_allowed=recipient_kind in self.redaction_allowed_for,
        )


NO_PROGRAMS = Policy(Registry(programs=()))


def _program(item: dict[str, Any]) -> Program:
    return Program(
        id=item["id"],
        name=item["name"],
        facilities=tuple(item.get("facilities", ())),
        locations=tuple(item.get("locations", ())),
        services=tuple(item.get("services", ())),
    )


def load_policy(config_dir: Path) -> Policy:
    """The policy of a config directory; without part2.yaml no sender is a Part 2 program."""
    path = config_dir / PART2_FILE
    if not path.exists():
        return NO_PROGRAMS
    data = load_config_file(path, "part2.schema.json")
    sud = data.get("sud", {})
    codes = load_value_sets(sud.get("value_sets", [BUILTIN_PREFIX + "sud"]), config_dir)
    prefixes = tuple(p.upper().replace(".", "") for p in sud.get("icd10_prefixes", ()))
    registry = Registry(
        programs=tuple(_program(p) for p in data["programs"]),
        sud_codes=codes.union(ValueSet(icd10_categories=prefixes)),
        sud_extra_codes=frozenset(sud.get("codes", ())),
        sud_text=compile_patterns(sud.get("text_patterns", [])),
        counseling_codes=frozenset(data.get("counseling_note_codes", ())),
        sender_restrictions=data.get("sender_restrictions", "part2"),
        ed_of_open_episode=bool(data.get("sticky", {}).get("ed_visits_of_open_episode", True)),
    )
    redaction = data.get("redaction", {})
    return Policy(
        registry=registry,
        purposes=dict(data.get("purposes", {})),
        redaction_allowed_for=frozenset(data.get("redaction_allowed_for", ())),
        allow_list=AllowList.from_config(redaction) if redaction else DEFAULT_ALLOW_LIST,
    )
