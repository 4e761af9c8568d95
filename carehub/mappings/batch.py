"""Split a file into HL7v2 messages: batch envelopes and several messages per file.

Files may hold FHS/BHS ... BTS/FTS batches or simply several messages one
after another; each ``MSH`` starts a new message and the envelope segments
are dropped. Line endings (CR, LF, CRLF) and a BOM are tolerated, as by the
tokenizer.
"""

from __future__ import annotations

from pathlib import Path

from carehub.adapters.hl7.charset import decode
from carehub.adapters.hl7.tokenizer import split_segments

ENVELOPE = ("FHS", "BHS", "BTS", "FTS")


def split_messages(text: str) -> list[str]:
    """Messages in ``text``, each as CR-separated segments; text before any MSH is kept as one."""
    messages: list[list[str]] = []
    current: list[str] | None = None
    for line in split_segments(text):
        stripped = line.lstrip()
        if stripped.startswith(ENVELOPE) and stripped[3:4] and not stripped[3:4].isalnum():
            continue
        if stripped.startswith("MSH") or current is None:
            current = []
            messages.append(current)
        current.append(stripped)
    return ["\r".join(m) for m in messages]


def read_messages(path: Path) -> tuple[list[str], str]:
    """The messages of a file and the codec its bytes were decoded with (OSError if unreadable)."""
    text, codec = decode(path.read_bytes())
    return split_messages(text), codec
