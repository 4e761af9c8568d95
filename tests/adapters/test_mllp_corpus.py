"""Walk the shared HL7v2 corpus over a real socket, found by glob (no copies in the repo).

Every ``*__MALFORMED.hl7`` file must get AR or AE with an ERR segment, and the
connection must keep serving: a valid message sent right after gets AA.
Every other ADT file must get AA with its own MSH-10 in MSA-2, and be stored
byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import StartServer
from .mllp_testkit import HL7_CORPUS, Ack, ListPublisher, MLLPClient, adt

MALFORMED = sorted(HL7_CORPUS.glob("*__MALFORMED.hl7"))
ADT = sorted(p for p in HL7_CORPUS.glob("*__ADT_*.hl7") if not p.name.endswith("__MALFORMED.hl7"))

# What is right for each malformed file we know (MSA-1, HL7 table 0357 code). Files
# added to the corpus later still get the generic check (AR/AE plus ERR).
EXPECTED: dict[str, tuple[str, str]] = {
    # MSH is fine (v2.2) but the message has no PID at all: an ADT without a
    # patient cannot be keyed, so AE 101 at PID-3 (ERR-1 ELD, since v2.2 < 2.5).
    "hapi__ADT_A06__NewPipeParserTest_L634__MALFORMED.hl7": ("AE", "101"),
    # MSH-9 "ADT^" and no MSH-10/MSH-12: readable MSH, but no version to accept.
    "hl7apy__NOTYPE__incomplete_msh9__MALFORMED.hl7": ("AR", "203"),
    # MSH-2 has seven encoding characters: the MSH cannot be read.
    "hl7apy__NOTYPE__too_many_encoding_chars__MALFORMED.hl7": ("AR", "100"),
    # MSH-2 written "^~\\&" (escape doubled): not distinct, MSH unreadable.
    "lfh__ADT_A01__sample_unix__MALFORMED.hl7": ("AR", "100"),
    # Valid MSH (ADT^A28, v2.6) but MSH only: AE 101, PID-3 missing.
    "lfh__ADT_A28__HL7ConditionFHIRConversionTest_L42__MALFORMED.hl7": ("AE", "101"),
    "nhapi__ADT_A01__fuzz_PipeParser_HL7Exception_id_000176__MALFORMED.hl7": ("AR", "100"),
    "nhapi__ADT_A17__fuzz_PipeParser_HL7Exception_id_000118__MALFORMED.hl7": ("AR", "100"),
    # MSH-2 is a lone "^" (tolerated, as some old senders do), v2.8, no PID: AE 101.
    "nhapi__ADT_A40__fuzz_LegacyPipeParser_HL7Exception_stackoverflow1__MALFORMED.hl7": ("AE", "101"),
    # Readable MSH, then a line of control bytes that is no segment: AR 100.
    "nhapi__ADT_A60__fuzz_PipeParser_NoException_id_000146__MALFORMED.hl7": ("AR", "100"),
    # Zero bytes: an empty block is still answered.
    "nhapi__NOTYPE__fuzz_LegacyPipeParser_EncodingNotSupportedException_aoor1__MALFORMED.hl7": ("AR", "100"),
    "nhapi__NOTYPE__fuzz_LegacyPipeParser_NoException_regex1__MALFORMED.hl7": ("AR", "100"),
    # NUL bytes before "MSH": does not start with MSH.
    "nhapi__NOTYPE__fuzz_PipeParser_EncodingNotSupportedException_id_000014__MALFORMED.hl7": ("AR", "100"),
    "nhapi__NOTYPE__fuzz_PipeParser_HL7Exception_id_000029__MALFORMED.hl7": ("AR", "100"),
    "nhapi__NOTYPE__fuzz_PipeParser_HL7Exception_id_000064__MALFORMED.hl7": ("AR", "100"),
    "nhapi__NOTYPE__fuzz_PipeParser_HL7Exception_so5__MALFORMED.hl7": ("AR", "100"),
    # Batches (BHS/FHS first) are not messages; MLLP carries one message per block.
    "pyhl7__BATCH__sample_bad_batch1__MALFORMED.hl7": ("AR", "100"),
    "pyhl7__BATCH__sample_bad_file3__MALFORMED.hl7": ("AR", "100"),
    # MSH-only fragment with a cp1252 byte: readable, but MSH-9 is empty.
    "pyhl7__NOTYPE__cp1252_byte_fragment__MALFORMED.hl7": ("AR", "200"),
}


def err_0357(ack: Ack) -> str:
    """The table 0357 code: ERR-3.1 (v2.5+) or ERR-1.4.1 (older)."""
    err = ack.segments["ERR"]
    if len(err) > 3 and err[3]:
        return err[3].split("^")[0]
    return err[1].split("^")[3].split("&")[0]


def control_id(raw: bytes) -> str:
    """MSH-10 read naively from the first line, independent of the tokenizer."""
    first = raw.removeprefix(b"\xef\xbb\xbf").decode("latin-1").replace("\n", "\r").split("\r", 1)[0]
    fields = first.split(first[3])
    return fields[9] if len(fields) > 9 else ""


def split_stream(raw: bytes) -> list[bytes]:
    """Cut a multi-message file into messages at each line starting with MSH (CRLF/LF to CR)."""
    lines = raw.replace(b"\r\n", b"\r").replace(b"\n", b"\r").split(b"\r")
    messages: list[list[bytes]] = []
    for line in lines:
        if line.startswith(b"MSH"):
            messages.append([])
        if line.strip() and messages:
            messages[-1].append(line)
    return [b"\r".join(m) + b"\r" for m in messages]


def test_the_corpus_is_there() -> None:
    assert len(MALFORMED) >= 15, f"malformed corpus not found under {HL7_CORPUS}"
    assert len(ADT) >= 60, f"ADT corpus not found under {HL7_CORPUS}"


@pytest.mark.parametrize("path", MALFORMED, ids=lambda p: p.name)
async def test_malformed_message_is_refused_and_the_connection_keeps_serving(serve: StartServer, path: Path) -> None:
    publisher = ListPublisher()
    server = await serve(publisher)
    client = await MLLPClient.connect(server.port)
    ack = await client.exchange(path.read_bytes(), encoding="latin-1")
    assert ack.code in ("AR", "AE")
    assert "ERR" in ack.segments
    assert err_0357(ack) in {"100", "101", "200", "201", "202", "203", "207"}
    if path.name in EXPECTED:
        assert (ack.code, err_0357(ack)) == EXPECTED[path.name]
    following = await client.exchange(adt("NEXT-1"))
    assert (following.code, following.acked_id) == ("AA", "NEXT-1")
    await client.close()
    assert publisher.control_ids() == ["NEXT-1"]


@pytest.mark.parametrize("path", ADT, ids=lambda p: p.name)
async def test_corpus_adt_is_accepted(serve: StartServer, path: Path) -> None:
    """Each message gets AA. A stream file (several MSH) is sent the way a sender must:
    one message per block; the stream as one block is refused (see the test below)."""
    publisher = ListPublisher()
    server = await serve(publisher, max_message_bytes=1_048_576)
    client = await MLLPClient.connect(server.port)
    whole = path.read_bytes()
    messages = split_stream(whole) if whole.count(b"\rMSH|") + whole.count(b"\nMSH|") else [whole]
    for raw in messages:
        ack = await client.exchange(raw, encoding="latin-1")
        assert ack.code == "AA", ack.segments.get("ERR")
        assert ack.acked_id == control_id(raw)
    await client.close()
    assert [m.raw for m in publisher.messages] == messages


async def test_a_whole_stream_in_one_block_is_refused(serve: StartServer) -> None:
    """One ACK for 124 messages would acknowledge 123 that nobody will ever read."""
    stream = HL7_CORPUS / "mirth__ADT_A31__TestADT_stream.hl7"
    raw = stream.read_bytes()
    assert len(split_stream(raw)) > 1
    publisher = ListPublisher()
    server = await serve(publisher, max_message_bytes=1_048_576)
    client = await MLLPClient.connect(server.port)
    ack = await client.exchange(raw, encoding="latin-1")
    await client.close()
    assert (ack.code, err_0357(ack), ack.acked_id) == ("AR", "100", control_id(raw))
    assert ack.field("ERR", 1).startswith("MSH^2^^100&")  # v2.3.1: ERR-1 (ELD) names the second MSH
    assert publisher.messages == []
