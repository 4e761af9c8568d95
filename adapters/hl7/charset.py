"""Character sets: MSH-18 names to Python codecs, with a safe fallback.

The message is first read as Latin-1 (every byte maps, delimiters are ASCII)
just to find MSH-18; then the payload is decoded with the declared codec,
falling back to UTF-8 and finally Windows-1252/Latin-1, which never fail.
Senders misuse MSH-18 often enough that a wrong declaration must not lose
the message.
"""

from __future__ import annotations

import codecs

DEFAULT_CODEC = "utf-8"

_HL7_CHARSETS: dict[str, str] = {
    "ASCII": "ascii",
    "ISO IR6": "ascii",
    "8859/1": "iso8859-1",
    "ISO IR100": "iso8859-1",
    "8859/2": "iso8859-2",
    "8859/3": "iso8859-3",
    "8859/4": "iso8859-4",
    "8859/5": "iso8859-5",
    "8859/6": "iso8859-6",
    "8859/7": "iso8859-7",
    "8859/8": "iso8859-8",
    "8859/9": "iso8859-9",
    "8859/15": "iso8859-15",
    "UNICODE UTF-8": "utf-8",
    "UNICODE": "utf-8",
    "UTF-8": "utf-8",
    "ISO IR87": "iso2022_jp",
    "ISO IR159": "iso2022_jp_1",
    "ISO IR14": "iso2022_jp",
    "KS X 1001": "euc_kr",
    "GB 18030-2000": "gb18030",
    "BIG-5": "big5",
    "CNS 11643-1992": "big5",
    "WINDOWS-1252": "cp1252",
}


def codec_for(declared: str) -> str:
    """Python codec for an MSH-18 value; UTF-8 when empty or unknown."""
    name = declared.strip().upper()
    if not name:
        return DEFAULT_CODEC
    codec = _HL7_CHARSETS.get(name)
    if codec is None:
        try:
            codec = codecs.lookup(name).name
        except LookupError:
            return DEFAULT_CODEC
    return codec


def declared_charset(raw: bytes) -> str:
    """The first repetition of MSH-18, read from the raw bytes; "" if absent."""
    # The MSH ends at the first CR or LF, whichever comes first: with LF
    # separators a later CR must not pull other segments' fields into MSH-18.
    ends = [i for i in (raw.find(b"\r"), raw.find(b"\n")) if i != -1]
    head = raw[: min(ends)] if ends else raw
    text = head.decode("latin-1")
    if text.startswith("\ufeff") or text.startswith("ï»¿"):
        text = text[3:] if text.startswith("ï»¿") else text[1:]
    if len(text) < 8 or not text.startswith("MSH"):
        return ""
    fields = text.split(text[3])
    # fields[0] is "MSH", fields[1] is MSH-2, so MSH-n is fields[n - 1]
    if len(fields) < 18:
        return ""
    repetition = fields[1][1:2] or "~"
    return fields[17].split(repetition)[0].split(fields[1][0:1] or "^")[0]


def decode(raw: bytes) -> tuple[str, str]:
    """Decode a payload; return (text, codec actually used)."""
    codec = codec_for(declared_charset(raw))
    for candidate in (codec, DEFAULT_CODEC, "cp1252"):
        try:
            return raw.decode(candidate), candidate
        except (UnicodeDecodeError, LookupError):
            continue
    return raw.decode("latin-1"), "latin-1"
