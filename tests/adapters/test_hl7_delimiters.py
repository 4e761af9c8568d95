"""Parsing by the encoding characters in MSH-2, whatever they are, and ACKs in the sender's own delimiters.

Each message is the demo A01 rewritten with another delimiter set, sent over
a real socket: it must be accepted with MSA-2 = its MSH-10, keyed by the
PID-3 read with those delimiters, and answered with the same MSH-1/MSH-2.
"""

from __future__ import annotations

import pytest

from carehub.adapters.hl7.tokenizer import parse_message
from tests.conftest import FEED

from .conftest import StartServer
from .mllp_testkit import ListPublisher, MLLPClient

STANDARD = "|^~\\&"


def rewritten(text: str, chars: str) -> str:
    """``text`` with |^~\\& replaced by ``chars`` (field separator first), MSH-2 set to ``chars[1:]``."""
    table = str.maketrans(STANDARD, chars[:5])
    lines = text.replace("\n", "\r").split("\r")
    msh = lines[0][len("MSH|^~\\&") :].translate(table)
    return "\r".join(["MSH" + chars + msh] + [line.translate(table) for line in lines[1:]])


CASES = {
    "brace-subcomponent": "|^~\\}",
    "v27-truncation": "|^~\\&#",
    "hash-field-separator": "#^~\\&",
    "all-unusual": "!$*/%",
}


@pytest.mark.parametrize("chars", CASES.values(), ids=CASES.keys())
async def test_message_in_other_delimiters_is_read_and_answered_in_them(serve: StartServer, chars: str) -> None:
    text = rewritten((FEED / "05-a01-admit-okafor.hl7").read_text(), chars)
    publisher = ListPublisher()
    server = await serve(publisher)
    client = await MLLPClient.connect(server.port)
    await client.write(b"\x0b" + text.encode() + b"\x1c\r")
    block = await client.reader.readuntil(b"\x1c\r")
    await client.close()
    ack = block[1:-2].decode()
    field = chars[0]
    msh, msa = ack.split("\r")[0], ack.split("\r")[1]
    assert msh.startswith("MSH" + chars + field), msh  # MSH-1 and MSH-2 echo the sender's
    assert msa.split(field)[:3] == ["MSA", "AA", "RGH0005"], ack  # MSA-2 is filled
    assert msh.split(field)[8] == "ACK" + chars[1] + "A01" + chars[1] + "ACK"
    [record] = publisher.messages
    assert (record.message_type, record.trigger_event, record.patient_key) == ("ADT", "A01", "RGH|MRN100871")


def test_v27_truncation_escape_reads_as_the_truncation_character() -> None:
    message = parse_message("MSH|^~\\&#|APP|FAC\\P\\1|R|RF|20240101||ADT^A01|X1|P|2.7\r")
    assert message.delimiters.truncation == "#"
    assert message.msh.get(4) == "FAC#1"


async def test_truncation_character_in_an_echoed_value_is_escaped_in_the_ack(serve: StartServer) -> None:
    text = "MSH|^~\\&#|APP|FAC\\P\\1|R|RF|20240101||ADT^A01|X1|P|2.7\rPID|1||7^^^H^MR\r"
    server = await serve(ListPublisher())
    client = await MLLPClient.connect(server.port)
    ack = await client.exchange(text)
    await client.close()
    assert ack.field("MSH", 2) == "^~\\&#"
    assert ack.field("MSH", 6) == "FAC\\P\\1"
    assert (ack.code, ack.acked_id) == ("AA", "X1")
