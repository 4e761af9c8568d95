"""Load generator, run in its own process: stop-and-wait MLLP clients.

Two modes: ``flood`` (each connection sends its share as fast as ACKs come
back) and ``paced`` (a fixed total offered rate). The optional last argument
``mixed`` sends admissions and discharges (``bench.messages.mixed``) instead of
admissions only. Prints one JSON line with
send timestamps (wall clock, for end-to-end matching) and ACK latencies.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.messages import message, mixed
from carehub import loop
from carehub.connectors.mllp import MLLPClient, ack_code

#: Where the result goes (set by bench.procs.load); unset, it is printed.
RESULT_FILE = "CAREHUB_BENCH_LOAD_RESULT"


async def _connection(
    port: int,
    ids: list[int],
    run: str,
    interval: float,
    start: float,
    out: dict[str, list[float]],
    make: Callable[[int, str], bytes],
) -> None:
    client = MLLPClient("127.0.0.1", port, timeout_s=30)
    await client.connect()
    try:
        for i, n in enumerate(ids):
            if interval:
                delay = start + i * interval - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            payload = make(n, run)
            sent_wall = time.time()
            t0 = time.perf_counter()
            code = ack_code(await client.send(payload))
            out["latency"].append(time.perf_counter() - t0)
            out["sent"].append(sent_wall)
            out["ids"].append(float(n))
            out["codes"].append(1.0 if code == "AA" else 0.0)
    finally:
        await client.close()


async def run(
    port: int, connections: int, count: int, rate: float, run_id: str, first: int, mix: bool = False
) -> dict[str, object]:
    out: dict[str, list[float]] = {"latency": [], "sent": [], "ids": [], "codes": []}
    shares = [list(range(first + c, first + count, connections)) for c in range(connections)]
    interval = connections / rate if rate else 0.0
    start = time.perf_counter() + 0.05
    make = mixed if mix else message
    t0 = time.perf_counter()
    await asyncio.gather(
        *(
            _connection(port, ids, run_id, interval, start + c * (interval / connections), out, make)
            for c, ids in enumerate(shares)
        )
    )
    elapsed = time.perf_counter() - t0
    return {"elapsed": elapsed, **out}


def main() -> None:
    port, connections, count, rate, run_id, first = sys.argv[1:7]
    mix = sys.argv[7:8] == ["mixed"]
    result = loop.run(run(int(port), int(connections), int(count), float(rate), run_id, int(first), mix))
    target = os.environ.get(RESULT_FILE)
    if target:  # bench.procs.load: a file, since whatever else reaches stdout (a library's notice) spoils the JSON
        Path(target).write_text(json.dumps(result), encoding="utf-8")
    else:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
