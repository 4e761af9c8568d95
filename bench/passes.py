"""``python -m bench.passes N``: the conversion warm-up, then N passes over the corpus; prints nothing.

For instruction counts, which a loaded machine does not disturb (rates per CPU-second it does):

    valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python -m bench.passes 0
    valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python -m bench.passes 2

(instructions of the second minus the first) / (2 x corpus messages) = instructions per message.
"""

from __future__ import annotations

import sys

from bench.convert import carehub, corpus_adts, deployed_collector


def main() -> None:
    texts = corpus_adts()
    for text in texts:
        carehub(text)
    with deployed_collector():  # as bench_convert measures
        for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 1):
            for text in texts:
                carehub(text)


if __name__ == "__main__":
    main()
