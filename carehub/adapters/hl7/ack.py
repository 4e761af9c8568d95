"""Original-mode HL7v2 acknowledgements (ACK with MSA and, on error, ERR).

The ACK is the only thing a sender ever learns about its message, so it must
be readable by the oldest peers: the ERR segment follows the message's own
version (ERR-1 ELD below v2.5, ERR-2/3/4 from v2.5 on), the MSH-9 shape
follows it too, and every echoed value is re-escaped so a delimiter in a
control id or an application name cannot break the ACK. Texts come from
carehub's own error messages, never from message content, so no PHI leaks.
"""

from __future__ import annotations

import itertools
import os
import time
from functools import lru_cache

from carehub.adapters.hl7.header import Header
from carehub.adapters.hl7.tokenizer import Delimiters
from carehub.core.errors import MessageError

#: Version used for the ACK when the message's MSH could not be read.
DEFAULT_VERSION = "2.5"
#: MSH-3 of the ACK when the message did not name a receiving application.
LOCAL_APPLICATION = "CAREHUB"
ACCEPTED_TEXT = "Message accepted"
ACK_CODES = frozenset({"AA", "AE", "AR", "CA", "CE", "CR"})

_STANDARD = Delimiters()
_MSA_TEXT_MAX = 80
_ERR_LOCATION_FROM = (2, 5)
_STRUCTURE_FROM = (2, 3, 1)
_DEFAULT_KEY = (2, 5)
_MAX_VERSION_PART = 6


@lru_cache(maxsize=64)
def version_key(version: str) -> tuple[int, ...] | None:
    """``"2.3.1"`` → ``(2, 3, 1)``; None when it is not a dotted number.

    Tolerates a leading ``v`` and surrounding blanks. MSH-12 components
    (``2.5^^``) are already split off by the header reader. Cached: a feed
    uses one or two versions, and this runs for every message.
    """
    text = version.strip().lstrip("vV")
    parts = text.split(".")
    # isascii: str.isdigit() is also true for "²" and other digits int() refuses.
    if not text or any(not (p.isascii() and p.isdigit()) or len(p) > _MAX_VERSION_PART for p in parts):
        return None
    return tuple(int(p) for p in parts)


def _chars(d: Delimiters) -> str:
    """Field separator and the encoding characters (four, or five with v2.7's truncation), in MSH order."""
    return d.field + d.component + d.repetition + d.escape + d.subcomponent + d.truncation


_Table = dict[int, str | None]


@lru_cache(maxsize=32)
def _escape_table(chars: str) -> _Table:
    """str.translate table for delimiters ``chars``: escapes them, drops control characters."""
    e = chars[3]
    table: _Table = {c: None for c in range(32)}
    table[127] = None
    for char, letter in zip(chars, "FSRETP"[: len(chars)], strict=True):
        table[ord(char)] = f"{e}{letter}{e}"
    return table


def escape(value: str, delimiters: Delimiters) -> str:
    """Escape ``value`` for use inside one component of a field."""
    return value.translate(_escape_table(_chars(delimiters)))


def ack_delimiters(delimiters: Delimiters | None) -> Delimiters:
    """The message's own delimiters when they can be echoed safely, else ``|^~\\&``.

    The tokenizer stands in private-use characters for encoding characters a
    sender omitted; those, and anything not printable ASCII, must not reach
    the wire.
    """
    if delimiters is None:
        return _STANDARD
    return delimiters if _echoable(_chars(delimiters)) else _STANDARD


@lru_cache(maxsize=32)
def _echoable(chars: str) -> bool:
    """Printable ASCII and distinct (cached: a feed uses one set of delimiters, and every ACK asks)."""
    return all(" " < c < "\x7f" for c in chars) and len(set(chars)) == len(chars)


class _ControlIds:
    """ACK control ids: a per-process random prefix and a counter.

    Re-seeded after ``fork`` so worker processes sharing a port never issue
    the same id; at most 20 characters, the MSH-10 limit of older versions.
    """

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self._prefix = "CH" + os.urandom(4).hex()
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter) % 16**10:x}"


class _Clock:
    """MSH-7 in UTC, formatted at most once a second (the ACK is on the hot path)."""

    __slots__ = ("_second", "_text")

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._text = time.strftime("%Y%m%d%H%M%S+0000", time.gmtime(second))
        return self._text


_control_ids = _ControlIds()
_clock = _Clock()


def _message_type(trigger: str, version: tuple[int, ...], component: str) -> str:
    """``ACK^<trigger>^ACK`` from v2.3.1 (MSG.3 exists), ``ACK^<trigger>`` before."""
    if version >= _STRUCTURE_FROM:
        return f"ACK{component}{trigger}{component}ACK"
    return f"ACK{component}{trigger}" if trigger else "ACK"


def _msh(header: Header | None, chars: str, t: _Table, control_id: str, version_text: str) -> str:
    """The ACK's MSH: applications and facilities swapped, version and processing id kept."""
    if header is None:
        before, after_time, after_id = _msh_frame(None, chars, version_text)
    else:
        sender = (
            header.receiving_application,
            header.receiving_facility,
            header.sending_application,
            header.sending_facility,
            header.trigger_event,
            header.processing_id,
        )
        before, after_time, after_id = _msh_frame(sender, chars, version_text)
    return f"{before}{_clock.now()}{after_time}{control_id.translate(t)}{after_id}"


@lru_cache(maxsize=256)
def _msh_frame(sender: tuple[str, ...] | None, chars: str, version_text: str) -> tuple[str, str, str]:
    """The ACK's MSH around its MSH-7 and MSH-10, escaped: the same for every message of a feed, so cached.

    ``sender`` is the message's MSH-5, 6, 3, 4 (swapped into the ACK's 3-6), MSH-9.2 and MSH-11;
    ``chars`` the ACK's field separator and encoding characters (``_chars``).
    """
    t = _escape_table(chars)
    version = version_key(version_text) or _DEFAULT_KEY
    if sender is None:
        ends = [LOCAL_APPLICATION, "", "", ""]
        trigger, processing_id = "", "P"
    else:
        application, *others, trigger_text, processing_text = (value.translate(t) for value in sender)
        ends = [application or LOCAL_APPLICATION, *others]
        trigger, processing_id = trigger_text, processing_text or "P"
    f, encoding = chars[0], chars[1:]
    # MSH-1..6, then MSH-7 (now), MSH-8 (empty), MSH-9, then MSH-10 (the ACK's id), MSH-11, MSH-12.
    before = f.join(["MSH", encoding, *ends, ""])
    after_time = f.join(["", "", _message_type(trigger, version, chars[1]), ""])
    after_id = f.join(["", processing_id, version_text.translate(t)])
    return before, after_time, after_id


def _msa(header: Header | None, code: str, error: MessageError | None, d: Delimiters, t: _Table) -> str:
    """MSA-1 code, MSA-2 the message's MSH-10 (empty when unknown), MSA-3 a short text."""
    text = error.message if error is not None else ACCEPTED_TEXT
    original_id = header.control_id.translate(t) if header else ""
    return d.field.join(["MSA", code, original_id, text[:_MSA_TEXT_MAX].translate(t)])


def _err(error: MessageError, version: tuple[int, ...] | None, d: Delimiters, t: _Table) -> str:
    """ERR-2/3/4(/8) from v2.5 on, ERR-1 (ELD) for older versions."""
    loc = error.location
    c, s = d.component, d.subcomponent
    where = ""
    if loc is not None:
        field = "" if loc.field is None else str(loc.field)
        where = f"{loc.segment.translate(t)}{c}{loc.sequence}{c}{field}"
    hl7_text = error.hl7_text.translate(t)
    if version is None or version >= _ERR_LOCATION_FROM:
        code = f"{error.hl7_code}{c}{hl7_text}{c}HL70357"
        return d.field.join(["ERR", "", where, code, "E", "", "", "", error.message.translate(t)])
    eld = f"{where or c + c}{c}{error.hl7_code}{s}{hl7_text}{s}HL70357"
    return d.field.join(["ERR", eld])


def build_ack(
    header: Header | None,
    code: str,
    error: MessageError | None,
    delimiters: Delimiters | None = None,
    *,
    control_id: str | None = None,
) -> str:
    """Build an original-mode ACK for a message whose MSH reads as ``header``.

    ``header`` is None when the MSH could not be read: the ACK then carries a
    default v2.5 MSH and an empty MSA-2, so the sender still gets a valid
    answer. ``delimiters`` are the message's; they are reused when safe so
    the sender reads the ACK with the characters it chose. ``control_id``
    overrides the generated MSH-10 (tests). Segments end with CR, the last
    one included.
    """
    if code not in ACK_CODES:
        raise ValueError(f"not an original-mode ACK code: {code!r}")
    d = ack_delimiters(delimiters)
    chars = _chars(d)
    t = _escape_table(chars)
    version_text = header.version if header and header.version else DEFAULT_VERSION
    ack_id = control_id if control_id is not None else _control_ids.next()
    segments = [_msh(header, chars, t, ack_id, version_text), _msa(header, code, error, d, t)]
    if error is not None:
        segments.append(_err(error, version_key(version_text), d, t))
    return "\r".join(segments) + "\r"
