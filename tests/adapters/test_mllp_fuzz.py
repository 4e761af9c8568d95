"""Every frame gets exactly one parseable ACK: a bounded property test over MSH/PID mutations.

A real listener (its own thread and event loop) on a real socket; hypothesis
drives batches of mutated messages at it (see ``mllp_fuzz``). ``make fuzz``
runs the same property longer against a real hub on the embedded broker.
"""

from __future__ import annotations

from dataclasses import replace

from carehub.adapters.mllp.inbound import InboundHandler
from carehub.adapters.mllp.server import MLLPServer

from .conftest import TEST_SETTINGS
from .mllp_fuzz import Tally, listener_thread, property_test
from .mllp_testkit import ListPublisher


def test_every_mutated_frame_gets_exactly_one_parseable_ack() -> None:
    settings = replace(TEST_SETTINGS, max_message_bytes=4096)
    publisher = ListPublisher()

    async def start() -> MLLPServer:
        server = MLLPServer(InboundHandler(publisher, settings, publish_timeout_s=2.0), settings)
        await server.start()
        return server

    async def stop(server: object) -> None:
        assert isinstance(server, MLLPServer)
        await server.stop(grace_s=1.0)

    tally = Tally()
    with listener_thread(start, stop) as server:
        assert isinstance(server, MLLPServer)
        property_test(server.port, tally, examples=300, max_seconds=20.0)()
        stats = server.stats
    assert tally.inputs > 0 and tally.unanswered == 0 and tally.unparseable == 0, tally.failures[:3]
    assert sum(tally.by_code.values()) == tally.inputs
    assert stats.accepted == len(publisher.messages), "every AA is a stored message, and only those"
