"""MLLP inbound edge: framing (pure bytes), handler (rules and ACKs), receiver (sockets).

``main`` code wires them: ``MLLPServer(InboundHandler(publisher, settings), settings)``.
"""

from adapters.mllp.framing import MLLPDecoder, RejectedFrame, encode_frame
from adapters.mllp.inbound import InboundHandler, Publisher, Receipt, Reply, ack_code_for
from adapters.mllp.server import FrameHandler, ListenerStats, MLLPServer, make_server_ssl_context

__all__ = [
    "FrameHandler",
    "InboundHandler",
    "ListenerStats",
    "MLLPDecoder",
    "MLLPServer",
    "Publisher",
    "Receipt",
    "RejectedFrame",
    "Reply",
    "ack_code_for",
    "encode_frame",
    "make_server_ssl_context",
]
