"""A delivery's payload read from a topic stays its bytes until read (core.payload), and nothing about it changes."""

from __future__ import annotations

import dataclasses
import json

import orjson
import pytest

from carehub.connectors.base import payload_bytes
from carehub.core.errors import RecordError
from carehub.core.payload import Payload
from carehub.core.records import Delivery
from carehub.streams.consent.gate import disclosed_labels, needs_consent
from tests.delivery.helpers import delivery

PART2 = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "42CFRPart2"}


def test_a_delivery_read_from_its_record_writes_the_same_bytes_and_sends_the_payload_as_written() -> None:
    written = delivery(7)
    record = written.to_json()
    read = Delivery.from_json(record)
    assert read.payload.may_contain(b"no such key") is False  # unread: only its bytes are searched
    assert read.to_json() == record
    assert payload_bytes(read) == orjson.dumps(written.payload.value)
    assert read == written
    assert read.payload["entry"] == [{"seq": 7, "patient": "RGH|MRN1"}]


def test_a_payload_once_read_is_its_object_and_to_dict_is_plain_json() -> None:
    read = Delivery.from_json(delivery(1).to_json())
    assert dict(read.payload) == read.payload.value
    assert read.payload.may_contain(b"anything")  # read: no shortcut any more
    plain = read.to_dict()
    assert isinstance(plain["payload"], dict)
    assert json.loads(json.dumps(plain))["payload"]["id"] == read.delivery_id
    changed = dataclasses.replace(read, payload=Payload({**read.payload.value, "id": "other"}))
    assert orjson.loads(changed.to_json())["payload"]["id"] == "other"


def test_a_dict_given_as_payload_is_wrapped_and_anything_else_refused() -> None:
    fields = {f.name: getattr(delivery(1), f.name) for f in dataclasses.fields(Delivery)}
    assert isinstance(Delivery(**{**fields, "payload": {"resourceType": "Bundle"}}).payload, Payload)
    with pytest.raises(RecordError, match="JSON object"):
        Delivery(**{**fields, "payload": ["not", "an", "object"]})


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (b'{"schema": "carehub.delivery/1.1", "payload": [1]}', "JSON object"),
        (b'{"schema": "carehub.delivery/1.1", "payload": {"a": }', "not JSON"),
        (b"[1, 2]", "a JSON object"),
        (b"not json", "not JSON"),
    ],
)
def test_a_record_whose_payload_or_body_is_not_an_object_is_a_record_error(value: bytes, why: str) -> None:
    with pytest.raises(RecordError, match=why):
        Delivery.from_json(value)


def test_a_newer_minor_with_fields_this_release_does_not_know_still_reads() -> None:
    data = orjson.loads(delivery(3).to_json())
    data.update({"schema": "carehub.delivery/1.9", "added_later": {"x": [1]}})
    read = Delivery.from_json(orjson.dumps(data))
    assert read.delivery_id == data["delivery_id"] and read.payload["id"] == data["payload"]["id"]


def test_the_send_time_gate_sees_labels_in_an_unread_payload_however_the_key_is_spelled() -> None:
    base = delivery(2)
    meta = {**base.payload.value, "meta": {"security": [PART2]}}
    labelled = dataclasses.replace(base, payload=Payload(meta))
    record = labelled.to_json()
    assert needs_consent(Delivery.from_json(record))
    escaped = record.replace(b'"security"', b'"\\u0073ecurity"')  # the same key, as JSON may spell it
    assert orjson.loads(escaped)["payload"]["meta"]["security"] == [PART2]
    assert needs_consent(Delivery.from_json(escaped))
    encounter = {"resourceType": "Encounter", "meta": {"security": [PART2]}}
    in_entry = {**base.payload.value, "entry": [{"resource": encounter}]}
    assert needs_consent(Delivery.from_json(dataclasses.replace(base, payload=Payload(in_entry)).to_json()))
    clean = Delivery.from_json(base.to_json())
    assert disclosed_labels(clean) == [] and not needs_consent(clean)


def test_a_payload_repr_shows_no_content() -> None:
    read = Delivery.from_json(delivery(4, patient="RGH|SECRET-MRN").to_json())
    assert "SECRET" not in repr(read.payload) and "bytes unread" in repr(read.payload)
    assert "SECRET" not in repr(Payload({"name": "SECRET"}))
