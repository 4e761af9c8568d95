"""Topic records evolve: each has a versioned JSON Schema; readers take newer minors and unknown fields,
and refuse another major (or a broken record) with an error that names the versions."""

from __future__ import annotations

import json
from dataclasses import MISSING, fields
from typing import Any

import jsonschema
import orjson
import pytest

from carehub.core.errors import RecordError, RecordVersionError
from carehub.core.records import (
    CareEvent,
    DeadLetter,
    Delivery,
    DeliveryOutcome,
    FhirNotification,
    InboundMessage,
    InboundRefusal,
    Record,
    TaskEvent,
    parse_schema_id,
)
from tests.conftest import CONFIG
from tests.delivery.helpers import delivery

RECORDS: list[type[Record]] = [
    InboundMessage,
    InboundRefusal,
    CareEvent,
    Delivery,
    DeliveryOutcome,
    TaskEvent,
    DeadLetter,
    FhirNotification,
]


def schema_of(cls: type[Record]) -> dict[str, Any]:
    name = cls.SCHEMA.split("/")[0].removeprefix("carehub.")
    loaded: dict[str, Any] = json.loads((CONFIG / "schemas" / f"{name}.schema.json").read_text(encoding="utf-8"))
    return loaded


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__name__)
def test_every_record_has_a_versioned_schema_listing_its_fields(cls: type[Record]) -> None:
    schema = schema_of(cls)
    assert schema["x-carehub-record"] == cls.SCHEMA.split("/")[0]
    assert schema["x-carehub-version"] == f"{cls.SCHEMA.split('/')[1]}.{cls.MINOR}"
    assert set(schema["properties"]) == {"schema", *(f.name for f in fields(cls))}  # type: ignore[arg-type]
    required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}  # type: ignore[arg-type]
    assert required <= set(schema["required"]) <= set(schema["properties"])
    jsonschema.Draft202012Validator.check_schema(schema)


def test_a_written_record_validates_against_its_schema() -> None:
    written = orjson.loads(delivery(1).to_json())
    jsonschema.Draft202012Validator(schema_of(Delivery)).validate(written)
    assert written["schema"] == "carehub.delivery/1.1"
    assert orjson.loads(TaskEvent("t", "created", None, "requested", "now", "hub").to_json())["schema"] == (
        "carehub.task-event/1"
    ), "1.0 is written as the pre-versioning readers expect it"


def test_schema_ids() -> None:
    assert parse_schema_id("carehub.delivery/1") == ("carehub.delivery", 1, 0)
    assert parse_schema_id("carehub.delivery/1.12") == ("carehub.delivery", 1, 12)
    for bad in ("carehub.delivery", "carehub.delivery/x", None, 3, "carehub.delivery/1.2.3"):
        with pytest.raises(RecordError):
            parse_schema_id(bad)


def test_a_newer_minor_with_unknown_fields_is_read() -> None:
    data = {**delivery(2).to_dict(), "schema": "carehub.delivery/1.7", "priority": "stat", "trace": {"span": "a"}}
    del data["labels"], data["due_at"]  # optional fields a writer may leave out
    read = Delivery.from_json(orjson.dumps(data))
    assert read == delivery(2)


def test_another_major_is_refused_with_both_versions_named() -> None:
    data = {**delivery(3).to_dict(), "schema": "carehub.delivery/2.0"}
    with pytest.raises(RecordVersionError) as newer:
        Delivery.from_dict(data)
    assert newer.value.code == "record-version"
    assert "carehub.delivery/2.0 is a newer major version than this worker reads (carehub.delivery/1.x)" in str(
        newer.value
    )
    with pytest.raises(RecordVersionError, match="an older major"):
        Delivery.from_dict({**data, "schema": "carehub.delivery/0.9"})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "a JSON object"),
        (
            orjson.dumps({**delivery(4).to_dict(), "schema": "carehub.task-event/1"}),
            "expected a carehub.delivery record",
        ),
        (
            orjson.dumps({"schema": "carehub.delivery/1.1", "delivery_id": "d"}),
            "lacks required field(s) idempotency_key",
        ),
    ],
)
def test_a_broken_record_is_refused_with_its_reason(raw: bytes, message: str) -> None:
    with pytest.raises(RecordError, match=message.replace("(", r"\(").replace(")", r"\)")) as refused:
        Delivery.from_json(raw)
    assert refused.value.code == "bad-record"


def test_table_values_ignore_fields_a_newer_release_added() -> None:
    from carehub.streams.subscriptions.state import SubscriptionState

    stored = {**SubscriptionState("ehr", "adt", status="active", missing=(3,)).to_dict(), "lag_ms": 12}
    assert SubscriptionState.from_dict(stored) == SubscriptionState("ehr", "adt", status="active", missing=(3,))
