"""MLLP framing on bytes alone: every wire oddity without a socket."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carehub.adapters.mllp.framing import HEAD_BYTES, MLLPDecoder, RejectedFrame, encode_frame
from carehub.core.errors import MessageTooLargeError

MSG_A = b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rPID|1||1^^^H^MR\r"
MSG_B = b"MSH|^~\\&|A|B|C|D|20240101||ADT^A08|2|P|2.5\rPID|1||2^^^H^MR\r"


def feed_all(decoder: MLLPDecoder, chunks: list[bytes]) -> list[bytes | RejectedFrame]:
    out: list[bytes | RejectedFrame] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    return out


def test_encode_frame_wraps_payload() -> None:
    assert encode_frame(b"abc") == b"\x0babc\x1c\r"


def test_one_frame_in_one_read() -> None:
    decoder = MLLPDecoder(1024)
    assert decoder.feed(encode_frame(MSG_A)) == [MSG_A]
    assert decoder.junk_bytes == 0
    assert decoder.pending_bytes == 0


def test_several_frames_in_one_read() -> None:
    decoder = MLLPDecoder(1024)
    assert decoder.feed(encode_frame(MSG_A) + encode_frame(MSG_B) + encode_frame(MSG_A)) == [MSG_A, MSG_B, MSG_A]


def test_frame_split_byte_by_byte() -> None:
    decoder = MLLPDecoder(1024)
    data = encode_frame(MSG_A) + encode_frame(MSG_B)
    assert feed_all(decoder, [data[i : i + 1] for i in range(len(data))]) == [MSG_A, MSG_B]


def test_frame_is_released_at_end_block_without_waiting_for_cr() -> None:
    decoder = MLLPDecoder(1024)
    assert decoder.feed(b"\x0b" + MSG_A + b"\x1c") == [MSG_A]
    # The CR arriving later is the end of that block, not junk.
    assert decoder.feed(b"\r") == []
    assert decoder.junk_bytes == 0


def test_missing_cr_after_end_block_is_tolerated() -> None:
    decoder = MLLPDecoder(1024)
    assert decoder.feed(b"\x0b" + MSG_A + b"\x1c\x0b" + MSG_B + b"\x1c") == [MSG_A, MSG_B]
    assert decoder.junk_bytes == 0


def test_junk_before_start_block_is_skipped_and_counted() -> None:
    decoder = MLLPDecoder(1024)
    assert decoder.feed(b"GET / HTTP/1.0\r\n\r\n" + encode_frame(MSG_A)) == [MSG_A]
    assert decoder.junk_bytes == len(b"GET / HTTP/1.0\r\n\r\n")


def test_junk_between_frames_is_counted_but_the_cr_after_end_block_is_not() -> None:
    decoder = MLLPDecoder(1024)
    assert decoder.feed(encode_frame(MSG_A) + b"\n\n" + encode_frame(MSG_B)) == [MSG_A, MSG_B]
    assert decoder.junk_bytes == 2


def test_empty_frame_is_still_a_message() -> None:
    assert MLLPDecoder(16).feed(b"\x0b\x1c\r") == [b""]


def test_missing_end_block_stays_pending_and_is_reported_at_finish() -> None:
    decoder = MLLPDecoder(1024)
    assert decoder.feed(b"\x0b" + MSG_A) == []
    assert decoder.pending_bytes == len(MSG_A)
    assert decoder.finish() == len(MSG_A)
    assert decoder.incomplete_frames == 1
    assert decoder.pending_bytes == 0
    assert decoder.finish() == 0  # nothing left to report twice


def test_start_block_inside_a_frame_abandons_the_unfinished_one() -> None:
    decoder = MLLPDecoder(1024)
    assert decoder.feed(b"\x0b" + MSG_A[:20] + encode_frame(MSG_B)) == [MSG_B]
    assert decoder.incomplete_frames == 1


def test_payload_of_exactly_the_limit_is_accepted() -> None:
    assert MLLPDecoder(len(MSG_A)).feed(encode_frame(MSG_A)) == [MSG_A]


def test_oversize_frame_is_rejected_once_and_decoding_resynchronizes() -> None:
    decoder = MLLPDecoder(len(MSG_A) - 1)
    out = decoder.feed(encode_frame(MSG_A) + encode_frame(MSG_A[:10]))
    assert len(out) == 2
    rejected, following = out
    assert isinstance(rejected, RejectedFrame)
    assert isinstance(rejected.error, MessageTooLargeError)
    assert rejected.error.ack_code == "AR"
    assert rejected.head == MSG_A[: len(MSG_A)]  # all of it: shorter than HEAD_BYTES
    assert following == MSG_A[:10]


def test_oversize_frame_over_many_reads_is_discarded_up_to_its_end_block() -> None:
    decoder = MLLPDecoder(100)
    big = b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|BIG|P|2.5\r" + b"NTE|" + b"x" * 10_000 + b"\r"
    data = encode_frame(big) + encode_frame(MSG_B)
    out = feed_all(decoder, [data[i : i + 333] for i in range(0, len(data), 333)])
    assert [type(item) for item in out] == [RejectedFrame, bytes]
    rejected = out[0]
    assert isinstance(rejected, RejectedFrame)
    assert rejected.head.startswith(b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|BIG|")
    assert out[1] == MSG_B
    assert decoder.junk_bytes == 0


def test_oversize_head_is_capped() -> None:
    decoder = MLLPDecoder(10)
    out = decoder.feed(encode_frame(b"x" * (HEAD_BYTES * 3)))
    assert isinstance(out[0], RejectedFrame)
    assert len(out[0].head) == HEAD_BYTES


def test_oversize_frame_without_end_block_resynchronizes_on_next_start_block() -> None:
    decoder = MLLPDecoder(50)
    out = decoder.feed(b"\x0b" + b"y" * 200)
    out += decoder.feed(b"y" * 200 + encode_frame(MSG_A[:40]))
    assert [type(item) for item in out] == [RejectedFrame, bytes]
    assert out[1] == MSG_A[:40]


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        MLLPDecoder(0)


payloads = st.lists(st.binary(max_size=200).map(lambda b: b.replace(b"\x0b", b"").replace(b"\x1c", b"")), max_size=8)


@given(payloads, st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=20))
def test_any_chunking_yields_the_same_frames(frames: list[bytes], cuts: list[int]) -> None:
    data = b"".join(encode_frame(p) for p in frames)
    chunks: list[bytes] = []
    pos, i = 0, 0
    while pos < len(data):
        size = cuts[i % len(cuts)]
        chunks.append(data[pos : pos + size])
        pos += size
        i += 1
    decoder = MLLPDecoder(1024)
    assert feed_all(decoder, chunks) == frames
    assert decoder.junk_bytes == 0
    assert decoder.pending_bytes == 0
