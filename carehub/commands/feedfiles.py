"""The messages of the files a command was given, each labelled ``FILE#N``."""

from __future__ import annotations

import sys
from pathlib import Path

from carehub.mappings.batch import read_messages


def labelled_messages(path: Path) -> list[tuple[str, str]] | None:
    """``[(where, message), ...]``, or None (after saying why on stderr) when the file cannot be read."""
    try:
        messages, _codec = read_messages(path)
    except OSError as exc:
        print(f"{path}: cannot read: {exc.strerror}", file=sys.stderr)
        return None
    return [(f"{path}#{index}", message) for index, message in enumerate(messages, start=1)]
