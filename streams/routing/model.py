"""The routing map and recipient directory, as loaded from config/.

Conditions are declarative (lists of accepted values); there are no code
strings. Every decision records ``RoutingMap.version``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

RECIPIENT_KINDS = ("pcp", "payer", "pharmacy", "cbo", "hie", "care-manager")


@dataclass(frozen=True, slots=True)
class Recipient:
    id: str
    name: str
    kind: str
    channel: str
    endpoint: str
    secret: str | None = None
    formats: tuple[str, ...] = ("davinci-notification",)
    #: Connector options (auth, TLS, topic) as sorted (name, value) pairs.
    connection: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Condition:
    """Every non-empty list must contain the event's value (empty = any)."""

    kinds: tuple[str, ...] = ()
    facilities: tuple[str, ...] = ()
    encounter_classes: tuple[str, ...] = ()
    locations: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Action:
    type: str
    recipient_id: str


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    description: str
    when: Condition
    actions: tuple[Action, ...]
    line: int | None = None


@dataclass(frozen=True, slots=True)
class RoutingMap:
    version: str
    rules: tuple[Rule, ...]
    recipients: dict[str, Recipient] = field(default_factory=dict)
    source: str = ""
