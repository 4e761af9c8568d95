"""Conversion throughput: parse + map + serialize, one process, over the corpus ADTs.

Rates are messages per CPU-second of this process (``time.process_time``), i.e. per core: on a
shared machine wall-clock rates swing with other tenants' load, CPU time much less. A naive
reference runs in the same run, interleaved with carehub round by round, so the ratio between
the two is comparable across runs even when the absolute figures are not.
"""

from __future__ import annotations

import gc
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

from bench.messages import message
from carehub import _native
from carehub.adapters.hl7.tokenizer import parse_message
from carehub.core import heap
from carehub.core.errors import MappingError
from carehub.mappings import convert_text
from carehub.mappings.batch import read_messages
from carehub.mappings.bench import corpus_texts

CORPUS = Path(os.environ.get("CAREHUB_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "corpus" / "hl7v2"


def corpus_adts() -> list[str]:
    """Each corpus file that converts, as ONE message (the figure of record, comparable across runs)."""
    return corpus_texts(CORPUS)


def corpus_messages() -> list[str]:
    """The corpus as carehub reads files (``mappings.batch``: each MSH starts a message), those that convert.

    The one 89 KB file is a stream of 124 messages; read as one message it is ~26% of the corpus time.
    """
    found = []
    for path in sorted(CORPUS.glob("*.hl7")):
        for text in read_messages(path)[0]:
            try:
                convert_text(text)
            except MappingError:
                continue
            found.append(text)
    return found


def naive_reference(text: str) -> bytes:
    """The floor: tokenize, split every field into components, and serialize that as JSON.

    No mapping at all: it is what any converter pays before it decides anything, so
    carehub / reference says how much the mapping itself costs on this machine today.
    """
    msg = parse_message(text)
    comp = msg.delimiters.component
    return orjson.dumps([[seg.name, [f.split(comp) for f in seg.fields[1:]]] for seg in msg.segments])


def carehub(text: str) -> bytes:
    return convert_text(text).event.to_json()


def carehub_no_serialize(text: str) -> object:
    return convert_text(text).event


@contextmanager
def deployed_collector() -> Iterator[None]:
    """The cyclic collector as a started hub sets it (``carehub.core.heap.settle``: what exists is frozen,
    a young pass every 50,000 allocations), as ``carehub run`` does; Python's defaults again afterwards,
    for the other sections of the run."""
    thresholds = gc.get_threshold()
    heap.settle()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def _cpu_rate(fn: Callable[[str], object], texts: list[str], rounds: int) -> float:
    """Messages per CPU-second: the best of ``rounds`` passes over ``texts``."""
    best = 0.0
    for _ in range(rounds):
        start = time.process_time()
        for text in texts:
            fn(text)
        elapsed = time.process_time() - start
        if elapsed > 0:
            best = max(best, len(texts) / elapsed)
    return best


def _interleaved(fns: dict[str, Callable[[str], object]], texts: list[str], rounds: int) -> dict[str, float]:
    """Each function's best rate, the functions taking turns round by round (same load for each)."""
    best = dict.fromkeys(fns, 0.0)
    for _ in range(rounds):
        for name, fn in fns.items():
            best[name] = max(best[name], _cpu_rate(fn, texts, 1))
    return best


def bench_convert(quick: bool) -> list[str]:
    texts = corpus_adts()
    if not texts:
        return [f"conversion: no corpus found at {CORPUS}"]
    rounds = 3 if quick else 15
    for text in texts:  # warm-up: plans compiled, code tables loaded
        carehub(text)
    split = corpus_messages()
    admits = [message(n).decode() for n in range(500 if quick else 3000)]
    with deployed_collector():
        rates = _interleaved(
            {"reference": naive_reference, "full": carehub, "no_serialize": carehub_no_serialize}, texts, rounds
        )
        as_read = _interleaved({"reference": naive_reference, "full": carehub}, split, 1 if quick else 3)
        admit = _interleaved({"reference": naive_reference, "full": carehub}, admits, 1 if quick else 3)
    size = sum(len(t) for t in texts) / len(texts)
    sample = json.dumps(convert_text(texts[0]).bundle)
    ratio = rates["full"] / rates["reference"]
    return [
        f"conversion (HL7v2 ADT -> CareEvent with FHIR R4 Bundle), msgs per CPU-second (one core), {len(texts)} "
        f"corpus messages (mean {size:,.0f} chars), best of {rounds} interleaved rounds, hot modules "
        f"{'compiled (mypyc)' if _native.compiled() else 'as Python (not compiled, or sources changed since)'}",
        f"  naive reference (tokenize + split + JSON) {rates['reference']:>8,.0f} msgs/s",
        f"  carehub parse + map + serialize JSON  {rates['full']:>8,.0f} msgs/s   "
        f"({ratio:.2f}x the reference; target 3,000/s)",
        f"  carehub parse + map                   {rates['no_serialize']:>8,.0f} msgs/s   "
        f"(sample bundle {len(sample):,} bytes)",
        f"  corpus as carehub reads files ({len(split)} messages: the stream file split at each MSH): carehub "
        f"{as_read['full']:,.0f} msgs/s, reference {as_read['reference']:,.0f} msgs/s "
        f"({as_read['full'] / as_read['reference']:.2f}x)",
        f"  bench A01 (1.5 KB) x {len(admits)}: carehub {admit['full']:,.0f} msgs/s, "
        f"reference {admit['reference']:,.0f} msgs/s ({admit['full'] / admit['reference']:.2f}x)",
    ]
