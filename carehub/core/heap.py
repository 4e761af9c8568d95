"""The cyclic garbage collector set for a long-running hub process.

Measured on a stream worker under load (docs/benchmarks.md "Garbage collector"): with Python's
defaults (a young-generation pass every 700 net allocations) the collector took about a quarter
of the worker's CPU, most of it in full passes of ~200 ms each over what start-up built (mapping
plans, compiled sections, client state). The records a stage handles are acyclic JSON documents,
freed by reference counting as soon as a batch is done, so the collector has little to find:

* what exists once the hub has started is frozen (``gc.freeze``): never scanned again;
* a young pass every ``YOUNG`` allocations, the older generations as Python does relative to it.

A young pass walks whatever young objects are still alive, and under load those are the documents
in flight and the ones the per-event memos hold (core.memo): in a 3,000-message flood (shipped map)
the worker ran 58 passes of 5-48 ms (1.4 s of its 19 CPU-s) and none found any garbage. A pass every
million allocations instead saved that time, but a worker sending to a recipient that is down then
grew to 1.3-2.0 GB within 90 s (580 MB at 50,000), in large allocations a full collection did not
free (docs/benchmarks.md, session 8): kept at 50,000 until that is understood.

Cycles are still collected (asyncio tasks and exceptions make a few), only less often.
"""

from __future__ import annotations

import gc

#: Net allocations between young-generation passes (Python's default: 700).
YOUNG = 50_000
#: Young passes per middle pass, middle passes per full pass (Python's defaults: 10, 10).
MIDDLE, FULL = 20, 100


def settle() -> None:
    """Call once the process has started: freeze what start-up made, then collect less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG, MIDDLE, FULL)
