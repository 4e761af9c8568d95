"""The MLLP receiver over real loopback sockets, with real publishers on our seam."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import sys
from pathlib import Path

import pytest

from carehub.adapters.mllp.framing import RejectedFrame
from carehub.adapters.mllp.inbound import InboundHandler, Receipt, Reply
from carehub.adapters.mllp.server import MLLPServer

from .conftest import TEST_SETTINGS, StartServer
from .mllp_testkit import (
    SB,
    GatedPublisher,
    ListPublisher,
    MLLPClient,
    UnavailablePublisher,
    adt,
    frame,
)


async def test_several_messages_on_one_connection(serve: StartServer) -> None:
    publisher = ListPublisher()
    server = await serve(publisher)
    client = await MLLPClient.connect(server.port)
    for i in range(5):
        ack = await client.exchange(adt(f"C{i}"))
        assert (ack.code, ack.acked_id) == ("AA", f"C{i}")
    await client.close()
    assert publisher.control_ids() == [f"C{i}" for i in range(5)]
    assert publisher.messages[0].peer.startswith("127.0.0.1:")
    assert publisher.messages[0].listener == "mllp"


async def test_pipelined_messages_in_one_write_get_acks_in_order(serve: StartServer) -> None:
    publisher = ListPublisher()
    server = await serve(publisher)
    client = await MLLPClient.connect(server.port)
    await client.write(b"".join(frame(adt(f"P{i}")) for i in range(10)))
    acked = [(await client.read_ack()).acked_id for _ in range(10)]
    assert acked == [f"P{i}" for i in range(10)]
    assert publisher.control_ids() == acked
    await client.close()


async def test_message_sent_byte_by_byte(serve: StartServer) -> None:
    publisher = ListPublisher()
    server = await serve(publisher)
    client = await MLLPClient.connect(server.port)
    for byte in frame(adt("SLOW")):
        await client.write(bytes([byte]))
    ack = await client.read_ack()
    assert (ack.code, ack.acked_id) == ("AA", "SLOW")
    assert publisher.messages[0].raw == adt("SLOW").encode()
    await client.close()


async def test_junk_before_start_block_is_skipped(serve: StartServer) -> None:
    server = await serve(ListPublisher())
    client = await MLLPClient.connect(server.port)
    await client.write(b"\r\n\x00garbage" + frame(adt("J1")))
    ack = await client.read_ack()
    assert (ack.code, ack.acked_id) == ("AA", "J1")
    await client.close()
    assert server.stats.junk_bytes == len(b"\r\n\x00garbage")


async def test_missing_end_block_then_close_gets_no_ack_and_stores_nothing(serve: StartServer) -> None:
    publisher = ListPublisher()
    server = await serve(publisher)
    client = await MLLPClient.connect(server.port)
    await client.write(SB + adt("CUT").encode())
    client.writer.write_eof()
    assert await client.read_to_eof() == b""  # the server closes without answering
    await client.close()
    assert publisher.messages == []
    assert server.stats.incomplete_frames == 1


async def test_half_close_after_pipelined_messages_still_gets_every_ack(serve: StartServer) -> None:
    server = await serve(ListPublisher())
    client = await MLLPClient.connect(server.port)
    await client.write(frame(adt("H1")) + frame(adt("H2")))
    client.writer.write_eof()
    assert [(await client.read_ack()).acked_id for _ in range(2)] == ["H1", "H2"]
    assert await client.read_to_eof() == b""
    await client.close()


async def test_oversize_message_is_rejected_and_the_connection_keeps_serving(serve: StartServer) -> None:
    publisher = ListPublisher()
    server = await serve(publisher, max_message_bytes=2048)
    client = await MLLPClient.connect(server.port)
    huge = adt("HUGE") + "NTE|1||" + "x" * 50_000 + "\r"
    await client.write(frame(huge) + frame(adt("AFTER")))
    rejected = await client.read_ack()
    assert (rejected.code, rejected.acked_id) == ("AR", "HUGE")
    assert rejected.field("ERR", 3).startswith("207^")
    assert "limit" in rejected.field("MSA", 3)
    after = await client.read_ack()
    assert (after.code, after.acked_id) == ("AA", "AFTER")
    await client.close()
    assert publisher.control_ids() == ["AFTER"]
    assert server.stats.frames_too_large == 1
    assert server.stats.rejected == 1


async def test_idle_connection_is_closed(serve: StartServer) -> None:
    server = await serve(ListPublisher(), idle_timeout_s=0.2)
    client = await MLLPClient.connect(server.port)
    assert (await client.exchange(adt("I1"))).code == "AA"
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await client.read_to_eof(timeout=3.0) == b""
    assert 0.1 < loop.time() - started < 2.0
    await client.close()
    assert server.stats.idle_closed == 1


async def test_twenty_concurrent_connections(serve: StartServer) -> None:
    publisher = ListPublisher()
    server = await serve(publisher)

    async def sender(n: int) -> list[str]:
        client = await MLLPClient.connect(server.port)
        acked = [(await client.exchange(adt(f"K{n}-{i}"))).acked_id for i in range(10)]
        await client.close()
        return acked

    results = await asyncio.gather(*(sender(n) for n in range(20)))
    for n, acked in enumerate(results):
        assert acked == [f"K{n}-{i}" for i in range(10)]
        stored = [c for c in publisher.control_ids() if c.startswith(f"K{n}-")]
        assert stored == acked  # each connection's messages stored in the order sent
    assert len(publisher.messages) == 200
    assert server.stats.accepted == 200
    assert server.stats.connections_total == 20


async def test_storage_failure_over_the_wire_is_ar_207_never_aa(serve: StartServer) -> None:
    server = await serve(UnavailablePublisher())
    client = await MLLPClient.connect(server.port)
    for i in range(3):
        ack = await client.exchange(adt(f"S{i}"))
        assert (ack.code, ack.acked_id) == ("AR", f"S{i}")
        assert ack.field("ERR", 3).startswith("207^")
    await client.close()
    assert server.stats.rejected == 3
    assert server.stats.accepted == 0


async def test_no_ack_leaves_before_the_publisher_returns(serve: StartServer) -> None:
    publisher = GatedPublisher()
    server = await serve(publisher)
    client = await MLLPClient.connect(server.port)
    await client.write(frame(adt("G1")))
    await asyncio.wait_for(publisher.entered.wait(), 2)
    with pytest.raises(TimeoutError):
        await client.read_ack(timeout=0.2)
    publisher.gate.set()
    ack = await client.read_ack()
    assert (ack.code, ack.acked_id) == ("AA", "G1")
    await client.close()


async def test_no_log_line_claims_an_ack_the_sender_never_got(
    serve: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The sender resets the connection while its message is being stored: no ACK written, none logged."""
    caplog.set_level(logging.DEBUG)
    publisher = GatedPublisher()
    server = await serve(publisher)
    client = await MLLPClient.connect(server.port)
    await client.write(frame(adt("GONE1")))
    await asyncio.wait_for(publisher.entered.wait(), 2)
    sock = client.writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.writer.transport.abort()  # RST, not a half-close the listener would still answer
    for _ in range(100):
        if server.stats.connections_open == 0:
            break
        await asyncio.sleep(0.02)
    publisher.gate.set()
    answered = await MLLPClient.connect(server.port)
    assert (await answered.exchange(adt("NEXT1"))).code == "AA"
    await answered.close()
    acks = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ACK ")]
    assert any("NEXT1" in line for line in acks)
    assert not any("GONE1" in line for line in acks), acks
    assert server.stats.accepted == 1


async def test_graceful_stop_answers_the_message_in_flight(serve: StartServer) -> None:
    publisher = GatedPublisher()
    server = await serve(publisher)
    port = server.port
    client = await MLLPClient.connect(port)
    await client.write(frame(adt("LAST")))
    await asyncio.wait_for(publisher.entered.wait(), 2)
    stopping = asyncio.create_task(server.stop(grace_s=5))
    await asyncio.sleep(0.05)
    publisher.gate.set()
    ack = await client.read_ack()
    assert (ack.code, ack.acked_id) == ("AA", "LAST")
    assert await client.read_to_eof() == b""
    await stopping
    await client.close()
    with pytest.raises(OSError):  # no longer accepting
        await MLLPClient.connect(port)


async def test_latin1_message_over_the_wire(serve: StartServer) -> None:
    publisher = ListPublisher()
    server = await serve(publisher)
    client = await MLLPClient.connect(server.port)
    payload = adt("L1", charset="8859/1").replace("DOE^JANE", "GÓMEZ^MÜLLER").encode("latin-1")
    await client.write(frame(payload))
    ack = await client.read_ack(encoding="latin-1")
    assert (ack.code, ack.acked_id) == ("AA", "L1")
    record = publisher.messages[0]
    assert record.raw == payload
    assert record.charset == "iso8859-1"
    assert "GÓMEZ^MÜLLER" in record.text()
    await client.close()


async def test_reuse_port_lets_two_listeners_share_a_port(serve: StartServer) -> None:
    first = await serve(ListPublisher())
    second = await serve(ListPublisher(), port=first.port)
    assert second.port == first.port
    client = await MLLPClient.connect(first.port)
    assert (await client.exchange(adt("R1"))).code == "AA"
    await client.close()


async def test_stats_snapshot_is_flat_counts(serve: StartServer) -> None:
    server = await serve(ListPublisher())
    client = await MLLPClient.connect(server.port)
    await client.exchange(adt("ST1"))
    await client.exchange(adt("ST2", message_type="ORU^R01"))
    await client.close()
    snapshot = server.stats.snapshot()
    assert snapshot["ack_AA"] == 1 and snapshot["ack_AR"] == 1 and snapshot["ack_AE"] == 0
    assert snapshot["connections_total"] == 1
    assert snapshot["bytes_in"] == len(frame(adt("ST1"))) + len(frame(adt("ST2", message_type="ORU^R01")))
    assert all(isinstance(v, int) for v in snapshot.values())


async def test_port_before_start_is_an_error() -> None:
    server = MLLPServer(InboundHandler(ListPublisher(), TEST_SETTINGS), TEST_SETTINGS)
    with pytest.raises(RuntimeError):
        _ = server.port


async def test_python_hl7_mllp_send_gets_aa(serve: StartServer, tmp_path: Path) -> None:
    """An external client: python-hl7's mllp_send console script, as a subprocess."""
    publisher = ListPublisher()
    server = await serve(publisher)
    message_file = tmp_path / "adt.hl7"
    message_file.write_bytes(frame(adt("EXT-1")) + frame(adt("EXT-2")))
    mllp_send = Path(sys.executable).parent / "mllp_send"
    process = await asyncio.create_subprocess_exec(
        str(mllp_send),
        "--file",
        str(message_file),
        "--port",
        str(server.port),
        "127.0.0.1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()
    assert b"MSA|AA|EXT-1|" in stdout
    assert b"MSA|AA|EXT-2|" in stdout
    assert publisher.control_ids() == ["EXT-1", "EXT-2"]


async def test_a_deep_pipeline_pauses_reading_and_still_answers_in_order(serve: StartServer) -> None:
    publisher = GatedPublisher()
    server = await serve(publisher)
    client = await MLLPClient.connect(server.port)
    await client.write(b"".join(frame(adt(f"D{i}")) for i in range(100)))
    await asyncio.wait_for(publisher.entered.wait(), 2)
    await asyncio.sleep(0.05)  # let the queue fill past the high-water mark
    publisher.gate.set()
    acked = [(await client.read_ack()).acked_id for _ in range(100)]
    assert acked == [f"D{i}" for i in range(100)]
    assert publisher.control_ids() == acked
    await client.close()


class BrokenHandler:
    """A handler that breaks its promise never to raise; its fallback answer still works."""

    def __init__(self) -> None:
        self._fallback = InboundHandler(ListPublisher(), TEST_SETTINGS)

    async def handle(self, payload: bytes, receipt: Receipt) -> Reply:
        raise RuntimeError("bug")

    def reject(self, frame: RejectedFrame, receipt: Receipt) -> Reply:
        raise RuntimeError("bug")

    def fail(self, receipt: Receipt) -> Reply:
        return self._fallback.fail(receipt)


class HopelessHandler(BrokenHandler):
    """Even the fallback answer raises."""

    def fail(self, receipt: Receipt) -> Reply:
        raise RuntimeError("bug")


async def test_a_handler_that_raises_still_answers_every_frame_in_order() -> None:
    server = MLLPServer(BrokenHandler(), TEST_SETTINGS)
    await server.start()
    try:
        client = await MLLPClient.connect(server.port)
        await client.write(frame(adt("B1")) + frame(adt("B2")))
        first, second = await client.read_ack(), await client.read_ack()
        assert (first.code, second.code) == ("AR", "AR")
        assert first.field("ERR", 3).startswith("207^")
        await client.close()
    finally:
        await server.stop()


async def test_a_handler_whose_fallback_raises_closes_the_connection_instead_of_hanging() -> None:
    server = MLLPServer(HopelessHandler(), TEST_SETTINGS)
    await server.start()
    try:
        client = await MLLPClient.connect(server.port)
        await client.write(frame(adt("B1")))
        assert await client.read_to_eof(timeout=2) == b""
        await client.close()
    finally:
        await server.stop()
