"""Per-subscription state, as stored in the subscription table (JSON)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

import orjson

HEALTHY, UNHEALTHY, UNKNOWN = "healthy", "unhealthy", "unknown"


@dataclass(frozen=True, slots=True)
class SubscriptionState:
    source: str
    subscription: str
    subscription_ref: str = ""
    #: the status the source last reported (requested, active, error, off)
    status: str = ""
    health: str = UNKNOWN
    reason: str = "nothing received yet"
    #: the highest event number accounted for (received, recovered or known missing)
    last_event_number: int = 0
    #: event numbers known to exist but not received or recovered yet
    missing: tuple[int, ...] = ()
    last_notification_at: str = ""
    last_heartbeat_at: str = ""
    last_recovery_at: str = ""
    recovered: int = 0

    @property
    def key(self) -> str:
        return state_key(self.source, self.subscription)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["missing"] = list(self.missing)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SubscriptionState:
        """Fields a newer release added are ignored (docs/records.md: table values evolve like records)."""
        known = {f.name for f in fields(cls)} - {"missing"}
        return cls(**{k: v for k, v in data.items() if k in known}, missing=tuple(data.get("missing", ())))

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_json(cls, raw: bytes | str) -> SubscriptionState:
        data: dict[str, Any] = orjson.loads(raw)
        return cls.from_dict(data)


def state_key(source: str, subscription: str) -> str:
    return f"{source}|{subscription}"


def parse_time(value: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
