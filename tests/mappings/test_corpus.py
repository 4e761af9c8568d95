"""Every ADT in the corpus converts (or fails with a clear MappingError), validates, and keeps its data."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from carehub.adapters.hl7.header import pid_identifiers, read_header
from carehub.adapters.hl7.tokenizer import parse_message
from carehub.core.errors import MappingError
from carehub.core.patient import sender_patient_key
from carehub.core.records import CareEvent
from carehub.mappings import convert_text
from carehub.mappings.batch import split_messages
from carehub.mappings.postprocess import CARRIED_SEGMENT_URL
from carehub.mappings.validation import validate_bundle
from tests.mappings.conftest import corpus_messages, is_adt, read_message

SCHEMA = Path(__file__).resolve().parents[2] / "config" / "schemas" / "care-event.schema.json"
ADT_FILES = [p for p in corpus_messages() if is_adt(read_message(p))]


@pytest.fixture(scope="module")
def event_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))


def _messages(path: Path) -> list[str]:
    return [m for m in split_messages(read_message(path)) if is_adt(m)]


@pytest.mark.parametrize("path", ADT_FILES, ids=lambda p: p.name)
def test_adt_converts_validates_and_keys_like_ingest(
    path: Path, event_validator: jsonschema.Draft202012Validator
) -> None:
    for text in _messages(path):
        try:
            result = convert_text(text, received_at="2026-03-01T10:00:00Z", validate=True)
        except MappingError as exc:
            assert "MALFORMED" in path.name, f"a well-formed message failed: {exc}"
            assert exc.message and exc.code.startswith("mapping")
            continue
        assert validate_bundle(result.bundle) == []
        assert result.bundle is result.event.bundle
        assert result.bundle["entry"][0]["resource"]["resourceType"] == "MessageHeader"
        event = result.event.to_dict()
        errors = sorted(event_validator.iter_errors(event), key=str)
        assert not errors, [e.message for e in errors]
        assert CareEvent.from_json(result.event.to_json()) == result.event
        message = parse_message(text)
        pid, header = message.segment("PID"), read_header(message)
        assert pid is not None
        key = sender_patient_key(pid_identifiers(pid), header.sending_facility, header.sending_application, {})
        assert key is not None and result.event.patient_key == key
        assert not key.startswith("|"), "a patient key always has an authority"


def test_malformed_non_adt_and_batch_inputs_fail_cleanly() -> None:
    for text in ("", "garbage", "MSH|^~\\&|A|B|C|D|20200101||ORU^R01|1|P|2.5\rPID|1||1^^^X", "MSH|^~\\&|A\rEVN|A01"):
        with pytest.raises(MappingError):
            convert_text(text)


def test_unmapped_segments_are_reported_and_carried(corpus_dir: Path) -> None:
    text = read_message(corpus_dir / "nhapi__ADT_A08__CustomZSegmentTest_L18.hl7")
    result = convert_text(text)
    z_names = [s.name for s in parse_message(text).segments if s.name.startswith("Z")]
    assert z_names
    reported = [u.split("#")[0] for u in result.unmapped]
    assert set(z_names) <= set(reported)
    header = result.bundle["entry"][0]["resource"]
    carried = [e["valueString"] for e in header.get("extension", []) if e["url"] == CARRIED_SEGMENT_URL]
    assert sorted(c[:3] for c in carried) == sorted(reported)
    assert result.event.unmapped == result.unmapped


def test_batch_file_splits_into_messages(corpus_dir: Path) -> None:
    messages = split_messages(read_message(corpus_dir / "pyhl7__BATCH__sample_batch.hl7"))
    assert len(messages) == 1 and messages[0].startswith("MSH")
    assert not any(seg[:3] in ("FHS", "BHS", "BTS", "FTS") for m in messages for seg in m.split("\r"))
    two = "FHS|^~\\&\nBHS|^~\\&\r\n" + messages[0] + "\n" + messages[0] + "\rBTS|2\rFTS|1\n"
    split = split_messages(two)
    assert len(split) == 2 and split[0] == split[1] == messages[0]
