"""The routing map, recipient directory and attribution rosters, as loaded from config/.

Conditions are declarative (lists of accepted values, ranges, thresholds);
there are no code strings. Every decision records ``RoutingMap.version``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

RECIPIENT_KINDS = ("pcp", "specialist", "payer", "pharmacy", "cbo", "hie", "care-manager")
CHANNELS = ("webhook", "fhir-rest", "mllp", "kafka")
ACTION_TYPES = ("notify", "task", "forward", "correct", "packet")
#: The one target of ``correct``: every recipient the journal shows received the original.
RECEIVED = "received"
#: Attribution roles a roster can assign, and the selector that resolves each.
ROLES = ("pcp", "payer", "care-manager", "pharmacy")
FLAGS = ("readmission", "ed-high-utilizer", "open-follow-up", "key-field-corrected")


@dataclass(frozen=True, slots=True)
class Identifier:
    """An identifier as it appears in messages: NPI, payer id (IN1-3), NCPDP, practice id."""

    system: str
    value: str

    def matches(self, system: str, value: str) -> bool:
        """Equal values; systems must agree when both are given."""
        return self.value == value and (not self.system or not system or self.system == system)


@dataclass(frozen=True, slots=True)
class Recipient:
    id: str
    name: str
    kind: str
    channel: str
    endpoint: str
    secret: str | None = None
    formats: tuple[str, ...] = ("davinci-notification",)
    identifiers: tuple[Identifier, ...] = ()
    services: tuple[str, ...] = ()
    rostered_only: bool = False
    #: Connector options (auth, TLS, topic) as sorted (name, value) pairs.
    connection: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Threshold:
    """A numeric test on a risk score (e.g. LACE) found in the event."""

    score: str
    gte: float | None = None
    lte: float | None = None


@dataclass(frozen=True, slots=True)
class Condition:
    """Every non-empty field must hold for the event (empty = any)."""

    kinds: tuple[str, ...] = ()
    facilities: tuple[str, ...] = ()
    encounter_classes: tuple[str, ...] = ()
    locations: tuple[str, ...] = ()
    patient_classes: tuple[str, ...] = ()
    payers: tuple[str, ...] = ()
    pcps: tuple[str, ...] = ()
    diagnoses: tuple[str, ...] = ()
    age_min: int | None = None
    age_max: int | None = None
    flags: tuple[str, ...] = ()
    not_flags: tuple[str, ...] = ()
    thresholds: tuple[Threshold, ...] = ()


@dataclass(frozen=True, slots=True)
class Due:
    """When a task is due: business days or calendar days after the event."""

    business_days: int = 0
    days: int = 0


@dataclass(frozen=True, slots=True)
class Action:
    """One thing a rule does: ``type`` to a recipient, fixed or resolved.

    ``to`` is either a recipient id from the directory or a selector:
    ``attributed:<role>`` (content first, then rosters) or ``service:<category>``
    / ``service:sdoh`` (CBOs by service category).
    """

    type: str
    to: str
    task: str = ""
    due: Due | None = None
    part_of: str = ""

    @property
    def key(self) -> str:
        """What makes two actions for one recipient the same (first rule wins)."""
        return f"{self.type}:{self.task}" if self.task else self.type


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    description: str
    when: Condition
    actions: tuple[Action, ...]
    line: int | None = None


@dataclass(frozen=True, slots=True)
class Attribution:
    """One patient's attributed recipients from one roster: role -> recipient id."""

    roster: str
    roles: dict[str, str]
    line: int | None = None


@dataclass(frozen=True, slots=True)
class Roster:
    """Patients (assigning authority + identifier) mapped to recipients by role."""

    id: str
    source: str
    members: dict[str, Attribution] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RoutingMap:
    version: str
    rules: tuple[Rule, ...]
    recipients: dict[str, Recipient] = field(default_factory=dict)
    source: str = ""
    rosters: tuple[Roster, ...] = ()
