"""What the MLLP listener does with one block: check it, store it, answer it.

Kept apart from the socket code so the rules (which messages are accepted,
when AA may be sent) are testable with plain bytes. The one rule that matters
most: AA only after what :meth:`Publisher.publish` answered has completed, i.e.
after the broker confirmed the write (the AA's bytes may be prepared while it
works; they are written only after). Anything else gets AE or AR, derived from the
error class and the settings in one place (:class:`AckPolicy`).

Every payload gets a reply: no exception leaves :meth:`InboundHandler.handle`.
Nothing here logs message content or raw header text: control ids only in
their validated or hashed form (``loggable_id``), plus peer and codes.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from carehub.adapters.hl7.ack import build_ack, version_key
from carehub.adapters.hl7.charset import DEFAULT_CODEC, UNDECLARED_FALLBACK
from carehub.adapters.hl7.charset import read as read_charset
from carehub.adapters.hl7.header import Header, loggable_id, pid_identifiers, read_header
from carehub.adapters.hl7.tokenizer import Delimiters, Message, parse_message, split_segments
from carehub.adapters.mllp.framing import RejectedFrame
from carehub.core.clock import now_iso
from carehub.core.errors import (
    ErrorLocation,
    InternalHandlingError,
    MessageError,
    MessageTooLargeError,
    RequiredFieldMissingError,
    StorageUnavailableError,
    UnreadableMessageError,
    UnsupportedMessageTypeError,
    UnsupportedProcessingIdError,
    UnsupportedVersionError,
)
from carehub.core.lograte import LogThrottle
from carehub.core.patient import sender_patient_key
from carehub.core.records import InboundMessage, InboundRefusal
from carehub.core.settings import MLLPSettings

log = logging.getLogger(__name__)

#: Echoed codes are cut to this length in error texts and logs.
_SHOWN = 20
#: The segments ingest reads (header, v2.1-style trigger, patient key); the rest is stored unread.
_READ = frozenset({"MSH", "EVN", "PID"})
#: Message types whose every message concerns one patient, so PID-3 is required.
_PATIENT_TYPES = frozenset({"ADT"})
#: Room kept below the record limit for what normalize adds after conversion (labels, receipt).
_EVENT_HEADROOM = 16_384
#: Key, headers and batch framing around a record in a produce request.
_RECORD_OVERHEAD = 1_024
_INTERNAL = "internal error while handling the message"
_unexpected_lines = LogThrottle(10.0)
_undeclared_lines = LogThrottle(60.0)


class Publisher(Protocol):
    """Where accepted messages go (Kafka in production).

    ``publish`` starts the write and answers an awaitable that completes only
    once the write is durable (acks=all); when the broker does not confirm it,
    that awaitable (or ``publish`` itself) raises :class:`StorageUnavailableError`.
    An ``async def publish`` is one such publisher: nothing runs until awaited.
    """

    def publish(self, message: InboundMessage) -> Awaitable[None]: ...


@dataclass(frozen=True, slots=True)
class Receipt:
    """Where a block came in: the listener's name and the peer's address."""

    listener: str
    peer: str


@dataclass(frozen=True, slots=True)
class Reply:
    """The encoded ACK for one block (None: MSH-15 asked for none), plus what may be logged and counted.

    ``control_id`` and ``message_type`` are safe for logs (see ``loggable_id``), not the raw header text.
    """

    ack: bytes | None
    code: str
    control_id: str
    message_type: str
    error_code: str = ""
    #: Enhanced mode with MSH-16 AL/ER/SU: makes the application ACK (None: MSH-16 asked for none) once the
    #: commit ACK is out; the server writes it next on the same connection.
    application: Callable[[], Awaitable[bytes | None]] | None = None


#: Computes the size of the CareEvent a record will become (None: cannot tell, let the stream decide).
Preflight = Callable[[InboundMessage], int | None]
#: The hub's own check that it can process a stored message (enhanced mode's application ACK, MSH-16):
#: None when it can, else the error the application ACK reports. Runs off the event loop.
Assessment = Callable[[InboundMessage], MessageError | None]
#: Told of every refused block (AE/AR, CE/CR) with what the journal shows; must not block.
RefusalObserver = Callable[[InboundRefusal], None]
#: A refusal carries at most this much of the payload (the sender still has the message).
REFUSAL_RAW_BYTES = 65_536
#: Header fields copied into a refusal are cut to this length (they were not validated).
_REFUSAL_FIELD = 64


def ack_code_for(error: MessageError | None) -> str:
    """The ACK code for an outcome by the error class alone (default settings)."""
    return "AA" if error is None else error.ack_code


@dataclass(slots=True)
class _Context:
    """What is known about a message so far; the ACK uses whatever got filled in."""

    codec: str
    header: Header | None = None
    delimiters: Delimiters | None = None
    #: The header passed validation: its MSH-10 and MSH-9 are what they claim to be.
    trusted: bool = False


class InboundHandler:
    """Turns a block's payload into a stored :class:`InboundMessage` and an ACK."""

    def __init__(
        self,
        publisher: Publisher,
        settings: MLLPSettings,
        *,
        publish_timeout_s: float | None = None,
        max_record_bytes: int | None = None,
        preflight: Preflight | None = None,
        default_authorities: Mapping[str, str] | None = None,
        on_refusal: RefusalObserver | None = None,
        assess: Assessment | None = None,
    ) -> None:
        """``publish_timeout_s`` caps the wait for the broker; past it the answer is AR 207.

        ``max_record_bytes`` is the largest record the producers may write: a
        message whose inbound record, or (for messages over
        ``settings.preflight_bytes``) whose CareEvent as measured by
        ``preflight``, would not fit is refused before it is stored.
        ``default_authorities`` (sender -> authority) qualifies PID-3 identifiers without CX.4.
        ``on_refusal`` is told of each refused block (the message journal's record of it).
        ``assess`` decides the application ACK of a stored message in enhanced mode (MSH-16).
        """
        self._publisher = publisher
        self._types = frozenset(t.strip().upper() for t in settings.accept_message_types)
        self._processing_ids = frozenset(p.strip().upper() for p in settings.processing_ids)
        self._min_version = _settings_version(settings.min_version)
        self._max_version = _settings_version(settings.max_version)
        self._version_range = f"{settings.min_version}-{settings.max_version}"
        self._timeout = publish_timeout_s
        self._max_record = max_record_bytes
        self._preflight = preflight
        self._preflight_from = settings.preflight_bytes
        self._answers = AckPolicy(settings)
        self._authorities: Mapping[str, str] = dict(default_authorities or {})
        self._on_refusal = on_refusal
        self._assess = assess

    async def handle(self, payload: bytes, receipt: Receipt) -> Reply:
        """Check, store and answer one payload. Never raises (except cancellation)."""
        try:
            return await self._handle(payload, receipt)
        except Exception as exc:  # the last line of defence: every frame gets an answer
            _log_unexpected(exc, receipt)
            return self.fail(receipt)

    def reject(self, frame: RejectedFrame, receipt: Receipt) -> Reply:
        """Answer a block the framing refused, addressed via whatever MSH its head holds."""
        try:
            decoding = read_charset(frame.head)
            header, delimiters = salvage_header(decoding.text)
            ctx = _Context(decoding.codec, header, delimiters)
            reply = self._answers.reply(ctx, frame.error)
        except Exception as exc:
            _log_unexpected(exc, receipt)
            ctx = _Context(DEFAULT_CODEC)
            reply = self._answers.reply(ctx, frame.error)
        self._refused(frame.head, "", receipt, now_iso(), ctx, reply, frame.error)
        return reply

    def fail(self, receipt: Receipt) -> Reply:
        """AR 207 for a block whose handling raised where it must not have (see the server)."""
        return self._answers.reply(_Context(DEFAULT_CODEC), InternalHandlingError(_INTERNAL))

    async def _handle(self, payload: bytes, receipt: Receipt) -> Reply:
        received_at = now_iso()
        decoding = read_charset(payload)
        ctx = _Context(decoding.codec)
        try:
            if decoding.error is not None:
                raise decoding.error
            message = parse_message(decoding.text, _READ)
            ctx.header, ctx.delimiters = read_header(message), message.delimiters
            record = self._admit(payload, message, ctx.header, decoding.codec, receipt, received_at)
            ctx.trusted = True  # type, version and processing id passed: MSH-9/10 are in place
            await self._check_size(record, len(payload))
            pending = self._publisher.publish(record)  # the write is on its way to the broker from here
            try:
                accepted = self._answers.reply(ctx, None)  # built while the broker confirms; sent only after
            finally:
                await self._confirmed(pending)
        except MessageError as exc:
            if ctx.header is None:
                ctx.header, ctx.delimiters = salvage_header(decoding.text)
            reply = self._answers.reply(ctx, exc)
            self._refused(payload, decoding.text, receipt, received_at, ctx, reply, exc)
            return reply
        except Exception as exc:
            _log_unexpected(exc, receipt, ctx)
            error = InternalHandlingError(_INTERNAL)
            reply = self._answers.reply(ctx, error)
            self._refused(payload, decoding.text, receipt, received_at, ctx, reply, error)
            return reply
        if decoding.codec == UNDECLARED_FALLBACK:
            _warn_undeclared(record, receipt)
        reply = accepted
        if self._assess is not None and self._answers.application_wanted(ctx.header):
            assess = self._assess

            async def application() -> bytes | None:
                try:
                    error = await asyncio.to_thread(assess, record)
                except Exception as exc:
                    _log_unexpected(exc, receipt, ctx)
                    error = InternalHandlingError(_INTERNAL)
                return self._answers.application_ack(ctx, error)

            reply = replace(reply, application=application)
        return reply

    def _refused(
        self,
        payload: bytes,
        text: str,
        receipt: Receipt,
        received_at: str,
        ctx: _Context,
        reply: Reply,
        error: MessageError,
    ) -> None:
        """Tell ``on_refusal`` what the journal should show of a refused block (never raises)."""
        if self._on_refusal is None:
            return
        try:
            header = ctx.header
            self._on_refusal(
                InboundRefusal(
                    source="mllp",
                    listener=receipt.listener,
                    peer=receipt.peer,
                    received_at=received_at,
                    control_id=header.control_id[:_REFUSAL_FIELD] if header else "",
                    message_type=header.type_label[:_REFUSAL_FIELD] if header else "",
                    sending_facility=header.sending_facility[:_REFUSAL_FIELD] if header else "",
                    patient_key=_patient_key_or_blank(text, header, self._authorities),
                    ack_code=reply.code,
                    error_code=error.code,
                    reason=error.message,
                    raw_b64=InboundMessage.encode_raw(payload[:REFUSAL_RAW_BYTES]),
                    raw_size=len(payload),
                    charset=ctx.codec,
                )
            )
        except Exception as exc:  # the answer matters more than its journal entry
            _log_unexpected(exc, receipt, ctx)

    def _admit(
        self, payload: bytes, message: Message, header: Header, codec: str, receipt: Receipt, received_at: str
    ) -> InboundMessage:
        """Apply the acceptance rules; return the record to store."""
        _check_single_message(message)
        self._check_type(header)
        self._check_version(header)
        self._check_processing_id(header)
        return InboundMessage(
            raw_b64=InboundMessage.encode_raw(payload),
            charset=codec,
            received_at=received_at,
            listener=receipt.listener,
            peer=receipt.peer,
            control_id=header.control_id,
            message_type=header.message_type,
            trigger_event=_trigger_event(message, header),
            version=header.version,
            sending_application=header.sending_application,
            sending_facility=header.sending_facility,
            patient_key=_patient_key(message, header, self._authorities),
        )

    def _check_type(self, header: Header) -> None:
        if header.message_type not in self._types:
            raise UnsupportedMessageTypeError(
                f"message type {header.message_type[:_SHOWN]!r} is not accepted", ErrorLocation("MSH", 1, 9)
            )

    def _check_version(self, header: Header) -> None:
        """Numeric comparison, so 2.10 > 2.9 and 2.3.1 sits between 2.3 and 2.4."""
        key = version_key(header.version)
        if key is None or not self._min_version <= key <= self._max_version:
            raise UnsupportedVersionError(
                f"version {header.version[:_SHOWN]!r} is outside {self._version_range}", ErrorLocation("MSH", 1, 12)
            )

    def _check_processing_id(self, header: Header) -> None:
        """An empty MSH-11 is tolerated (older senders omit it); an unknown one is not."""
        if header.processing_id and header.processing_id not in self._processing_ids:
            raise UnsupportedProcessingIdError(
                f"processing id {header.processing_id[:_SHOWN]!r} is not accepted", ErrorLocation("MSH", 1, 11)
            )

    async def _check_size(self, record: InboundMessage, payload_bytes: int) -> None:
        """Refuse before AA what a producer could not carry: the record itself, or its CareEvent.

        Small messages skip the CareEvent check: their event is far below the
        limit. Larger ones are converted here (off the event loop) to measure
        the event exactly, since repetitions expand by 20x and more.
        """
        limit = self._max_record
        if limit is None:
            return
        # The other fields are pieces of the payload, JSON-escaped at most 6x: serialize only near the limit.
        bound = len(record.raw_b64) + 6 * payload_bytes + _RECORD_OVERHEAD
        if bound > limit and len(record.to_json()) + _RECORD_OVERHEAD > limit:
            raise MessageTooLargeError(f"the message is too large to store (records are limited to {limit} bytes)")
        if self._preflight is None or payload_bytes <= self._preflight_from:
            return
        event_bytes = await asyncio.to_thread(self._preflight, record)
        if event_bytes is not None and event_bytes + _EVENT_HEADROOM > limit:
            raise MessageTooLargeError(
                f"the message converts to a {event_bytes}-byte event, over the {limit}-byte record limit"
            )

    async def _confirmed(self, pending: Awaitable[None]) -> None:
        """Wait for the publisher's confirmation of a write, turning a missed deadline into AR 207."""
        if self._timeout is None:
            await pending
            return
        try:
            async with asyncio.timeout(self._timeout):
                await pending
        except TimeoutError as exc:
            raise StorageUnavailableError("the broker did not confirm the write in time") from exc


def salvage_header(text: str) -> tuple[Header | None, Delimiters | None]:
    """Read just the MSH of a message whose body did not tokenize, to address the ACK."""
    lines = split_segments(text.lstrip())
    if not lines:
        return None, None
    try:
        msh_only = parse_message(lines[0])
    except MessageError:
        return None, None
    return read_header(msh_only), msh_only.delimiters


def _check_single_message(message: Message) -> None:
    """One block, one message: a second MSH would be acknowledged by one ACK and then lost."""
    count = len(message.all("MSH"))
    if count > 1:
        raise UnreadableMessageError(
            f"the block holds {count} messages; MLLP carries one per block", ErrorLocation("MSH", 2)
        )


def _trigger_event(message: Message, header: Header) -> str:
    """MSH-9.2, or EVN-1 for v2.1-style senders; a message without either is refused."""
    if header.trigger_event:
        return header.trigger_event
    evn = message.segment("EVN")
    trigger = evn.get(1).strip().upper() if evn else ""
    if not trigger:
        raise RequiredFieldMissingError("message has no trigger event", ErrorLocation("MSH", 1, 9))
    return trigger


def _patient_key_or_blank(text: str, header: Header | None, default_authorities: Mapping[str, str]) -> str:
    """A refused message's patient key when its PID-3 can still be read, else ""."""
    if header is None or not text:
        return ""
    try:
        return _patient_key(parse_message(text), header, default_authorities)
    except MessageError:
        return ""


def _patient_key(message: Message, header: Header, default_authorities: Mapping[str, str]) -> str:
    """Patient key from PID-3 (core.patient, as normalize builds it); required for ADT, else may be empty."""
    pid = message.segment("PID")
    identifiers = pid_identifiers(pid) if pid else []
    key = sender_patient_key(identifiers, header.sending_facility, header.sending_application, default_authorities)
    if key is not None:
        return key
    if header.message_type in _PATIENT_TYPES:
        raise RequiredFieldMissingError("PID-3 patient identifier is missing", ErrorLocation("PID", 1, 3))
    return ""


_ENHANCED = {"AA": "CA", "AE": "CE", "AR": "CR"}


class AckPolicy:
    """Which ACK a message gets, and whether one is sent at all (enhanced mode, MSH-15).

    * ``system_error_ack``: failures unrelated to content answer AR (HL7 v2)
      or, when set to AE, AE.
    * ``ack_mode`` "enhanced" and MSH-15 or MSH-16 filled: a commit ACK
      (CA/CE/CR) after the durable write, sent as MSH-15 asks: AL (or empty)
      always, NE never, ER only on CE/CR, SU only on CA.
    * Enhanced mode and MSH-16 AL, ER or SU: after the commit accept (CA), an
      application ACK (AA, or AE/AR with ERR) on the same connection, as
      MSH-16 asks, once the hub has checked it can process the stored message
      (it converts to FHIR). MSH-16 empty or NE: none.
    * The ACK is encoded in the message's codec, which :mod:`charset` keeps to
      the supported set.
    """

    def __init__(self, settings: MLLPSettings) -> None:
        if settings.system_error_ack not in ("AR", "AE"):
            raise ValueError(f"MLLP settings: system_error_ack must be AR or AE, not {settings.system_error_ack!r}")
        if settings.ack_mode not in ("original", "enhanced"):
            raise ValueError(f"MLLP settings: ack_mode must be original or enhanced, not {settings.ack_mode!r}")
        self._system_ack = settings.system_error_ack
        self._enhanced = settings.ack_mode == "enhanced"

    def code_for(self, error: MessageError | None) -> str:
        if error is None:
            return "AA"
        return self._system_ack if error.system_failure else error.ack_code

    def reply(self, ctx: _Context, error: MessageError | None) -> Reply:
        code = self.code_for(error)
        header = ctx.header
        send = True
        if self._enhanced and header is not None and (header.accept_ack_type or header.application_ack_type):
            code = _ENHANCED[code]
            send = _wanted(header.accept_ack_type, code == "CA")
        ack = _encoded_ack(ctx, code, error)
        trusted = ctx.trusted
        return Reply(
            ack=ack if send else None,
            code=code,
            control_id=loggable_id(header.control_id, trusted) if header else "",
            message_type=_loggable_type(header, trusted),
            error_code=error.code if error else "",
        )

    def application_wanted(self, header: Header | None) -> bool:
        """Enhanced mode and MSH-16 asks for application ACKs (AL, ER or SU)."""
        return self._enhanced and header is not None and header.application_ack_type in ("AL", "ER", "SU")

    def application_ack(self, ctx: _Context, error: MessageError | None) -> bytes | None:
        """The application ACK of a committed message (AA/AE/AR), or None where MSH-16 asks for none."""
        code = self.code_for(error)
        header = ctx.header
        if header is None or not _wanted(header.application_ack_type, code == "AA"):
            return None
        return _encoded_ack(ctx, code, error)


def _encoded_ack(ctx: _Context, code: str, error: MessageError | None) -> bytes:
    """The ACK in the message's codec (ASCII where that cannot encode it)."""
    try:
        return build_ack(ctx.header, code, error, ctx.delimiters).encode(ctx.codec, errors="replace")
    except (LookupError, ValueError, UnicodeError):
        return build_ack(ctx.header, code, error, ctx.delimiters).encode("ascii", errors="replace")


def _wanted(condition: str, success: bool) -> bool:
    """MSH-15/MSH-16 (table 0155): AL (or empty) always, NE never, ER only on errors, SU only on success."""
    if condition == "NE":
        return False
    if condition == "ER":
        return not success
    if condition == "SU":
        return success
    return True


def _loggable_type(header: Header | None, trusted: bool) -> str:
    """MSH-9 for logs: only from a header that passed validation, else "?"."""
    if header is None or not trusted:
        return "?"
    return header.type_label[:_SHOWN]


def _settings_version(text: str) -> tuple[int, ...]:
    key = version_key(text)
    if key is None:
        raise ValueError(f"MLLP settings: {text!r} is not a dotted version number")
    return key


def _warn_undeclared(record: InboundMessage, receipt: Receipt) -> None:
    """The charset policy's warning: no MSH-18 and not UTF-8, so stored labelled Windows-1252."""
    held = _undeclared_lines.allow("undeclared")
    if held is not None:
        log.warning(
            "message %r from %s has no MSH-18 and is not UTF-8: stored with charset %s%s",
            loggable_id(record.control_id, True),
            receipt.peer,
            record.charset,
            f" ({held} more like it not logged)" if held else "",
        )


def _log_unexpected(exc: Exception, receipt: Receipt, ctx: _Context | None = None) -> None:
    """Log the exception's type and where it was raised, never its text (it may quote PHI)."""
    frames = " <- ".join(
        f"{frame.name} ({frame.filename.rsplit('/', 1)[-1]}:{frame.lineno})"
        for frame in reversed(traceback.extract_tb(exc.__traceback__))
    )
    held = _unexpected_lines.allow(type(exc).__name__)
    if held is None:
        return
    log.error(
        "unexpected %s handling control id %r from %s, treated as an internal error (ERR 207); at %s%s",
        type(exc).__name__,
        loggable_id(ctx.header.control_id, ctx.trusted) if ctx is not None and ctx.header is not None else "",
        receipt.peer,
        frames,
        f" ({held} more like it not logged)" if held else "",
    )
