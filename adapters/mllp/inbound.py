"""What the MLLP listener does with one block: check it, store it, answer it.

Kept apart from the socket code so the rules (which messages are accepted,
when AA may be sent) are testable with plain bytes. The one rule that matters
most: AA only after :meth:`Publisher.publish` has returned, i.e. after the
broker confirmed the write. Anything else gets AE or AR, derived from the
error class in one place (:func:`ack_code_for`).

Nothing here logs message content: only control id, type, peer and codes.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from adapters.hl7.ack import build_ack, version_key
from adapters.hl7.charset import decode
from adapters.hl7.header import Header, pid_identifiers, read_header
from adapters.hl7.tokenizer import Delimiters, Message, parse_message, split_segments
from adapters.mllp.framing import RejectedFrame
from core.errors import (
    ErrorLocation,
    MessageError,
    RequiredFieldMissingError,
    StorageUnavailableError,
    UnreadableMessageError,
    UnsupportedMessageTypeError,
    UnsupportedProcessingIdError,
    UnsupportedVersionError,
)
from core.patient import choose_key_identifier, patient_key
from core.records import InboundMessage
from core.settings import MLLPSettings

log = logging.getLogger(__name__)

#: Echoed codes are cut to this length in error texts and logs.
_SHOWN = 20
#: Message types whose every message concerns one patient, so PID-3 is required.
_PATIENT_TYPES = frozenset({"ADT"})


class Publisher(Protocol):
    """Where accepted messages go (Kafka in production).

    ``publish`` returns only once the write is durable (acks=all); when the
    broker does not confirm it raises :class:`StorageUnavailableError`.
    """

    async def publish(self, message: InboundMessage) -> None: ...


@dataclass(frozen=True, slots=True)
class Receipt:
    """Where a block came in: the listener's name and the peer's address."""

    listener: str
    peer: str


@dataclass(frozen=True, slots=True)
class Reply:
    """The encoded ACK for one block, plus what the receiver may log and count."""

    ack: bytes
    code: str
    control_id: str
    message_type: str
    error_code: str = ""


def ack_code_for(error: MessageError | None) -> str:
    """The ACK code for an outcome: AA without error, else the error class's code."""
    return "AA" if error is None else error.ack_code


class InternalHandlingError(MessageError):
    """Stands in for an unexpected exception in the ACK; never carries its text."""

    code = "internal-error"


@dataclass(slots=True)
class _Context:
    """What is known about a message so far; the ACK uses whatever got filled in."""

    codec: str
    header: Header | None = None
    delimiters: Delimiters | None = None


class InboundHandler:
    """Turns a block's payload into a stored :class:`InboundMessage` and an ACK."""

    def __init__(
        self,
        publisher: Publisher,
        settings: MLLPSettings,
        *,
        publish_timeout_s: float | None = None,
    ) -> None:
        """``publish_timeout_s`` caps the wait for the broker; past it the answer is AE."""
        self._publisher = publisher
        self._types = frozenset(t.strip().upper() for t in settings.accept_message_types)
        self._processing_ids = frozenset(p.strip().upper() for p in settings.processing_ids)
        self._min_version = _settings_version(settings.min_version)
        self._max_version = _settings_version(settings.max_version)
        self._version_range = f"{settings.min_version}-{settings.max_version}"
        self._timeout = publish_timeout_s

    async def handle(self, payload: bytes, receipt: Receipt) -> Reply:
        """Check, store and answer one payload. Never raises (except cancellation)."""
        received_at = _utc_now()
        text, codec = decode(payload)
        ctx = _Context(codec)
        try:
            message = parse_message(text)
            ctx.header, ctx.delimiters = read_header(message), message.delimiters
            record = self._admit(payload, message, ctx.header, codec, receipt, received_at)
            await self._publish(record)
        except MessageError as exc:
            if ctx.header is None:
                ctx.header, ctx.delimiters = salvage_header(text)
            return _reply(ctx, exc)
        except Exception as exc:
            _log_unexpected(exc, ctx.header, receipt)
            return _reply(ctx, InternalHandlingError("internal error while handling the message"))
        return _reply(ctx, None)

    def reject(self, frame: RejectedFrame, receipt: Receipt) -> Reply:
        """Answer a block the framing refused, addressed via whatever MSH its head holds."""
        text, codec = decode(frame.head)
        header, delimiters = salvage_header(text)
        return _reply(_Context(codec, header, delimiters), frame.error)

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
            patient_key=_patient_key(message, header),
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

    async def _publish(self, record: InboundMessage) -> None:
        """Hand the record to the publisher, turning a missed deadline into AE."""
        if self._timeout is None:
            await self._publisher.publish(record)
            return
        try:
            async with asyncio.timeout(self._timeout):
                await self._publisher.publish(record)
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


def _patient_key(message: Message, header: Header) -> str:
    """Patient key from PID-3; required for ADT, empty for other types without one."""
    pid = message.segment("PID")
    identifier = choose_key_identifier(pid_identifiers(pid)) if pid else None
    if identifier is not None:
        return patient_key(identifier)
    if header.message_type in _PATIENT_TYPES:
        raise RequiredFieldMissingError("PID-3 patient identifier is missing", ErrorLocation("PID", 1, 3))
    return ""


def _reply(ctx: _Context, error: MessageError | None) -> Reply:
    """Build and encode the ACK in the message's own charset."""
    code = ack_code_for(error)
    header = ctx.header
    text = build_ack(header, code, error, ctx.delimiters)
    return Reply(
        ack=text.encode(ctx.codec, errors="replace"),
        code=code,
        control_id=header.control_id if header else "",
        message_type=header.type_label if header else "",
        error_code=error.code if error else "",
    )


def _settings_version(text: str) -> tuple[int, ...]:
    key = version_key(text)
    if key is None:
        raise ValueError(f"MLLP settings: {text!r} is not a dotted version number")
    return key


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _log_unexpected(exc: Exception, header: Header | None, receipt: Receipt) -> None:
    """Log the exception's type and where it was raised, never its text (it may quote PHI)."""
    frames = " <- ".join(
        f"{frame.name} ({frame.filename.rsplit('/', 1)[-1]}:{frame.lineno})"
        for frame in reversed(traceback.extract_tb(exc.__traceback__))
    )
    log.error(
        "unexpected %s handling control id %r (%s) from %s; answered AE 207; at %s",
        type(exc).__name__,
        header.control_id[:_SHOWN] if header else "",
        header.type_label[:_SHOWN] if header else "?",
        receipt.peer,
        frames,
    )
