"""Refused blocks are reported for the message journal: the handler tells what it refused and why,
and the recorder writes them in order, holding them while the broker is away."""

from __future__ import annotations

import asyncio
import base64

from carehub.adapters.mllp.framing import RejectedFrame
from carehub.adapters.mllp.inbound import REFUSAL_RAW_BYTES, InboundHandler, Receipt
from carehub.core.errors import MessageTooLargeError, StorageUnavailableError
from carehub.core.metrics import Metrics
from carehub.core.records import InboundRefusal
from carehub.core.settings import MLLPSettings
from carehub.refusals import RefusalRecorder

from .mllp_testkit import ListPublisher, UnavailablePublisher, adt

RECEIPT = Receipt("test-listener", "10.0.0.9:40001")


def _handler(publisher: object, seen: list[InboundRefusal]) -> InboundHandler:
    return InboundHandler(publisher, MLLPSettings(), on_refusal=seen.append)  # type: ignore[arg-type]


async def test_a_refused_message_is_reported_with_its_ack_code_reason_and_the_header_it_had() -> None:
    seen: list[InboundRefusal] = []
    reply = await _handler(ListPublisher(), seen).handle(adt("BAD-1", version="9.9").encode(), RECEIPT)
    assert reply.code == "AR"  # 203 unsupported version id
    (refusal,) = seen
    assert (refusal.source, refusal.ack_code, refusal.error_code) == ("mllp", "AR", reply.error_code)
    assert (refusal.control_id, refusal.message_type, refusal.sending_facility) == ("BAD-1", "ADT^A01", "SFAC")
    assert "9.9" in refusal.reason and refusal.listener == "test-listener" and refusal.peer == RECEIPT.peer
    assert refusal.patient_key == "HOSP|12345"
    assert refusal.text() == adt("BAD-1", version="9.9") and refusal.raw_size == len(adt("BAD-1", version="9.9"))
    content = await _handler(ListPublisher(), seen).handle(adt("NOPID-1", pid=None).encode(), RECEIPT)
    assert content.code == "AE"
    assert (seen[-1].ack_code, seen[-1].control_id, seen[-1].patient_key) == ("AE", "NOPID-1", "")


async def test_a_broker_outage_is_reported_as_ar_and_an_accepted_message_is_not_reported() -> None:
    seen: list[InboundRefusal] = []
    reply = await _handler(UnavailablePublisher(), seen).handle(adt("DOWN-1").encode(), RECEIPT)
    assert reply.code == "AR" and [r.ack_code for r in seen] == ["AR"]
    assert seen[0].error_code == reply.error_code and seen[0].control_id == "DOWN-1"
    accepted: list[InboundRefusal] = []
    assert (await _handler(ListPublisher(), accepted).handle(adt("OK-1").encode(), RECEIPT)).code == "AA"
    assert accepted == []


async def test_a_block_the_framing_refused_is_reported_with_its_head_only() -> None:
    seen: list[InboundRefusal] = []
    head = adt("BIG-1").encode()[:100]
    reply = _handler(ListPublisher(), seen).reject(RejectedFrame(MessageTooLargeError("too big"), head), RECEIPT)
    (refusal,) = seen
    assert refusal.ack_code == reply.code and refusal.control_id == "BIG-1" and refusal.reason == "too big"
    assert base64.b64decode(refusal.raw_b64) == head


async def test_an_unreadable_block_is_reported_without_a_header_and_its_raw_is_capped() -> None:
    seen: list[InboundRefusal] = []
    junk = b"not hl7 at all " * 10_000
    await _handler(ListPublisher(), seen).handle(junk, RECEIPT)
    (refusal,) = seen
    assert (refusal.control_id, refusal.message_type, refusal.patient_key) == ("", "", "")
    assert refusal.raw_size == len(junk) and len(base64.b64decode(refusal.raw_b64)) == REFUSAL_RAW_BYTES


def _refusal(n: int) -> InboundRefusal:
    return InboundRefusal("mllp", "l", "p", "t", f"C-{n}", "ADT^A01", "F", "", "AE", "e", "r", "", 0)


async def test_the_recorder_holds_refusals_while_the_broker_is_away_and_writes_them_in_order() -> None:
    written: list[str] = []
    down = asyncio.Event()
    down.set()

    async def publish(refusal: InboundRefusal) -> None:
        if down.is_set():
            raise StorageUnavailableError("the broker is unreachable")
        written.append(refusal.control_id)

    metrics = Metrics()
    recorder = RefusalRecorder(publish, metrics, capacity=3, retry_s=0.01)
    await recorder.start()
    for n in range(5):
        recorder.record(_refusal(n))
    await asyncio.sleep(0.05)
    assert written == [] and recorder.pending == 3 and metrics.total("refusals_dropped") == 2
    down.clear()
    async with asyncio.timeout(5):
        while recorder.pending:
            await asyncio.sleep(0.01)
    assert written == ["C-2", "C-3", "C-4"] and metrics.get("refusals_recorded", source="mllp") == 3
    await recorder.stop()


async def test_a_refusal_too_large_to_write_is_dropped_and_does_not_hold_the_others_up() -> None:
    written: list[str] = []

    async def publish(refusal: InboundRefusal) -> None:
        if refusal.control_id == "C-0":
            raise MessageTooLargeError("too large")
        written.append(refusal.control_id)

    metrics = Metrics()
    recorder = RefusalRecorder(publish, metrics, retry_s=0.01)
    await recorder.start()
    recorder.record(_refusal(0))
    recorder.record(_refusal(1))
    await recorder.stop()
    assert written == ["C-1"] and metrics.total("refusals_dropped") == 1
