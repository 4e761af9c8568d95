"""Property: every MLLP frame gets exactly one parseable ACK, whatever its MSH and PID hold.

Shared by the suite (``test_mllp_fuzz.py``, a bounded run against a real
listener) and ``make fuzz`` (``python -m tests.adapters.mllp_fuzz``, a longer
run against a real hub on the embedded broker that prints its figures).

Each example is a small batch of mutated ADT messages sent pipelined on one
connection, then a sentinel message: exactly one ACK per frame must come
back, in order, each starting with MSH and holding an MSA with a valid
MSA-1, and then the sentinel's AA — so no frame was answered twice, none was
skipped and the connection kept serving. The client is plain sockets and
byte splitting, sharing no code with the listener.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import secrets
import shutil
import socket
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import HypothesisDeprecationWarning

SB, EB, CR = b"\x0b", b"\x1c", b"\r"
ACK_CODES = {b"AA", b"AE", b"AR"}

_INTERESTING = [
    "",
    "2.\u00b2",
    "2.5",
    "2.10",
    "9",
    "undefined",
    "punycode",
    "idna",
    "\x00",
    "cp037",
    "base64",
    "zlib_codec",
    "UNICODE UTF-8",
    "UNICODE UTF-16",
    "8859/1",
    "ASCII",
    "ISO IR87",
    "AL",
    "NE",
    "ER",
    "SU",
    "ADT^A01",
    "ADT^A01^ADT_A01",
    "ADT",
    "ORU^R01",
    "^~\\&",
    "\\X00\\",
    "\\E\\",
    "&&&",
    "~~~",
    "12345^^^HOSP^MR",
    "\ufeff",
    "\u202e",
    "\r",
]
_VERSIONS = ["2.5"] * 6 + ["2.3.1", "2.8", "2.\u00b2", "2.\u0665", "", "v2.4", "2.5^^"]
_CHARSETS = [""] * 12 + ["UNICODE UTF-8", "8859/1", "ASCII", "undefined", "punycode", "idna", "\x00", "cp037"]
_CHARSETS += ["base64", "rot13", "UNICODE UTF-16", "ISO IR87", "WINDOWS-1252", "8859/15"]
_TEXT = st.text(
    alphabet=st.characters(exclude_characters="\x0b\x1c", exclude_categories=["Cs"]),
    max_size=24,
)
_VALUE = st.one_of(st.sampled_from(_INTERESTING), _TEXT)
_ENCODINGS = ["utf-8", "utf-8", "utf-8", "latin-1", "cp1252", "cp037", "utf-16", "iso2022_jp"]

_MSH = [
    "MSH",
    "^~\\&",
    "SAPP",
    "SFAC",
    "RAPP",
    "RFAC",
    "20240102030405",
    "",
    "ADT^A01^ADT_A01",
    "CTRL",
    "P",
    "2.5",
    "",
    "",
    "AL",
    "NE",
    "",
    "",
]
_PID = ["PID", "1", "", "12345^^^HOSP^MR", "", "DOE^JANE", "", "19800101", "F"]


@st.composite
def mutated_message(draw: st.DrawFn) -> bytes:
    msh, pid = list(_MSH), list(_PID)
    msh[9] = draw(st.sampled_from(["", "X", "CTRL1", "C" * 40]))
    msh[11] = draw(st.sampled_from(_VERSIONS))  # MSH-12
    msh[17] = draw(st.sampled_from(_CHARSETS))  # MSH-18
    for index in draw(st.lists(st.integers(2, len(msh) - 1), max_size=5)):
        msh[index] = draw(_VALUE)
    for index in draw(st.lists(st.integers(1, len(pid) - 1), max_size=4)):
        pid[index] = draw(_VALUE)
    extra = draw(st.integers(0, 3))
    msh += [draw(_VALUE) for _ in range(extra)]
    sep = draw(st.sampled_from(["|", "|", "|", "#", "!", "\u00a6"]))
    line = "MSH" + sep + sep.join(msh[1:])
    if draw(st.booleans()) and len(line) > 12:
        cut = draw(st.integers(4, len(line) - 1))
        line = line[:cut] + line[cut + 1 :]  # a lost character shifts the fields after it
    segments = [line, "EVN|A01|20240102030405", sep.join(pid) if sep != "|" else "|".join(pid), "PV1|1|I"]
    if draw(st.booleans()):
        segments.append(draw(_TEXT))
    text = "\r".join(segments) + "\r"
    encoding = draw(st.sampled_from(_ENCODINGS))
    raw = text.encode(encoding, errors="replace")
    if draw(st.integers(0, 9)) == 0 and raw:
        at = draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + bytes([draw(st.integers(0, 255))]) + raw[at + 1 :]
    # 0x0B and 0x1C are MLLP framing: inside a payload they split the block (a sender bug, not a message).
    return raw.replace(SB, b"?").replace(EB, b"?")


batches = st.lists(mutated_message(), min_size=1, max_size=4)
SENTINEL = (
    b"MSH|^~\\&|SAPP|SFAC|RAPP|RFAC|20240102030405||ADT^A01^ADT_A01|SENTINEL|P|2.5\rPID|1||12345^^^HOSP^MR||DOE^JANE\r"
)


@dataclass
class Tally:
    inputs: int = 0
    by_code: collections.Counter[str] = field(default_factory=collections.Counter)
    unanswered: int = 0
    unparseable: int = 0
    failures: list[str] = field(default_factory=list)


def msa_code(ack: bytes) -> bytes | None:
    """MSA-1 of an ACK, splitting bytes only (any ASCII-compatible codec)."""
    if not ack.startswith(b"MSH") or len(ack) < 4:
        return None
    sep = ack[3:4]
    for segment in ack.split(b"\r"):
        if segment.startswith(b"MSA" + sep):
            return segment.split(sep)[1] if len(segment.split(sep)) > 1 else None
    return None


def read_block(sock: socket.socket, buffer: bytearray, deadline: float) -> bytes | None:
    while True:
        end = buffer.find(EB + CR)
        if end != -1:
            block = bytes(buffer[: end + 2])
            del buffer[: end + 2]
            start = block.find(SB)
            return block[start + 1 : -2] if start != -1 else b""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, OSError):
            return None
        if not chunk:
            return None
        buffer += chunk


def exchange(port: int, payloads: list[bytes], tally: Tally, timeout_s: float = 10.0) -> None:
    """Send ``payloads`` pipelined, then the sentinel; tally and check the answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(b"".join(SB + p + EB + CR for p in payloads) + SB + SENTINEL + EB + CR)
        buffer = bytearray()
        deadline = time.monotonic() + timeout_s
        for payload in payloads:
            tally.inputs += 1
            ack = read_block(sock, buffer, deadline)
            if ack is None:
                tally.unanswered += 1
                tally.failures.append(f"no ACK for {payload[:120]!r}")
                return
            code = msa_code(ack)
            if code not in ACK_CODES:
                tally.unparseable += 1
                tally.failures.append(f"unparseable ACK {ack[:120]!r} for {payload[:120]!r}")
                continue
            tally.by_code[code.decode()] += 1
        last = read_block(sock, buffer, deadline)
        if last is None or b"|SENTINEL" not in last or msa_code(last) != b"AA":
            tally.failures.append(f"the sentinel got {last!r}: an extra or missing ACK before it")


def property_test(port: int, tally: Tally, examples: int, max_seconds: float) -> Callable[[], None]:
    """A hypothesis test (call it to run) bounded by ``examples`` and, softly, ``max_seconds``."""
    stop_at = time.monotonic() + max_seconds

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(batches)
    def every_frame_gets_one_ack(payloads: list[bytes]) -> None:
        if time.monotonic() > stop_at:
            return
        before = len(tally.failures)
        exchange(port, payloads, tally)
        assert len(tally.failures) == before, tally.failures[-1]

    return every_frame_gets_one_ack


@contextmanager
def listener_thread(start: Callable[[], object], stop: Callable[[object], object]) -> Iterator[object]:
    """Run an asyncio server in its own thread: ``start`` is a coroutine function returning the server."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, object] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        holder["server"] = loop.run_until_complete(start())  # type: ignore[arg-type]
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    if not ready.wait(120):
        raise RuntimeError("listener did not start")
    try:
        yield holder["server"]
    finally:
        asyncio.run_coroutine_threadsafe(stop(holder["server"]), loop).result(60)  # type: ignore[arg-type]
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


_CHUNK = 500

# The ingest role needs a routing map to start; nothing is delivered in a fuzz run.
_ROUTES = """version: fuzz
rules:
  - id: all-admits
    when: {kind: [admit]}
    actions:
      - notify: fuzz-recipient
"""
_RECIPIENTS = """recipients:
  - id: fuzz-recipient
    name: Fuzz recipient
    kind: pcp
    channel: webhook
    endpoint: http://127.0.0.1:9/unused
    secret: SECRET
"""


def main(argv: list[str] | None = None) -> int:
    """``make fuzz``: a real hub (ingest role, embedded broker), bounded by examples and time."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=20000, help="hypothesis examples (batches of 1-4 frames)")
    parser.add_argument("--max-seconds", type=float, default=240.0)
    args = parser.parse_args(argv)
    # The hub's own threads (Kafka client, timers) may use ``random`` while hypothesis draws.
    warnings.filterwarnings("ignore", category=HypothesisDeprecationWarning)

    from carehub.core.settings import HTTPSettings, Settings
    from carehub.hub import Hub

    config = Path(tempfile.mkdtemp(prefix="carehub-fuzz-"))
    (config / "routes.yaml").write_text(_ROUTES)
    (config / "recipients.yaml").write_text(_RECIPIENTS.replace("SECRET", secrets.token_hex(32)))
    base = Settings(config_dir=config, database_url="")
    hub_settings = replace(base, mllp=replace(base.mllp, port=0), http=HTTPSettings("127.0.0.1", 0))

    async def start() -> Hub:
        hub = Hub(hub_settings, roles=("ingest",))
        await hub.start()
        return hub

    async def stop(hub: object) -> None:
        assert isinstance(hub, Hub)
        await hub.stop()

    tally = Tally()
    began = time.monotonic()
    try:
        with listener_thread(start, stop) as hub:
            assert isinstance(hub, Hub)
            failed = ""
            # In chunks of fresh hypothesis runs, so the time bound is kept to within one chunk.
            done, stop_at = 0, began + args.max_seconds
            while not failed and done < args.examples and time.monotonic() < stop_at:
                chunk = min(_CHUNK, args.examples - done)
                try:
                    property_test(hub.mllp_port, tally, chunk, stop_at - time.monotonic())()
                except AssertionError as exc:
                    failed = str(exc).splitlines()[0]
                done += chunk
            stats = hub.mllp_stats
    finally:
        shutil.rmtree(config, ignore_errors=True)
    elapsed = time.monotonic() - began
    codes = ", ".join(f"{code} {tally.by_code.get(code, 0)}" for code in ("AA", "AE", "AR"))
    print(f"fuzz: {tally.inputs} inputs in {elapsed:.0f} s; answers: {codes}; unanswered={tally.unanswered}")
    print(f"fuzz: unparseable={tally.unparseable}; listener stats: {stats.snapshot()}")  # type: ignore[attr-defined]
    if failed or tally.failures:
        print(f"fuzz: FAILED: {failed or tally.failures[0]}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
