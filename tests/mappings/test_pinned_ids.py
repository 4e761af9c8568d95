"""Resource ids are stored downstream: pin them so a speed-up can never change them."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import pytest

from bench.messages import message
from carehub.mappings import convert_text, ids
from tests.mappings.conftest import read_message


def _ids(text: str) -> tuple[str, str, str | None, str, list[str]]:
    result = convert_text(text)
    event = result.event
    keys = sorted(f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in result.bundle["entry"])
    return event.event_id, event.patient_id, event.encounter_id, result.bundle["id"], keys


def _digest(keys: list[str]) -> str:
    return hashlib.sha1("\n".join(keys).encode()).hexdigest()


def test_bench_admit_ids_are_pinned() -> None:
    event_id, patient, encounter, bundle, keys = _ids(message(7).decode())
    assert (event_id, patient, encounter, bundle) == (
        "7c5ee056-d411-537a-ad2a-bc67db4701dd",
        "acfae121-28c5-5253-ab84-943bfe826ddd",
        "86ecfb06-308c-5969-9642-0f91aeea00b6",
        "9ea968c9-c3c2-54cb-9c26-8fdc5a801d44",
    )
    assert keys == [
        "Condition/09ad7254-f181-5fb1-8d9e-a5f1a9f05158",
        "Coverage/0d95e1d1-fdf7-52de-a755-31f38630943c",
        "Device/b8deb7c5-a976-5932-b631-2226b7c53ebe",
        "Encounter/86ecfb06-308c-5969-9642-0f91aeea00b6",
        "Location/3e627e0e-6ab8-54b5-baeb-55bc0fc92ac7",
        "MessageHeader/3cef5583-7791-50e5-906c-1efc6de311b7",
        "Organization/92a18c4a-a526-585d-b328-cc086e71de4c",
        "Organization/a2fb4f15-aeaf-590c-90b3-34d5874723a6",
        "Organization/c66ef921-749c-587d-a3bc-bdc521222f21",
        "Patient/acfae121-28c5-5253-ab84-943bfe826ddd",
        "Practitioner/846b0f97-470f-5ce8-8af5-9fc3fb50a4e4",
        "Practitioner/fcdf7424-d161-5057-af61-2c7b73a28208",
        "Provenance/ede19e62-4d6b-52c0-814c-f6f488456a18",
    ]


@pytest.mark.parametrize(
    ("name", "pinned", "digest"),
    [
        (
            "msfc__ADT_A01__ADT-A01-01.hl7",
            (
                "9da296e2-f00b-5849-a731-fc8f7f4a5ece",
                "55c2cb99-50ae-58cc-b09f-bd7ca21b6b49",
                "f6e632b2-7f59-5778-9cb9-cafa0f9fca9b",
                "61e6d51a-d371-50c9-b233-dd9a6b44992a",
            ),
            # PV1-37 (discharged to location) is mapped since #18: one Location more, every earlier id unchanged
            # (without Location/55e51eee-181e-507a-a88e-6ee114e1ea46 the digest is a527833cc7fd...).
            "63ad6a2ed2441d0997038159679810d5c80bc06f",
        ),
        (
            "lfh__ADT_A40__HL7MergeFHIRConversionTest_L277.hl7",
            (
                "ee063584-21bf-571e-864a-40714abd77c0",
                "4ad6085a-8d0a-5f80-b6f3-8ba7719e7297",
                None,
                "097c6f79-f5a1-5c17-8391-fdeb54136017",
            ),
            "bfe6f2cd69569d05ca008d412b200cd8e27a8a2c",
        ),
    ],
)
def test_corpus_ids_are_pinned(corpus_dir: Path, name: str, pinned: tuple[str, ...], digest: str) -> None:
    *head, keys = _ids(read_message(corpus_dir / name))
    assert tuple(head) == pinned
    assert _digest(keys) == digest


def test_resource_id_is_rfc4122_uuid5() -> None:
    for key in [("Patient", "MRN1|RGH"), ("Encounter", "visit", "RGH", "V1"), ("Practitioner", "é|ü", "")]:
        assert ids.resource_id(*key) == str(uuid.uuid5(ids.NAMESPACE, "|".join(key)))


@pytest.mark.parametrize(
    "value",
    [
        {"value": "1234", "system": "urn:oid:2.16.840.1.113883.4.6", "type": {"coding": [{"code": "NPI"}]}},
        [{"value": '12"34'}, {"value": "back\\slash"}],
        {"family": "Müller", "given": ["José", "𝔘"]},
        {"text": "tab\there\x7fdel\x01ctl"},
        {"b": 1.5, "a": 1e16, "c": 1e-05, "d": float("nan"), "e": float("inf")},
        {"n": None, "t": True, "f": False, "i": -12, "big": 2**70},
        {"z": {"y": [1, 2, {"x": "ANULL.e"}]}, "a": "E"},
        {1: "non-str key"},
    ],
)
def test_canonical_json_is_json_dumps_byte_for_byte(value: object) -> None:
    """content_id hashes this text: the orjson fast path must never spell anything differently."""
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"))
    assert ids.canonical_json(value) == expected


def test_the_event_id_read_from_the_header_alone_is_the_converted_events_for_the_whole_corpus() -> None:
    """The message journal takes the event id without converting (mappings.event_id_of); it must be the
    id normalize gives, for every corpus message that converts, and raise where conversion raises early."""
    from carehub.core.errors import MappingError
    from carehub.mappings import event_id_of
    from tests.mappings.conftest import corpus_messages

    compared = 0
    for path in corpus_messages():
        text = read_message(path)
        try:
            expected = convert_text(text).event.event_id
        except MappingError:
            continue
        assert event_id_of(text) == expected, path.name
        compared += 1
    assert compared >= 80
    assert event_id_of(message(7).decode()) == "7c5ee056-d411-537a-ad2a-bc67db4701dd"
    with pytest.raises(MappingError):
        event_id_of(message(7).decode().replace("ADT^A01", "ORU^R01", 1))
