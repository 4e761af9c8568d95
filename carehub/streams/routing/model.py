"""The routing map, recipient directory and attribution rosters, as loaded from config/.

Conditions are declarative (lists of accepted values, ranges, thresholds);
there are no code strings. Every decision records ``RoutingMap.version``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Logistics vendor kinds (issue 19): non-emergency medical transport, durable medical equipment, home health.
VENDOR_KINDS = ("nemt", "dme", "home-health")
RECIPIENT_KINDS = ("pcp", "specialist", "payer", "pharmacy", "cbo", "hie", "care-manager", *VENDOR_KINDS)
#: What each vendor kind may list as ``capabilities`` (an order asks for one of them).
CAPABILITIES: dict[str, tuple[str, ...]] = {
    "nemt": ("ambulatory", "wheelchair", "stretcher", "bariatric"),
    "dme": ("oxygen", "hospital-bed", "wheelchair", "walker", "cpap", "nebulizer"),
    "home-health": ("skilled-nursing", "pt", "ot", "speech", "aide", "infusion"),
}
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CHANNELS = ("webhook", "fhir-rest", "mllp", "kafka")
ACTION_TYPES = ("notify", "task", "forward", "correct", "packet", "order")
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
class Hours:
    """When a vendor works: weekdays (empty = every day) and a local time-of-day range ``HH:MM``."""

    days: tuple[str, ...] = ()
    start: str = "00:00"
    end: str = "24:00"


@dataclass(frozen=True, slots=True)
class Vendor:
    """What makes a recipient a logistics vendor: capabilities, service area, hours, capacity, preference."""

    capabilities: tuple[str, ...] = ()
    zips: tuple[str, ...] = ()
    counties: tuple[str, ...] = ()
    hours: Hours = Hours()
    capacity_per_day: int | None = None
    #: Lower is offered first among vendors of equal network standing and performance.
    rank: int = 100
    #: Payer ids (IN1-3) whose network the vendor is in: in-network vendors are offered first.
    networks: tuple[str, ...] = ()


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
    #: Set for the vendor kinds (nemt, dme, home-health).
    vendor: Vendor | None = None


#: Where ``order`` actions go: the hub's own logistics desk (channel ``logistics``, connectors.logistics),
#: which journals the order; the vendors are chosen by the offer cascade (streams.logistics).
LOGISTICS_CHANNEL = "logistics"
LOGISTICS_DESK = Recipient(
    id="carehub-logistics",
    name="carehub logistics desk",
    kind="hub",
    channel=LOGISTICS_CHANNEL,
    endpoint="journal:orders",
    formats=("fhir-task",),
)


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
class OrderSpec:
    """A logistics order a rule places (``order:``): what, for when, and how the offer cascade runs.

    The window opens at the anchor (``discharge``: the discharge time; ``follow-up``: the due time of
    the follow-up Task the same event plans) shifted by ``offset_hours``, and lasts ``window_hours``.
    Durations left 0 take the service's defaults (streams.logistics.policy).
    """

    service: str
    capability: str
    at: str = "discharge"
    task: str = "tcm-visit"
    offset_hours: float = 0.0
    window_hours: float = 2.0
    offer_minutes: float = 0.0
    schedule_hours: float = 0.0
    max_offers: int = 0


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
    order: OrderSpec | None = None

    @property
    def key(self) -> str:
        """What makes two actions for one recipient the same (first rule wins)."""
        if self.order is not None:
            return f"order:{self.order.service}:{self.order.capability}"
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
