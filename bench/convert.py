"""Conversion throughput: parse + map + serialize, one process, over the corpus ADTs."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from bench.messages import message
from mappings import convert_text
from mappings.bench import corpus_texts

CORPUS = Path(os.environ.get("CAREHUB_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "corpus" / "hl7v2"


def corpus_adts() -> list[str]:
    return corpus_texts(CORPUS)


def _rate(texts: list[str], rounds: int, serialize: bool) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        for text in texts:
            event = convert_text(text).event
            if serialize:
                event.to_json()
    return rounds * len(texts) / (time.perf_counter() - start)


def _bench_admit_rate(count: int) -> float:
    """The load generator's A01 (bench.messages, ~1.5 KB), a distinct patient per message."""
    texts = [message(n).decode() for n in range(count)]
    return _rate(texts, 1, True)


def bench_convert(quick: bool) -> list[str]:
    texts = corpus_adts()
    if not texts:
        return [f"conversion: no corpus found at {CORPUS}"]
    rounds = 3 if quick else 15
    _rate(texts, 1, True)
    full = _rate(texts, rounds, True)
    no_serialize = _rate(texts, rounds, False)
    admits = 500 if quick else 3000
    admit = _bench_admit_rate(admits)
    size = sum(len(t) for t in texts) / len(texts)
    sample = json.dumps(convert_text(texts[0]).bundle)
    return [
        f"conversion (HL7v2 ADT -> CareEvent with FHIR R4 Bundle), one process, {len(texts)} corpus messages "
        f"(mean {size:,.0f} chars) x {rounds} rounds",
        f"  parse + map + serialize JSON      {full:>8,.0f} msgs/s",
        f"  parse + map                       {no_serialize:>8,.0f} msgs/s   (sample bundle {len(sample):,} bytes)",
        f"  bench A01 (1.5 KB), parse + map + serialize JSON {admit:>8,.0f} msgs/s   ({admits} distinct messages)",
    ]
