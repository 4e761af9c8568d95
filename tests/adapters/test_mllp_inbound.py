"""The inbound handler on plain bytes: acceptance rules, the record stored, the ACK."""

from __future__ import annotations

import base64
import logging
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest

from carehub.adapters.mllp.framing import RejectedFrame
from carehub.adapters.mllp.inbound import InboundHandler, Publisher, Receipt, Reply, ack_code_for
from carehub.core.errors import MessageTooLargeError, StorageUnavailableError, UnsupportedVersionError
from carehub.core.records import InboundMessage
from carehub.core.settings import MLLPSettings

from .mllp_testkit import (
    Ack,
    ExplodingPublisher,
    ListPublisher,
    SlowPublisher,
    UnavailablePublisher,
    adt,
)

RECEIPT = Receipt("test-listener", "10.0.0.9:40001")


async def handle(
    payload: bytes | str,
    publisher: Publisher | None = None,
    settings: MLLPSettings | None = None,
    **kwargs: Any,
) -> tuple[Reply, Ack]:
    handler = InboundHandler(publisher or ListPublisher(), settings or MLLPSettings(), **kwargs)
    data = payload.encode() if isinstance(payload, str) else payload
    reply = await handler.handle(data, RECEIPT)
    assert reply.ack is not None
    return reply, Ack.parse(reply.ack, "latin-1")


def err_code(ack: Ack) -> str:
    """The 0357 code from ERR-3 (v2.5+) or ERR-1.4 (older)."""
    err = ack.segments["ERR"]
    if len(err) > 3 and err[3]:
        return err[3].split("^")[0]
    return err[1].split("^")[3].split("&")[0]


def err_location(ack: Ack) -> str:
    err = ack.segments["ERR"]
    return err[2] if len(err) > 3 and err[3] else "^".join(err[1].split("^")[:3])


async def test_valid_adt_is_stored_then_accepted() -> None:
    publisher = ListPublisher()
    payload = adt("C-1", version="2.5.1").encode()
    reply, ack = await handle(payload, publisher)
    assert (reply.code, ack.code, ack.acked_id) == ("AA", "AA", "C-1")
    assert "ERR" not in ack.segments
    [record] = publisher.messages
    assert isinstance(record, InboundMessage)
    assert record.raw == payload
    assert base64.b64decode(record.raw_b64) == payload
    assert record.charset == "utf-8"
    assert (record.listener, record.peer) == ("test-listener", "10.0.0.9:40001")
    assert (record.control_id, record.message_type, record.trigger_event) == ("C-1", "ADT", "A01")
    assert (record.version, record.sending_application, record.sending_facility) == ("2.5.1", "SAPP", "SFAC")
    assert record.patient_key == "HOSP|12345"
    received = datetime.fromisoformat(record.received_at.replace("Z", "+00:00"))
    assert received.utcoffset() is not None and received.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert InboundMessage.from_json(record.to_json()) == record


async def test_unsupported_message_type_is_rejected_and_not_stored() -> None:
    publisher = ListPublisher()
    reply, ack = await handle(adt(message_type="ORU^R01^ORU_R01"), publisher)
    assert (ack.code, err_code(ack), err_location(ack)) == ("AR", "200", "MSH^1^9")
    assert reply.error_code == "unsupported-message-type"
    assert publisher.messages == []


@pytest.mark.parametrize("version", ["2.9", "2.10", "2.0", "3.0", "", "two"])
async def test_version_outside_range_is_rejected(version: str) -> None:
    publisher = ListPublisher()
    _, ack = await handle(adt(version=version), publisher)
    assert (ack.code, err_code(ack), err_location(ack)) == ("AR", "203", "MSH^1^12")
    assert publisher.messages == []


@pytest.mark.parametrize("version", ["2.1", "2.3.1", "2.5^^", "2.8.1", "2.7.1^ISO"])
async def test_versions_inside_range_are_accepted(version: str) -> None:
    _, ack = await handle(adt(version=version))
    assert ack.code == "AA"


async def test_version_bounds_come_from_settings() -> None:
    narrow = replace(MLLPSettings(), min_version="2.5", max_version="2.5.1")
    assert (await handle(adt(version="2.4"), settings=narrow))[1].code == "AR"
    assert (await handle(adt(version="2.5.1"), settings=narrow))[1].code == "AA"


async def test_unknown_processing_id_is_rejected_but_a_missing_one_is_tolerated() -> None:
    _, ack = await handle(adt(processing_id="X"))
    assert (ack.code, err_code(ack), err_location(ack)) == ("AR", "202", "MSH^1^11")
    _, ack = await handle(adt(processing_id=""))
    assert ack.code == "AA"


async def test_adt_without_pid_is_an_application_error() -> None:
    publisher = ListPublisher()
    _, ack = await handle(adt(pid=None), publisher)
    assert (ack.code, err_code(ack), err_location(ack)) == ("AE", "101", "PID^1^3")
    assert publisher.messages == []


async def test_adt_with_empty_pid3_is_an_application_error() -> None:
    _, ack = await handle(adt(pid="PID|1||^^^HOSP^MR||DOE^JANE"))
    assert (ack.code, err_code(ack), err_location(ack)) == ("AE", "101", "PID^1^3")


async def test_patient_key_prefers_mrn_with_authority() -> None:
    publisher = ListPublisher()
    await handle(adt(pid="PID|1||123-45-6789^^^SSA^SS~777^^^MAIN^MR||DOE^JANE"), publisher)
    assert publisher.messages[0].patient_key == "MAIN|777"


async def test_v21_trigger_event_comes_from_evn() -> None:
    publisher = ListPublisher()
    _, ack = await handle(adt(version="2.1", message_type="ADT"), publisher)
    assert ack.code == "AA"
    assert publisher.messages[0].trigger_event == "A01"


async def test_message_without_any_trigger_event_is_refused() -> None:
    text = adt(message_type="ADT").replace("EVN|A01|", "EVN||")
    _, ack = await handle(text)
    assert (ack.code, err_code(ack), err_location(ack)) == ("AE", "101", "MSH^1^9")


async def test_storage_failure_answers_ar_207_never_aa() -> None:
    """HL7 v2: AR is for failures unrelated to the content (the broker is down)."""
    publisher = UnavailablePublisher()
    reply, ack = await handle(adt("C-9"), publisher)
    assert publisher.attempts == 1
    assert (reply.code, ack.code, ack.acked_id, err_code(ack)) == ("AR", "AR", "C-9", "207")
    assert reply.error_code == "storage-unavailable"


async def test_system_error_ack_setting_answers_ae_for_senders_that_expect_it() -> None:
    settings = replace(MLLPSettings(), system_error_ack="AE")
    _, ack = await handle(adt("C-10"), UnavailablePublisher(), settings)
    assert (ack.code, err_code(ack)) == ("AE", "207")
    _, content = await handle(adt("C-11", version="9.9"), ListPublisher(), settings)
    assert content.code == "AR", "content errors keep their own code"


async def test_publish_deadline_answers_ar() -> None:
    reply, ack = await handle(adt(), SlowPublisher(), publish_timeout_s=0.05)
    assert (ack.code, err_code(ack)) == ("AR", "207")
    assert reply.error_code == "storage-unavailable"


async def test_unexpected_error_answers_ar_207_and_logs_no_phi(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    reply, ack = await handle(adt("C-77"), ExplodingPublisher())
    assert reply.ack is not None
    assert (ack.code, err_code(ack), ack.acked_id) == ("AR", "207", "C-77")
    assert "DOE" not in reply.ack.decode()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "RuntimeError" in logged and "C-77" in logged
    assert "DOE" not in logged and "19800101" not in logged


async def test_unreadable_msh_is_rejected_with_empty_msa2() -> None:
    _, ack = await handle(b"this is not hl7")
    assert (ack.code, ack.acked_id, err_code(ack)) == ("AR", "", "100")
    assert ack.field("MSH", 12) == "2.5"


async def test_broken_later_segment_still_echoes_the_control_id() -> None:
    text = adt("C-5") + "not a segment\r"
    _, ack = await handle(text)
    assert (ack.code, ack.acked_id, err_code(ack)) == ("AR", "C-5", "100")


async def test_latin1_message_is_decoded_by_msh18_and_answered_in_latin1() -> None:
    publisher = ListPublisher()
    text = adt("C-8", charset="8859/1", sending_facility="KLINIKUM MÜNCHEN").replace("DOE^JANE", "MÜLLER^JÖRG")
    payload = text.encode("latin-1")
    reply, ack = await handle(payload, publisher)
    assert ack.code == "AA"
    record = publisher.messages[0]
    assert record.charset == "iso8859-1"
    assert record.raw == payload
    assert "MÜLLER^JÖRG" in record.text()
    assert reply.ack is not None and b"KLINIKUM M\xdcNCHEN" in reply.ack  # the echoed facility, in the sender's charset
    assert ack.field("MSH", 6) == "KLINIKUM MÜNCHEN"


async def test_oversize_frame_is_rejected_with_its_control_id() -> None:
    handler = InboundHandler(ListPublisher(), MLLPSettings())
    frame = RejectedFrame(MessageTooLargeError("too big"), adt("BIG-1").encode()[:100])
    reply = handler.reject(frame, RECEIPT)
    assert reply.ack is not None
    ack = Ack.parse(reply.ack)
    assert (ack.code, ack.acked_id, err_code(ack)) == ("AR", "BIG-1", "207")
    assert reply.error_code == "message-too-large"


def test_ack_code_comes_from_the_error_class() -> None:
    assert ack_code_for(None) == "AA"
    assert ack_code_for(StorageUnavailableError("x")) == "AR"
    assert ack_code_for(UnsupportedVersionError("x")) == "AR"


def test_invalid_version_bounds_in_settings_fail_early() -> None:
    with pytest.raises(ValueError):
        InboundHandler(ListPublisher(), replace(MLLPSettings(), max_version="latest"))


async def test_two_messages_in_one_block_are_refused() -> None:
    publisher = ListPublisher()
    _, ack = await handle(adt("M1") + adt("M2"), publisher)
    assert (ack.code, ack.acked_id, err_code(ack), err_location(ack)) == ("AR", "M1", "100", "MSH^2^")
    assert publisher.messages == []


async def test_msh18_is_read_from_msh_only_when_segments_end_with_lf() -> None:
    # LF-separated UTF-8 message without MSH-18 whose *later* text, counted as if it
    # were MSH fields, lands on MSH-18 with "8859/1" (a CR further on used to make the
    # charset reader treat everything before it as MSH).
    text = "MSH|^~\\&|SAPP|SFAC|RAPP|RFAC|20240101||ADT^A01|LF1|P|2.5\nEVN|A01|x|x|x|x|8859/1|x\n"
    text += "PID|1||12345^^^HOSP^MR||MÜLLER^JÖRG\rPV1|1\r"
    publisher = ListPublisher()
    _, ack = await handle(text.encode("utf-8"), publisher)
    assert ack.code == "AA"
    assert publisher.messages[0].charset == "utf-8"
    assert "MÜLLER^JÖRG" in publisher.messages[0].text()


async def test_records_that_would_not_fit_are_refused_before_they_are_stored() -> None:
    """kafka.max_record_bytes: the inbound record itself, then (for big messages) the CareEvent it becomes."""
    measured: list[str] = []

    def preflight(record: InboundMessage) -> int:
        measured.append(record.control_id)
        return 990_000 if record.control_id == "EXPANDS" else 10_000

    settings = replace(MLLPSettings(), preflight_bytes=16_384)
    publisher = ListPublisher()
    small = adt("SMALL")
    big = adt("EXPANDS").replace("DOE^JANE", "DOE" + "X" * 20_000 + "^JANE")
    fits = adt("FITS").replace("DOE^JANE", "DOE" + "X" * 20_000 + "^JANE")
    huge = adt("HUGE").replace("DOE^JANE", "DOE" + "X" * 800_000 + "^JANE")
    kwargs = {"max_record_bytes": 1_000_000, "preflight": preflight}
    answers = [await handle(text, publisher, settings, **kwargs) for text in (small, big, fits, huge)]
    assert [(a.code, a.acked_id) for _, a in answers] == [
        ("AA", "SMALL"),
        ("AR", "EXPANDS"),
        ("AA", "FITS"),
        ("AR", "HUGE"),
    ]
    assert [r.error_code for r, _ in answers] == ["", "message-too-large", "", "message-too-large"]
    assert publisher.control_ids() == ["SMALL", "FITS"]
    assert measured == ["EXPANDS", "FITS"], "small messages are not converted; a record too big is refused first"
