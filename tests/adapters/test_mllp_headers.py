"""Every frame gets an answer: hostile MSH headers over a real socket, pipelined on one connection.

Each case once made the handler raise and close the connection (dropping
every frame queued behind it), or answer in an unreadable codec, or store a
message whose bytes did not match its declared charset. Now each gets exactly
one ACK, readable as ASCII, in order, with an ERR saying why.
"""

from __future__ import annotations

import logging

import pytest

from .conftest import StartServer
from .mllp_testkit import ListPublisher, MLLPClient, adt, frame
from .test_mllp_corpus import err_0357

# (payload, MSA-1, table 0357 code); "" code = no ERR (AA)
CASES: dict[str, tuple[bytes, str, str]] = {
    "version-superscript": (adt("H-1", version="2.\u00b2").encode(), "AR", "203"),
    "charset-undefined": (adt("H-2", charset="undefined").encode(), "AR", "203"),
    "charset-punycode": (adt("H-3", charset="punycode").encode(), "AR", "203"),
    "charset-idna": (adt("H-4", charset="idna").encode(), "AR", "203"),
    "charset-nul": (adt("H-5", charset="\x00").encode(), "AR", "203"),
    "charset-ebcdic": (adt("H-6", charset="cp037").encode(), "AR", "203"),
    "charset-base64": (adt("H-7", charset="base64").encode(), "AR", "203"),
    "charset-zlib": (adt("H-8", charset="zlib_codec").encode(), "AR", "203"),
    "charset-utf16": (adt("H-9", charset="UNICODE UTF-16").encode(), "AR", "203"),
    "mismatch-utf8": (adt("H-10", charset="UNICODE UTF-8").replace("DOE", "D\u00d6E").encode("latin-1"), "AE", "102"),
    "mismatch-ascii": (adt("H-11", charset="ASCII").replace("DOE", "D\u00d6E").encode("utf-8"), "AE", "102"),
    "latin1-ok": (adt("H-12", charset="8859/1").replace("DOE", "D\u00d6E").encode("latin-1"), "AA", ""),
    "undeclared-latin1": (adt("H-13").replace("DOE", "D\u00d6E").encode("latin-1"), "AA", ""),
    "nul-in-msh10": (adt("H-14\x00").encode(), "AA", ""),
}


async def test_every_hostile_header_gets_one_readable_answer_in_order(serve: StartServer) -> None:
    publisher = ListPublisher()
    server = await serve(publisher)
    client = await MLLPClient.connect(server.port)
    names = list(CASES)
    await client.write(b"".join(frame(CASES[name][0]) for name in names) + frame(adt("LAST")))
    for name in names:
        _, code, hl7_code = CASES[name]
        ack = await client.read_ack(encoding="utf-8")  # never EBCDIC or another codec MSH-18 named
        assert ack.code == code, (name, ack.segments)
        assert ack.acked_id.startswith(f"H-{names.index(name) + 1}"), (name, ack.acked_id)
        if hl7_code:
            assert err_0357(ack) == hl7_code, (name, ack.segments["ERR"])
        else:
            assert "ERR" not in ack.segments
    last = await client.read_ack()
    assert (last.code, last.acked_id) == ("AA", "LAST"), "the connection kept serving"
    await client.close()
    stored = publisher.control_ids()
    assert stored == ["H-12", "H-13", "H-14\x00", "LAST"], "refused messages are never stored (no idna duplicate)"
    assert publisher.messages[1].charset == "cp1252", "undeclared non-UTF-8 is labelled with the codec used"


async def test_unsupported_charset_err_names_msh18_and_the_supported_set(serve: StartServer) -> None:
    server = await serve(ListPublisher())
    client = await MLLPClient.connect(server.port)
    ack = await client.exchange(adt("H-20", charset="cp037"), encoding="ascii")
    await client.close()
    assert ack.field("ERR", 2) == "MSH^1^18"
    assert ack.field("ERR", 3) == "203^Unsupported character set^HL70357"
    assert "UNICODE UTF-8" in ack.field("ERR", 8)


def _shifted_fields_message() -> str:
    """An A01 whose MSH lost two fields, so a DOB, an MRN and a name sit in MSH-9/10/11."""
    return (
        "MSH|^~\\&|SAPP|SFAC|20240102|19631105|MRN77812345|PATEL^PRIYA^K|MRN77812345^^^HOSP^MR|P|2.5\r"
        "PID|1||MRN77812345^^^HOSP^MR||PATEL^PRIYA^K||19631105|F\r"
    )


@pytest.mark.parametrize("case", ["shifted", "shifted-and-too-large"])
async def test_logs_hold_no_header_text_of_a_shifted_message(
    serve: StartServer, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    caplog.set_level(logging.DEBUG)
    server = await serve(ListPublisher(), max_message_bytes=200)
    client = await MLLPClient.connect(server.port)
    text = _shifted_fields_message()
    if case == "shifted-and-too-large":
        text += "NTE|1||" + "x" * 400 + "\r"
    ack = await client.exchange(text, encoding="ascii")
    assert ack.code == "AR"
    assert (await client.exchange(adt("OK-1"))).code == "AA"
    await client.close()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "OK-1" in logged, "validated control ids are still logged"
    for phi in ("19631105", "MRN77812345", "PATEL", "PRIYA", "7781"):
        assert phi not in logged, phi
