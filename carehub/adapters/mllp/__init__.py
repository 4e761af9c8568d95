"""MLLP inbound edge: framing (pure bytes), handler (rules and ACKs), receiver (sockets).

``main`` code wires them: ``MLLPServer(InboundHandler(publisher, settings), settings)``.
"""

from carehub.adapters.mllp.framing import MLLPDecoder, RejectedFrame, encode_frame
from carehub.adapters.mllp.inbound import InboundHandler, Publisher, Receipt, Reply, ack_code_for
from carehub.adapters.mllp.server import FrameHandler, ListenerStats, MLLPServer, make_server_ssl_context

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
