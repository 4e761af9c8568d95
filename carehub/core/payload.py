"""A delivery's payload: a JSON object that stays the bytes it travelled as until something reads into it.

The deliver stage reads every delivery record, but most of them it only sends: the payload (a FHIR
Bundle of ~5-25 KB, ~190 dicts and lists) goes out as the same compact JSON the route stage wrote.
Parsing it into objects and encoding it again cost ~31 us and ~6 us per delivery, and the objects
stayed alive, for the collector to walk, as long as the delivery was in hand (docs/benchmarks.md,
session 9). A ``Payload`` made from the record's bytes (``from_raw``) parses them only when read
(``value``, or any mapping access); one made from an object (the route stage building it) is encoded
when written. Once the object exists it is what the payload is: ``raw`` is then its encoding, never
bytes kept from before, so what is sent is what was read. The object must not be changed in place
(records are immutable): build a new one (``Payload(new)``, ``dataclasses.replace``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from carehub.core.errors import RecordError

JSONObject = dict[str, Any]
NOT_AN_OBJECT = "a delivery payload must be a JSON object"


class Payload(Mapping[str, Any]):
    """A JSON object, read lazily from its encoding."""

    __slots__ = ("_raw", "_value")

    def __init__(self, value: JSONObject | None = None, *, raw: bytes | None = None) -> None:
        """``Payload(obj)``: the object; ``Payload(raw=...)`` (``from_raw``): its encoding, unread."""
        if raw is not None and value is None:
            self._value: JSONObject | None = None
            self._raw: bytes | None = raw
            return
        if not isinstance(value, dict) or raw is not None:
            raise RecordError(f"{NOT_AN_OBJECT}, not {type(value).__name__}")
        self._value, self._raw = value, None

    @classmethod
    def from_raw(cls, raw: bytes) -> Payload:
        """The payload encoded as ``raw`` (a JSON object, not parsed until read)."""
        if not raw.startswith(b"{"):
            raise RecordError(NOT_AN_OBJECT)
        return cls(raw=raw)

    @classmethod
    def of(cls, value: object) -> Payload:
        """``value`` itself when it is a Payload, else the object wrapped (refused unless a JSON object).

        ``object``, not the types it takes: a record's field as read (anything JSON holds) is refused here
        as a RecordError, where a compiled build (carehub._native) would check an annotation first."""
        if isinstance(value, Payload):
            return value
        if not isinstance(value, dict):
            raise RecordError(f"{NOT_AN_OBJECT}, not {type(value).__name__}")
        return cls(value)

    @property
    def value(self) -> JSONObject:
        """The object (parsed on first read; from then on the payload is this object)."""
        if self._value is None:
            assert self._raw is not None
            try:
                value = orjson.loads(self._raw)
            except orjson.JSONDecodeError as exc:
                raise RecordError(f"a delivery payload that is not JSON ({exc.msg})") from None
            if not isinstance(value, dict):
                raise RecordError(NOT_AN_OBJECT)
            self._value, self._raw = value, None
        return self._value

    @property
    def raw(self) -> bytes:
        """Its compact JSON: the bytes it was read from while unread, else the object's encoding."""
        if self._raw is not None:
            return self._raw
        assert self._value is not None
        return orjson.dumps(self._value)

    def may_contain(self, token: bytes) -> bool:
        """False only when ``token`` (say ``b'"security"'``, a key as JSON spells it) cannot be in it.

        Unread, the bytes are searched, and JSON can spell any character of a key as a ``\\u`` escape,
        so bytes with an escape in them may contain anything; read, this is True.
        """
        if self._raw is None:
            return True
        return token in self._raw or b"\\u" in self._raw

    def __getitem__(self, key: str) -> Any:
        return self.value[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.value)

    def __len__(self) -> int:
        return len(self.value)

    def __repr__(self) -> str:  # never the content: payloads carry PHI, and reprs reach logs
        state = f"{len(self._raw)} bytes unread" if self._raw is not None else f"{len(self.value)} keys"
        return f"Payload({state})"
