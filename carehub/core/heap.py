"""The cyclic garbage collector set for a long-running hub process.

Measured on a stream worker under load (docs/benchmarks.md "Garbage collector"): with Python's
defaults (a young-generation pass every 700 net allocations) the collector took about a quarter
of the worker's CPU, most of it in full passes of ~200 ms each over what start-up built (mapping
plans, compiled sections, client state). The records a stage handles are acyclic JSON documents,
freed by reference counting as soon as a batch is done, so the collector has little to find:

* what exists once the hub has started is frozen (``gc.freeze``): never scanned again;
* a young pass every ``YOUNG`` allocations, the older generations as Python does relative to it.

A young pass walks whatever young objects are still alive, and under load those are the documents
in flight and the ones the per-event memos hold (core.memo): with a pass every 50,000 allocations,
a 3,000-message flood (shipped map) ran 58 passes of 5-48 ms each (1.4 s of the worker's 19 CPU-s)
and none of them found any garbage. A pass every million allocations walks about as many live
objects, twenty times less often (about once a minute at 150 msgs/s).

Cycles are still collected (asyncio tasks and exceptions make a few), only less often.
"""

from __future__ import annotations

import gc

#: Net allocations between young-generation passes (Python's default: 700).
YOUNG = 1_000_000
#: Young passes per middle pass, middle passes per full pass (Python's defaults: 10, 10).
MIDDLE, FULL = 20, 100


def settle() -> None:
    """Call once the process has started: freeze what start-up made, then collect less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG, MIDDLE, FULL)
