"""MLLP framing as pure functions on bytes: no sockets, no clocks, no logging.

A block is ``<VT> payload <FS> <CR>`` (0x0B ... 0x1C 0x0D). Kept apart from the
receiver so every wire oddity (split reads, several blocks per read, junk,
a missing end block, an oversize block) is testable without a socket, and so
the receiver stays a thin loop around :meth:`MLLPDecoder.feed`.

Tolerance choices, each one seen from real senders:

* bytes before a start block are skipped and counted (``junk_bytes``);
* a lone 0x1C ends a block; the CR that should follow is consumed when it
  comes, but a block is never held back waiting for it (no added latency);
* a start block inside an unfinished block means the sender abandoned the
  first one: it is dropped and counted (``incomplete_frames``), because a
  stop-and-wait sender that timed out will resend it;
* a block larger than the limit yields one :class:`RejectedFrame` as soon as
  the limit is crossed, the rest of it is discarded up to its end block, and
  decoding resynchronizes on the next start block.
"""

from __future__ import annotations

from dataclasses import dataclass

from carehub.core.errors import FramingError, MessageTooLargeError

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c"
CARRIAGE_RETURN = b"\r"

#: How much of a rejected block is kept so the ACK can still echo its MSH.
HEAD_BYTES = 4096

_HUNT = 0
_IN_FRAME = 1
_DISCARD = 2
_CR = 0x0D


@dataclass(frozen=True, slots=True)
class RejectedFrame:
    """A block that cannot be handed on, with the start of its payload.

    ``head`` holds up to :data:`HEAD_BYTES` of the payload so the receiver can
    still read MSH-10 and address its AR to the right message.
    """

    error: FramingError
    head: bytes


Decoded = bytes | RejectedFrame


def encode_frame(payload: bytes) -> bytes:
    """Wrap ``payload`` in an MLLP block."""
    return START_BLOCK + payload + END_BLOCK + CARRIAGE_RETURN


class MLLPDecoder:
    """Incremental MLLP decoder: ``feed`` bytes as they arrive, get whole blocks back.

    One decoder per connection. Complete payloads are returned as ``bytes``
    (possibly empty: an empty block is still a message that deserves an
    answer); oversize blocks as :class:`RejectedFrame`.
    """

    __slots__ = ("max_payload", "junk_bytes", "incomplete_frames", "_state", "_buf", "_after_end")

    def __init__(self, max_payload: int) -> None:
        if max_payload < 1:
            raise ValueError("max_payload must be positive")
        self.max_payload = max_payload
        self.junk_bytes = 0
        self.incomplete_frames = 0
        self._state = _HUNT
        self._buf = bytearray()
        self._after_end = False

    @property
    def pending_bytes(self) -> int:
        """Bytes of a started block still waiting for its end block."""
        return len(self._buf) if self._state == _IN_FRAME else 0

    def feed(self, data: bytes) -> list[Decoded]:
        """Consume ``data``; return the blocks it completed, in order."""
        out: list[Decoded] = []
        pos = 0
        n = len(data)
        while pos < n:
            if self._state == _IN_FRAME:
                pos = self._read_frame(data, pos, out)
            elif self._state == _HUNT:
                pos = self._hunt(data, pos)
            else:
                pos = self._discard(data, pos)
        return out

    def finish(self) -> int:
        """End of stream (or idle close): drop an unfinished block, return its size.

        Returns 0 when nothing was pending. An unfinished block is counted in
        ``incomplete_frames``; it cannot be answered, the sender has gone.
        """
        pending = self.pending_bytes
        if self._state == _IN_FRAME:
            self.incomplete_frames += 1
        self._state = _HUNT
        self._buf.clear()
        self._after_end = False
        return pending

    def _hunt(self, data: bytes, pos: int) -> int:
        """Skip to the next start block, counting what is skipped."""
        if self._after_end:
            self._after_end = False
            if data[pos] == _CR:
                pos += 1
        start = data.find(START_BLOCK, pos)
        if start == -1:
            self.junk_bytes += len(data) - pos
            return len(data)
        self.junk_bytes += start - pos
        self._state = _IN_FRAME
        return start + 1

    def _read_frame(self, data: bytes, pos: int, out: list[Decoded]) -> int:
        """Collect payload bytes up to the end block, enforcing the size limit."""
        end = data.find(END_BLOCK, pos)
        stop = len(data) if end == -1 else end
        restart = data.find(START_BLOCK, pos, stop)
        if restart != -1:
            # The sender gave up on the block in progress and began another.
            self.incomplete_frames += 1
            self._buf.clear()
            return restart + 1
        if len(self._buf) + (stop - pos) > self.max_payload:
            out.append(self._reject(data[pos : min(stop, pos + HEAD_BYTES)]))
            return self._end_block_or_discard(end, len(data))
        if end == -1:
            self._buf += data[pos:]
            return len(data)
        if self._buf:
            self._buf += data[pos:end]
            payload = bytes(self._buf)
            self._buf.clear()
        else:
            payload = data[pos:end]
        out.append(payload)
        self._state = _HUNT
        self._after_end = True
        return end + 1

    def _reject(self, tail: bytes) -> RejectedFrame:
        """Turn the block in progress into a rejection, keeping only its head."""
        kept = bytes(self._buf[:HEAD_BYTES])
        head = kept if len(kept) >= HEAD_BYTES else kept + tail[: HEAD_BYTES - len(kept)]
        self._buf.clear()
        error = MessageTooLargeError(f"MLLP block exceeds the {self.max_payload}-byte limit")
        return RejectedFrame(error, head)

    def _end_block_or_discard(self, end: int, n: int) -> int:
        """After a rejection: back to hunting if the block ended here, else discard on."""
        if end == -1:
            self._state = _DISCARD
            return n
        self._state = _HUNT
        self._after_end = True
        return end + 1

    def _discard(self, data: bytes, pos: int) -> int:
        """Throw away the rest of an oversize block, up to its end or a new start."""
        end = data.find(END_BLOCK, pos)
        start = data.find(START_BLOCK, pos, len(data) if end == -1 else end)
        if start != -1:
            self._state = _IN_FRAME
            return start + 1
        return self._end_block_or_discard(end, len(data))
