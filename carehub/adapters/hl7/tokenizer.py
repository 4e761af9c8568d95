"""Split an HL7v2 message into segments, fields, repetitions, components.

Segments and fields are split when the message is parsed; repetitions,
components and sub-components are split on access. Values returned by the
accessors are unescaped (``\\F\\``, ``\\S\\``, ``\\T\\``, ``\\R\\``, ``\\E\\``,
``\\Xhh\\``, ``\\.br\\``); ``raw`` accessors return the bytes as sent.

Field numbering follows HL7: ``segment.field(3)`` of PID is PID-3; for MSH,
``field(1)`` is the field separator and ``field(2)`` the encoding characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from carehub.core.errors import ErrorLocation, UnreadableMessageError

_SEGMENT_SPLIT = re.compile(r"\r\n|\r|\n")
_SEGMENT_NAME = re.compile(r"^[A-Z][A-Z0-9]{2}$")
_HEADER_NAMES = ("MSH",)
_UNUSED = "\ue000\ue001\ue002\ue003"


@dataclass(frozen=True, slots=True)
class Delimiters:
    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"
    truncation: str = ""

    @property
    def encoding_characters(self) -> str:
        return self.component + self.repetition + self.escape + self.subcomponent + self.truncation


def _read_delimiters(header: str) -> Delimiters:
    if len(header) < 8 or not header.startswith(_HEADER_NAMES):
        raise UnreadableMessageError("message does not start with an MSH segment", ErrorLocation("MSH"))
    end = header.find(header[3], 4)
    return _delimiters(header if end == -1 else header[:end])


@lru_cache(maxsize=64)
def _delimiters(start: str) -> Delimiters:
    """The delimiters declared by ``start`` (MSH, MSH-1, MSH-2): one feed sends the same ones, so cached."""
    field_sep = start[3]
    if field_sep.isalnum() or field_sep in " \r\n":
        raise UnreadableMessageError("MSH-1 is not a valid field separator", ErrorLocation("MSH", 1, 1))
    encoding = start[4:]
    if not 1 <= len(encoding) <= 5:
        raise UnreadableMessageError(
            f"MSH-2 must hold 4 or 5 encoding characters, found {len(encoding)}", ErrorLocation("MSH", 1, 2)
        )
    chars = field_sep + encoding
    if len(set(chars)) != len(chars) or any(c.isalnum() or c.isspace() for c in encoding):
        raise UnreadableMessageError("MSH-2 encoding characters are not distinct", ErrorLocation("MSH", 1, 2))
    # Older senders omit trailing encoding characters (e.g. "^~}" with no
    # sub-component separator); stand-ins that never occur in text keep the
    # splitting logic uniform without inventing separators the sender never used.
    padded = encoding[:4] + _UNUSED[len(encoding[:4]) :]
    return Delimiters(field_sep, padded[0], padded[1], padded[2], padded[3], encoding[4:5])


def unescape(value: str, d: Delimiters) -> str:
    """Replace HL7 escape sequences in ``value`` with the characters they stand for."""
    esc = d.escape
    if esc not in value:
        return value
    out: list[str] = []
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        end = value.find(esc, i + 1) if ch == esc else -1
        if end == -1:
            out.append(ch)
            i += 1
            continue
        out.append(_expand(value[i + 1 : end], d))
        i = end + 1
    return "".join(out)


def _expand(seq: str, d: Delimiters) -> str:
    simple = {"F": d.field, "S": d.component, "T": d.subcomponent, "R": d.repetition, "E": d.escape}
    if d.truncation:
        simple["P"] = d.truncation  # v2.7: the truncation character, escaped
    if seq in simple:
        return simple[seq]
    if seq in ("H", "N"):
        return ""
    if seq == ".br":
        return "\n"
    if seq.startswith("X") and len(seq) > 1 and len(seq) % 2 == 1:
        try:
            return bytes.fromhex(seq[1:]).decode("utf-8", errors="replace")
        except ValueError:
            pass
    return d.escape + seq + d.escape


class Field:
    """One repetition of a field, split into components and sub-components on access."""

    __slots__ = ("raw", "_d", "_components")

    def __init__(self, raw: str, delimiters: Delimiters) -> None:
        self.raw = raw
        self._d = delimiters
        self._components: list[str] | None = None

    def components(self) -> list[str]:
        if self._components is None:
            self._components = self.raw.split(self._d.component)
        return self._components

    def component(self, index: int = 1, sub: int = 1) -> str:
        """Unescaped value of component ``index`` (1-based), sub-component ``sub``."""
        comps = self._components
        if comps is None:
            comps = self._components = self.raw.split(self._d.component)
        if index < 1 or index > len(comps):
            return ""
        value = comps[index - 1]
        if not value:
            return ""
        d = self._d
        if d.subcomponent in value:
            subs = value.split(d.subcomponent)
            value = subs[sub - 1] if 0 < sub <= len(subs) else ""
        elif sub != 1:
            return ""
        return unescape(value, d) if d.escape in value else value

    def subcomponents(self, index: int) -> list[str]:
        comps = self.components()
        if index < 1 or index > len(comps):
            return []
        return [unescape(s, self._d) for s in comps[index - 1].split(self._d.subcomponent)]

    @property
    def value(self) -> str:
        """The whole repetition, unescaped, with delimiters left in place."""
        return unescape(self.raw, self._d)

    def __bool__(self) -> bool:
        return bool(self.raw.strip(self._d.component + self._d.subcomponent))

    def __repr__(self) -> str:
        return f"Field({self.raw!r})"


class Segment:
    """One segment; ``fields[n]`` is field n as sent (escaped), split when the segment is made.

    ``field(n, rep)`` answers the same Field object on every call, so a field's
    repetitions and components are split once however often they are read.
    """

    __slots__ = ("name", "line", "fields", "_d", "index", "_cache")

    def __init__(self, name: str, line: str, delimiters: Delimiters, index: int) -> None:
        self.name = name
        self.line = line
        fields = line.split(delimiters.field)
        if name == "MSH":
            fields.insert(1, delimiters.field)
        self.fields: list[str] = fields
        self._d = delimiters
        self.index = index
        self._cache: dict[tuple[int, int], Field] | None = None

    def raw(self, n: int) -> str:
        fields = self.fields
        return fields[n] if 0 < n < len(fields) else ""

    def repetitions(self, n: int) -> list[Field]:
        raw = self.raw(n)
        if not raw or (self.name == "MSH" and n <= 2):
            return [Field(raw, self._d)] if raw else []
        return [Field(r, self._d) for r in raw.split(self._d.repetition) if r]

    def field(self, n: int, rep: int = 1) -> Field:
        cache = self._cache
        if cache is None:
            cache = self._cache = {}
        found = cache.get((n, rep))
        if found is None:
            found = cache[(n, rep)] = self._field(n, rep)
        return found

    def _field(self, n: int, rep: int) -> Field:
        raw = self.raw(n)
        if self.name == "MSH" and n <= 2:
            return Field(raw, self._d)
        if self._d.repetition in raw:
            reps = raw.split(self._d.repetition)
            raw = reps[rep - 1] if 0 < rep <= len(reps) else ""
        elif rep != 1:
            raw = ""
        return Field(raw, self._d)

    def get(self, n: int, comp: int = 1, sub: int = 1, rep: int = 1) -> str:
        """Unescaped value at ``n.comp.sub`` of repetition ``rep``; "" when absent."""
        raw = self.raw(n)
        d = self._d
        if d.component in raw or d.repetition in raw or d.escape in raw or d.subcomponent in raw:
            return self.field(n, rep).component(comp, sub)
        # No delimiter and no escape in it: the field is its own first component, and nothing else.
        return raw if comp == 1 and sub == 1 and rep == 1 else ""

    def __repr__(self) -> str:
        return f"Segment({self.name}, {len(self.fields) - 1} fields)"


class Message:
    """A tokenized HL7v2 message."""

    __slots__ = ("segments", "delimiters", "_index")

    def __init__(self, segments: list[Segment], delimiters: Delimiters) -> None:
        self.segments = segments
        self.delimiters = delimiters
        self._index: dict[str, list[Segment]] | None = None

    @property
    def _by_name(self) -> dict[str, list[Segment]]:
        """Segments by name, built on first use (not a cached_property: Python 3.11's takes a lock each read)."""
        index = self._index
        if index is None:
            index = self._index = {}
            for seg in self.segments:
                index.setdefault(seg.name, []).append(seg)
        return index

    @property
    def msh(self) -> Segment:
        return self.segments[0]

    def segment(self, name: str) -> Segment | None:
        found = self._by_name.get(name)
        return found[0] if found else None

    def all(self, name: str) -> list[Segment]:
        return self._by_name.get(name, [])

    def names(self) -> list[str]:
        return [s.name for s in self.segments]


@lru_cache(maxsize=1024)
def _is_segment_name(name: str) -> bool:
    """Three characters, a letter then letters or digits (cached: a feed uses a few dozen names)."""
    return _SEGMENT_NAME.match(name) is not None


def split_segments(text: str) -> list[str]:
    """Segment strings of ``text``: BOM and blank lines dropped, CR/LF/CRLF accepted."""
    if text.startswith("\ufeff"):
        text = text[1:]
    # Most messages end segments with CR alone: a plain split is several times cheaper than the pattern.
    one = "\r" if "\n" not in text else "\n" if "\r" not in text else None
    lines = text.split(one) if one is not None else _SEGMENT_SPLIT.split(text)
    return [s for s in lines if s and not s.isspace()]


def parse_message(text: str, only: frozenset[str] | None = None) -> Message:
    """Tokenize ``text``. Raises UnreadableMessageError when MSH cannot be read.

    Lines that do not look like segments (no three-character name) are kept
    as segments named by their first three characters only if they have a
    valid name; others are reported as segment sequence errors.

    ``only``: every line is still checked, but only the first MSH and the segments
    named here are built and kept (ingest reads MSH, EVN and PID of a message it
    stores whole); ``Segment.index`` stays the line's place in the whole message.
    """
    lines = split_segments(text.lstrip())
    if not lines:
        raise UnreadableMessageError("empty message", ErrorLocation("MSH"))
    d = _read_delimiters(lines[0])
    segments: list[Segment] = []
    field_sep = d.field
    for index, line in enumerate(lines):
        name = line[:3]
        if not _is_segment_name(name) or (len(line) > 3 and line[3] != field_sep):
            raise UnreadableMessageError(
                f"segment {index + 1} has no valid segment name", ErrorLocation(name or "?", index + 1)
            )
        if only is None or index == 0 or name in only:
            segments.append(Segment(name, line, d, index))
    return Message(segments, d)
