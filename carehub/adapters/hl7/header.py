"""What the MSH (and PID-3) of a message say, read once for ingest and ACKs."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from dataclasses import dataclass

from carehub.adapters.hl7.tokenizer import Message, Segment
from carehub.core.patient import PatientIdentifier


@dataclass(frozen=True, slots=True)
class Header:
    control_id: str
    message_type: str
    trigger_event: str
    structure: str
    version: str
    processing_id: str
    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    accept_ack_type: str
    application_ack_type: str
    timestamp: str

    @property
    def type_label(self) -> str:
        return f"{self.message_type}^{self.trigger_event}" if self.trigger_event else self.message_type


def _hd(segment: Segment, n: int) -> str:
    """Namespace of an HD field, or its universal id when there is no namespace."""
    return segment.get(n, 1) or segment.get(n, 2)


def read_header(message: Message) -> Header:
    msh = message.msh
    kind = msh.field(9)  # read once for its three components: this runs for every message received
    return Header(
        control_id=msh.get(10),
        message_type=kind.component(1).strip().upper(),
        trigger_event=kind.component(2).strip().upper(),
        structure=kind.component(3).strip().upper(),
        version=msh.get(12).strip(),
        processing_id=msh.get(11).strip().upper(),
        sending_application=_hd(msh, 3),
        sending_facility=_hd(msh, 4),
        receiving_application=_hd(msh, 5),
        receiving_facility=_hd(msh, 6),
        accept_ack_type=msh.get(15).strip().upper(),
        application_ack_type=msh.get(16).strip().upper(),
        timestamp=msh.get(7),
    )


def pid_identifiers(pid: Segment) -> list[PatientIdentifier]:
    """Identifiers of PID-3 (and PID-2/PID-4, used by v2.1-2.3 senders)."""
    found: list[PatientIdentifier] = []
    for n in (3, 2, 4):
        for rep in pid.repetitions(n):
            value = rep.component(1).strip()
            if not value:
                continue
            authority = rep.component(4, 1) or rep.component(4, 2)
            found.append(PatientIdentifier(value=value, authority=authority.strip(), type_code=rep.component(5)))
        if found and n == 3:
            break
    return found


#: What a control id must look like to be logged as sent: short, no delimiters, no blanks.
_LOGGABLE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,19}")
_LOG_KEY = os.urandom(16)


def loggable_id(value: str, trusted: bool) -> str:
    """MSH-10 as it may appear in a log line.

    ``trusted`` means the header passed validation (accepted type, version and
    processing id), so MSH-10 is in its place; even then it is shown only if
    it looks like an id. Anything else — a rejected message whose fields may
    be shifted so that a birth date or a name sits where MSH-10 should be —
    is shown as a keyed hash (``h:`` + 12 hex digits): lines about the same
    message correlate within one process, the value cannot be read back.
    """
    if not value:
        return ""
    if trusted and _LOGGABLE_ID.fullmatch(value):
        return value
    return "h:" + hmac.new(_LOG_KEY, value.encode("utf-8", "replace"), hashlib.sha256).hexdigest()[:12]
