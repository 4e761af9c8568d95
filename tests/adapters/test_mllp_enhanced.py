"""Enhanced-mode acknowledgements (mllp.ack_mode: enhanced), on the wire.

A commit ACK (CA/CE/CR) goes out only after the durable write, as MSH-15
asks: AL always, NE never, ER only on error, SU only on success. A message
with MSH-15 and MSH-16 both empty keeps original mode (AA/AE/AR).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from carehub.core.errors import MessageError, UnprocessableMessageError
from carehub.core.records import InboundMessage

from .conftest import StartServer
from .mllp_testkit import GatedPublisher, ListPublisher, MLLPClient, UnavailablePublisher, adt, frame


def msg(control_id: str, accept: str, application: str = "NE", **kwargs: Any) -> str:
    return adt(control_id, **kwargs).replace("|||AL|NE", f"|||{accept}|{application}", 1)


async def test_al_gets_a_commit_accept_only_after_the_durable_write(serve: StartServer) -> None:
    publisher = GatedPublisher()
    server = await serve(publisher, ack_mode="enhanced")
    client = await MLLPClient.connect(server.port)
    await client.write(frame(msg("E-1", "AL")))
    await asyncio.wait_for(publisher.entered.wait(), 5)
    with pytest.raises(TimeoutError):
        await client.read_ack(timeout=0.3)
    publisher.gate.set()
    ack = await client.read_ack()
    await client.close()
    assert (ack.code, ack.acked_id) == ("CA", "E-1")
    assert ack.field("MSH", 9) == "ACK^A01^ACK"
    assert publisher.control_ids() == ["E-1"]


@pytest.mark.parametrize(
    ("message", "publisher", "code"),
    [
        (msg("E-2", "AL", version="9.9"), ListPublisher, "CR"),  # content: unsupported version (AR -> CR)
        (msg("E-3", "AL", pid=None), ListPublisher, "CE"),  # content: PID-3 missing (AE -> CE)
        (msg("E-4", "AL"), UnavailablePublisher, "CR"),  # broker down: CR with ERR 207
    ],
)
async def test_al_errors_get_ce_or_cr(serve: StartServer, message: str, publisher: type, code: str) -> None:
    server = await serve(publisher(), ack_mode="enhanced")
    client = await MLLPClient.connect(server.port)
    ack = await client.exchange(message)
    await client.close()
    assert ack.code == code
    assert "ERR" in ack.segments


async def test_msh15_decides_which_commit_acks_are_sent(serve: StartServer) -> None:
    """NE: none; ER: only errors; SU: only success — the next ACK on the wire belongs to the next one asked for."""
    publisher = ListPublisher()
    server = await serve(publisher, ack_mode="enhanced")
    client = await MLLPClient.connect(server.port)
    sequence = [
        msg("N-1", "NE"),  # stored, no ACK
        msg("R-1", "ER"),  # stored, no ACK (success)
        msg("R-2", "ER", version="9.9"),  # CR
        msg("S-1", "SU"),  # CA
        msg("S-2", "SU", version="9.9"),  # refused, no ACK
        msg("L-1", "AL"),  # CA
        adt("O-1").replace("|||AL|NE", "|||||", 1),  # MSH-15/16 empty: original mode, AA
    ]
    await client.write(b"".join(frame(m) for m in sequence))
    answers = [await client.read_ack() for _ in range(4)]
    assert [(a.code, a.acked_id) for a in answers] == [("CR", "R-2"), ("CA", "S-1"), ("CA", "L-1"), ("AA", "O-1")]
    with pytest.raises(TimeoutError):
        await client.read_ack(timeout=0.3)
    await client.close()
    assert publisher.control_ids() == ["N-1", "R-1", "S-1", "L-1", "O-1"]
    assert server.stats.acks_withheld == 3


async def test_original_mode_is_the_default_whatever_msh15_says(serve: StartServer) -> None:
    server = await serve(ListPublisher())
    client = await MLLPClient.connect(server.port)
    ack = await client.exchange(msg("D-1", "NE"))
    await client.close()
    assert (ack.code, ack.acked_id) == ("AA", "D-1")


def _assess_by_control_id(record: InboundMessage) -> MessageError | None:
    """The application's verdict on a stored message: control ids starting BAD do not process."""
    return UnprocessableMessageError("the message cannot be processed") if record.control_id.startswith("BAD") else None


async def test_msh16_al_gets_the_application_ack_after_the_commit_ack(serve: StartServer) -> None:
    publisher = ListPublisher()
    server = await serve(publisher, ack_mode="enhanced", assess=_assess_by_control_id)
    client = await MLLPClient.connect(server.port)
    await client.write(frame(msg("A-1", "AL", "AL")) + frame(msg("BAD-1", "AL", "AL")))
    answers = [await client.read_ack() for _ in range(4)]
    await client.close()
    assert [(a.code, a.acked_id) for a in answers] == [("CA", "A-1"), ("AA", "A-1"), ("CA", "BAD-1"), ("AE", "BAD-1")]
    assert "ERR" in answers[3].segments and "ERR" not in answers[1].segments
    assert answers[0].field("MSH", 10) != answers[1].field("MSH", 10), "the application ACK is a message of its own"
    assert publisher.control_ids() == ["A-1", "BAD-1"], "both were stored before either answer"
    assert server.stats.application_acks == 2


async def test_msh16_decides_which_application_acks_are_sent(serve: StartServer) -> None:
    """NE or empty: none; ER: only errors; SU: only success; a refused message (CE/CR) gets no application ACK."""
    server = await serve(ListPublisher(), ack_mode="enhanced", assess=_assess_by_control_id)
    client = await MLLPClient.connect(server.port)
    sequence = [
        msg("N-1", "AL", "NE"),  # CA only
        msg("E-1", "AL", "ER"),  # CA only (it processes)
        msg("BAD-E", "AL", "ER"),  # CA, AE
        msg("S-1", "NE", "SU"),  # no commit ACK; AA
        msg("BAD-S", "AL", "SU"),  # CA only
        msg("V-1", "AL", "AL", version="9.9"),  # CR: never stored, so no application ACK
        msg("L-1", "AL", "AL"),  # CA, AA
    ]
    await client.write(b"".join(frame(m) for m in sequence))
    answers = [await client.read_ack() for _ in range(9)]
    with pytest.raises(TimeoutError):
        await client.read_ack(timeout=0.3)
    await client.close()
    assert [(a.code, a.acked_id) for a in answers] == [
        ("CA", "N-1"), ("CA", "E-1"), ("CA", "BAD-E"), ("AE", "BAD-E"), ("AA", "S-1"),
        ("CA", "BAD-S"), ("CR", "V-1"), ("CA", "L-1"), ("AA", "L-1"),
    ]  # fmt: skip
