"""Character sets: the MSH-18 names carehub supports, and how a payload is decoded.

The supported set is explicit (:data:`SUPPORTED`): HL7 table 0211 names, plus
two names senders commonly write (``UTF-8``, ``WINDOWS-1252``), each mapped to
a Python text codec that keeps ASCII (and so the delimiters and MLLP framing
bytes) where they are. Nothing else is looked up: a Python codec name in
MSH-18 (``cp037``, ``idna``, ``base64``, ``undefined``…) is not a character
set the hub supports, whatever Python would make of it.

The policy, documented in the README:

* MSH-18 empty: read as UTF-8, else Windows-1252 (never fails); the stored
  record's ``charset`` names the codec that was used.
* MSH-18 names a supported set and the bytes are valid in it: decoded with it.
* MSH-18 names a set outside :data:`SUPPORTED` (or UTF-16/UTF-32, which MLLP's
  single-byte framing cannot carry): :class:`UnsupportedCharsetError` (AR).
* MSH-18 names a supported set but the bytes are not valid in it:
  :class:`CharsetMismatchError` (AE): the message is refused, never stored
  with a guessed reading.

Whatever the outcome, :attr:`Decoding.codec` is a supported codec, so the ACK
is always encoded in one (never EBCDIC because MSH-18 said so).
"""

from __future__ import annotations

from dataclasses import dataclass

from carehub.core.errors import CharsetMismatchError, ErrorLocation, UnsupportedCharsetError

DEFAULT_CODEC = "utf-8"
#: Read when MSH-18 is empty and the bytes are not UTF-8: every byte maps.
UNDECLARED_FALLBACK = "cp1252"

#: MSH-18 value (upper case) -> Python codec. HL7 table 0211 plus two common spellings.
SUPPORTED: dict[str, str] = {
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
_CODECS = frozenset(SUPPORTED.values()) | {UNDECLARED_FALLBACK}
_WHERE = ErrorLocation("MSH", 1, 18)


@dataclass(frozen=True, slots=True)
class Decoding:
    """A payload read as text. ``codec`` is always supported; ``error`` says why it must be refused."""

    text: str
    codec: str
    error: UnsupportedCharsetError | CharsetMismatchError | None = None


def is_supported_codec(codec: str) -> bool:
    return codec in _CODECS


def declared_charset(raw: bytes) -> str:
    """The first repetition of MSH-18, read from the raw bytes; "" if absent."""
    # The MSH ends at the first CR or LF, whichever comes first: with LF
    # separators a later CR must not pull other segments' fields into MSH-18.
    cr, lf = raw.find(b"\r"), raw.find(b"\n")
    end = min(cr, lf) if cr != -1 and lf != -1 else max(cr, lf)
    text = (raw if end == -1 else raw[:end]).decode("latin-1")
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


def read(raw: bytes) -> Decoding:
    """Decode a payload by the policy above; never raises."""
    declared = declared_charset(raw).strip().upper()
    if not declared:
        try:
            return Decoding(raw.decode(DEFAULT_CODEC), DEFAULT_CODEC)
        except UnicodeDecodeError:
            return Decoding(raw.decode(UNDECLARED_FALLBACK, errors="replace"), UNDECLARED_FALLBACK)
    codec = SUPPORTED.get(declared)
    if codec is None:
        # Read it just well enough to address the AR; answer in UTF-8.
        error = UnsupportedCharsetError(
            "MSH-18 names a character set carehub does not support (HL7 table 0211 names: "
            "ASCII, 8859/n, UNICODE UTF-8, ISO IR87, ISO IR159, KS X 1001, GB 18030-2000, BIG-5)",
            _WHERE,
        )
        return Decoding(raw.decode(UNDECLARED_FALLBACK, errors="replace"), DEFAULT_CODEC, error)
    try:
        return Decoding(raw.decode(codec), codec)
    except UnicodeDecodeError:
        mismatch = CharsetMismatchError(f"the message holds bytes that are not valid {declared} (MSH-18)", _WHERE)
        return Decoding(raw.decode(codec, errors="replace"), codec, mismatch)


def decode(raw: bytes) -> tuple[str, str]:
    """Decode a file or payload leniently (tools, tests): (text, codec used); never raises."""
    found = read(raw)
    if found.error is None:
        return found.text, found.codec
    try:
        return raw.decode(DEFAULT_CODEC), DEFAULT_CODEC
    except UnicodeDecodeError:
        return raw.decode(UNDECLARED_FALLBACK, errors="replace"), UNDECLARED_FALLBACK
