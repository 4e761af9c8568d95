"""Typed, versioned records that travel on carehub's topics.

Every record serializes to JSON (``to_json``) and back (``from_json``); the
``schema`` field names the record type and its version, ``NAME/MAJOR`` or
``NAME/MAJOR.MINOR`` (``carehub.care-event/1`` is 1.0: minor 0 is written
without ``.0``, the form readers before record versioning required exactly).
Readers take any minor of their major and ignore fields they do not know; a
record of another major raises ``RecordVersionError`` (the agents dead-letter
it with that reason). Each record's JSON Schema is
``config/schemas/<name>.schema.json``; docs/records.md has the rules. Keys on
every topic are patient keys.
"""

from __future__ import annotations

import base64
import re
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, TypeVar

import msgspec
import orjson

from carehub.core.errors import RecordError, RecordVersionError
from carehub.core.payload import Payload

JSONObject = dict[str, Any]
R = TypeVar("R", bound="Record")


_SCHEMA_ID = re.compile(r"^(?P<name>[a-z0-9.-]+)/(?P<major>[0-9]+)(?:\.(?P<minor>[0-9]+))?$")


def parse_schema_id(value: object) -> tuple[str, int, int]:
    """``carehub.delivery/1.2`` -> ("carehub.delivery", 1, 2); ``/1`` is 1.0."""
    match = _SCHEMA_ID.match(value) if isinstance(value, str) else None
    if match is None:
        raise RecordError(f"record schema {value!r} is not NAME/MAJOR[.MINOR]")
    return match["name"], int(match["major"]), int(match["minor"] or 0)


@dataclass(frozen=True, slots=True)
class _Shape:
    """A record class's field names, and those without a default (read once per class, not per record)."""

    names: tuple[str, ...]
    required: tuple[str, ...]
    #: Reads the record with its ``LAZY`` fields left as bytes (msgspec.Raw); None when it has none.
    lazy_reader: msgspec.json.Decoder[Any] | None


_SHAPES: dict[type, _Shape] = {}


def _shape(cls: type[Record]) -> _Shape:
    shape = _SHAPES.get(cls)
    if shape is None:
        known = fields(cls)  # type: ignore[arg-type]  # every Record is a dataclass
        names = tuple(f.name for f in known)
        required = tuple(f.name for f in known if f.default is MISSING and f.default_factory is MISSING)
        reader = None
        if cls.LAZY:
            wire = [(n, msgspec.Raw if n in cls.LAZY else Any, msgspec.UNSET) for n in (*names, "schema")]
            reader = msgspec.json.Decoder(msgspec.defstruct(f"{cls.__name__}Wire", wire))
        shape = _SHAPES[cls] = _Shape(names, required, reader)
    return shape


def _lazy_json(value: object) -> object:
    """orjson's fallback: a Payload is written as its JSON, unread bytes as they are."""
    if isinstance(value, Payload):
        return orjson.Fragment(value.raw)
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


class Record:
    """Mixin: JSON round trip for the frozen dataclasses below, tolerant of newer minors."""

    #: ``NAME/MAJOR``: the record type and the major version this release reads and writes.
    SCHEMA: ClassVar[str]
    #: The minor version this release writes (0: written as plain ``NAME/MAJOR``).
    MINOR: ClassVar[int] = 0
    #: Fields held as a ``Payload`` (core.payload): read from JSON as their bytes, parsed when used.
    LAZY: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def schema_id(cls) -> str:
        return cls.SCHEMA if cls.MINOR == 0 else f"{cls.SCHEMA}.{cls.MINOR}"

    def to_dict(self) -> JSONObject:
        """Shallow: field values are already JSON-shaped (no deep copy of bundles); a Payload as its object."""
        data: JSONObject = {name: getattr(self, name) for name in _shape(type(self)).names}
        for name in self.LAZY:
            data[name] = data[name].value
        data["schema"] = self.schema_id()
        return data

    def to_json(self) -> bytes:
        data: JSONObject = {name: getattr(self, name) for name in _shape(type(self)).names}
        data["schema"] = self.schema_id()
        return orjson.dumps(data, default=_lazy_json)

    @classmethod
    def from_dict(cls: type[R], data: JSONObject) -> R:
        """Any minor of this major; unknown fields are ignored, missing required ones refused."""
        if not isinstance(data, dict):
            raise RecordError(f"expected a {cls.SCHEMA} record (a JSON object), got {type(data).__name__}")
        name, own_major = cls.SCHEMA.rsplit("/", 1)
        got, major, minor = parse_schema_id(data.get("schema"))
        if got != name:
            raise RecordError(f"expected a {name} record, got {got}/{major}.{minor}")
        if major != int(own_major):
            newer = "a newer" if major > int(own_major) else "an older"
            raise RecordVersionError(
                f"record {got}/{major}.{minor} is {newer} major version than this worker reads ({cls.SCHEMA}.x); "
                "it was not processed"
            )
        shape = _shape(cls)
        missing = [name for name in shape.required if name not in data]
        if missing:
            raise RecordError(f"record {got}/{major}.{minor} lacks required field(s) {', '.join(missing)}")
        return cls(**{name: data[name] for name in shape.names if name in data})

    @classmethod
    def from_json(cls: type[R], raw: bytes | str) -> R:
        reader = _shape(cls).lazy_reader
        if reader is not None:
            return cls.from_dict(_read_lazy(cls, reader, raw))
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise RecordError(f"a {cls.SCHEMA} record that is not JSON ({exc.msg})") from None
        return cls.from_dict(data)


def _read_lazy(cls: type[Record], reader: msgspec.json.Decoder[Any], raw: bytes | str) -> JSONObject:
    """The record's fields as ``from_dict`` takes them, each ``LAZY`` one a Payload of its bytes unread."""
    try:
        wire = reader.decode(raw)
    except msgspec.ValidationError:  # the only thing typed is the top level: an object
        raise RecordError(f"expected a {cls.SCHEMA} record (a JSON object)") from None
    except msgspec.DecodeError as exc:
        raise RecordError(f"a {cls.SCHEMA} record that is not JSON ({exc})") from None
    data: JSONObject = {}
    for name, value in msgspec.structs.asdict(wire).items():
        if value is msgspec.UNSET:
            continue
        data[name] = Payload.from_raw(bytes(value)) if name in cls.LAZY else value
    return data


@dataclass(frozen=True, slots=True)
class InboundMessage(Record):
    """A raw HL7v2 message as received, with its receipt metadata.

    ``raw_b64`` holds the exact bytes of the MLLP block payload; ``charset`` is
    the Python codec they were decoded with for header inspection.
    """

    SCHEMA: ClassVar[str] = "carehub.inbound-hl7v2/1"

    raw_b64: str
    charset: str
    received_at: str
    listener: str
    peer: str
    control_id: str
    message_type: str
    trigger_event: str
    version: str
    sending_application: str
    sending_facility: str
    patient_key: str

    @property
    def raw(self) -> bytes:
        return base64.b64decode(self.raw_b64)

    def text(self) -> str:
        return self.raw.decode(self.charset, errors="replace")

    @staticmethod
    def encode_raw(raw: bytes) -> str:
        return base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True, slots=True)
class InboundRefusal(Record):
    """An inbound message the hub refused (MLLP AE/AR or CE/CR; a FHIR notification answered 4xx/5xx).

    Written by the ingest process that answered, after the answer, so the message journal shows
    refused messages beside accepted ones. ``control_id``, ``message_type`` and
    ``sending_facility`` are what the header said (possibly untrusted: the message was refused);
    ``reason`` is the error text the sender got (ERR-8 / OperationOutcome). ``raw_b64`` holds at
    most the first ``raw_bytes`` limit of the payload (``raw_size`` is the whole size). The Kafka
    key is the sending facility (the patient may be unknown).
    """

    SCHEMA: ClassVar[str] = "carehub.inbound-refusal/1"

    source: str
    listener: str
    peer: str
    received_at: str
    control_id: str
    message_type: str
    sending_facility: str
    patient_key: str
    ack_code: str
    error_code: str
    reason: str
    raw_b64: str
    raw_size: int
    charset: str = "utf-8"

    def text(self) -> str:
        return base64.b64decode(self.raw_b64).decode(self.charset, errors="replace")


@dataclass(frozen=True, slots=True)
class CareEvent(Record):
    """A normalized care event: what happened to which patient, as FHIR R4.

    ``kind`` is one of: admit, discharge, transfer, register, pre-admit,
    update, cancel-admit, cancel-transfer, cancel-discharge, merge, link,
    unlink, outpatient-visit, leave-of-absence, return-from-leave, other.
    ``bundle`` is a FHIR R4 Bundle (type collection) holding every resource
    built from the message; ``labels`` carry security labels (Part 2 etc.).
    The JSON Schema lives in config/schemas/care-event.schema.json.
    """

    SCHEMA: ClassVar[str] = "carehub.care-event/1"
    #: 1.1: attributes admission_type, lace and lace_detail (the LACE index at discharge).
    MINOR: ClassVar[int] = 1

    event_id: str
    kind: str
    occurred_at: str
    patient_key: str
    identifiers: list[JSONObject]
    encounter_class: str
    facility: str
    source: JSONObject
    bundle: JSONObject
    patient_id: str
    encounter_id: str | None = None
    location: str = ""
    trigger: str = ""
    labels: list[JSONObject] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)
    attributes: JSONObject = field(default_factory=dict)
    #: The original HL7v2 text (for ``forward`` to MLLP recipients); empty when not from HL7v2.
    source_hl7: str = ""


@dataclass(frozen=True, slots=True)
class Delivery(Record):
    """One thing to deliver: a payload for one recipient through one action.

    ``idempotency_key`` is stable for (event, recipient, action) across retries
    and restarts so recipients can discard duplicates.
    """

    SCHEMA: ClassVar[str] = "carehub.delivery/1"
    #: 1.1 added ``corrects`` (docs/records.md).
    MINOR: ClassVar[int] = 1

    delivery_id: str
    idempotency_key: str
    event_id: str
    patient_key: str
    recipient_id: str
    action: str
    channel: str
    endpoint: str
    content_type: str
    #: Read from a topic, its bytes until something reads into it (core.payload); a dict given here is wrapped.
    payload: Payload
    rule_id: str
    map_version: str
    attempt: int = 0
    #: Why this delivery exists (the routing rule, conditions and how the recipient was resolved).
    reason: str = ""
    #: On a retry topic: when (epoch seconds) the next attempt is due.
    due_at: float = 0.0
    #: Security labels of what the payload discloses; the send-time consent gate decides on them.
    labels: list[JSONObject] = field(default_factory=list)
    #: A correction (cancel, key-field correction, merge): the delivery id of the original it corrects.
    #: Sent only when the journal shows the recipient received that original (streams.corrections).
    corrects: str = ""

    LAZY: ClassVar[frozenset[str]] = frozenset({"payload"})

    def __post_init__(self) -> None:
        object.__setattr__(self, "payload", Payload.of(self.payload))


@dataclass(frozen=True, slots=True)
class DeliveryOutcome(Record):
    """What became of a delivery: delivered, or failed with a reason."""

    SCHEMA: ClassVar[str] = "carehub.delivery-outcome/1"

    delivery_id: str
    idempotency_key: str
    event_id: str
    recipient_id: str
    action: str
    status: str
    attempts: int
    reason: str
    finished_at: str
    http_status: int | None = None


@dataclass(frozen=True, slots=True)
class TaskEvent(Record):
    """A referral Task changed status, or went past restriction.period.end (``kind`` overdue)."""

    SCHEMA: ClassVar[str] = "carehub.task-event/1"

    task_id: str
    kind: str
    from_status: str | None
    to_status: str
    at: str
    source: str
    owner: str = ""
    requester: str = ""
    turnaround_s: float | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter(Record):
    """A record that could not be processed, with the stage and reason."""

    SCHEMA: ClassVar[str] = "carehub.dead-letter/1"

    stage: str
    error_code: str
    reason: str
    source_topic: str
    source_partition: int
    source_offset: int
    failed_at: str
    record: JSONObject


@dataclass(frozen=True, slots=True)
class FhirNotification(Record):
    """A FHIR Subscription notification as received on the rest-hook endpoint.

    ``kind`` is the notification type (handshake, heartbeat, event-notification,
    query-status, query-event) or ``carehub-check`` for the hub's own heartbeat
    timer tick. ``bundle`` is the notification Bundle exactly as posted. The
    Kafka key is the source name: the patient is unknown until the focus is read.
    """

    SCHEMA: ClassVar[str] = "carehub.fhir-notification/1"

    source: str
    subscription: str
    kind: str
    received_at: str
    bundle: JSONObject
    subscription_ref: str = ""
    events_since_start: int | None = None
    event_numbers: list[int] = field(default_factory=list)
    fhir_version: str = "r4-backport"
