"""Conversion throughput over the corpus: ``python -m carehub.mappings.bench [--validate] [--seconds N]``.

Measures, in this one process, parse + map + serialize (``CareEvent.to_json``)
of every ADT message in ../shared/corpus/hl7v2 that converts, round-robin,
after one warm-up pass (plans compiled, code tables loaded). Prints messages/s
and µs/message; ``--validate`` adds the FHIR schema check to show its cost.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from carehub.adapters.hl7.charset import decode
from carehub.core.errors import MappingError
from carehub.mappings import convert_text

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "hl7v2"


def corpus_texts(root: Path = CORPUS) -> list[str]:
    """Every message in the corpus that converts (the broken ones are not throughput)."""
    texts = []
    for path in sorted(root.glob("*.hl7")):
        text, _codec = decode(path.read_bytes())
        try:
            convert_text(text)
        except MappingError:
            continue
        texts.append(text)
    return texts


def run(texts: list[str], seconds: float, validate: bool) -> tuple[int, float]:
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for text in texts:
            convert_text(text, validate=validate).event.to_json()
        done += len(texts)
    return done, time.perf_counter() - start


def per_message(texts: list[str], repeat: int = 20) -> list[float]:
    """µs per conversion of each message (sorted), to show the spread behind the mean."""
    times = []
    for text in texts:
        start = time.perf_counter()
        for _ in range(repeat):
            convert_text(text).event.to_json()
        times.append(1e6 * (time.perf_counter() - start) / repeat)
    return sorted(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--validate", action="store_true")
    args = parser.parse_args()
    texts = corpus_texts()
    done, elapsed = run(texts, args.seconds, args.validate)
    size = sum(len(t) for t in texts) / len(texts)
    label = "parse+map+validate+serialize" if args.validate else "parse+map+serialize"
    print(f"{len(texts)} distinct ADT messages (avg {size:.0f} chars), {done} conversions in {elapsed:.2f}s")
    print(f"{label}: {done / elapsed:,.0f} msgs/s, {1e6 * elapsed / done:.0f} µs/msg (one process)")
    if not args.validate:
        spread = per_message(texts)
        median = spread[len(spread) // 2]
        p90 = spread[int(len(spread) * 0.9)]
        rate = 1e6 / median
        print(f"per message: median {median:.0f} µs ({rate:,.0f} msgs/s), p90 {p90:.0f} µs, max {spread[-1]:.0f} µs")


if __name__ == "__main__":
    main()
