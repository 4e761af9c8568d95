"""One error root for carehub, with stage-specific subclasses and stable codes.

Boundaries translate these into protocol answers in one place each: the MLLP
adapter derives the ACK code and ERR segment from the class, the HTTP adapter
derives the status code and OperationOutcome. Lower-layer exceptions are
wrapped with ``raise ... from exc`` where they cross into carehub code.
"""

from __future__ import annotations

from dataclasses import dataclass


class CarehubError(Exception):
    """Root of every error carehub raises on purpose."""

    code: str = "carehub-error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class ErrorLocation:
    """Where in an HL7v2 message an error sits (ERR-2 / ERR-1 ELD)."""

    segment: str
    sequence: int = 1
    field: int | None = None


class MessageError(CarehubError):
    """A message could not be accepted as it is. Carries an HL7 table 0357 code."""

    code = "message-error"
    hl7_code: str = "207"
    hl7_text: str = "Application internal error"
    #: "AR" (reject: the sender must not resend as is) or "AE" (error).
    ack_code: str = "AE"
    #: True when the failure is unrelated to the content (broker down, internal error):
    #: HL7 v2 answers AR with ERR 207; ``mllp.system_error_ack`` may ask for AE instead.
    system_failure: bool = False

    def __init__(self, message: str, location: ErrorLocation | None = None) -> None:
        super().__init__(message)
        self.location = location


class FramingError(MessageError):
    """The bytes on the wire are not a well-formed MLLP block."""

    code = "framing-error"
    ack_code = "AR"


class MessageTooLargeError(FramingError):
    """A block exceeded the listener's configured maximum size."""

    code = "message-too-large"


class UnreadableMessageError(MessageError):
    """The MSH segment cannot be read, so the message cannot be identified."""

    code = "unreadable-message"
    hl7_code = "100"
    hl7_text = "Segment sequence error"
    ack_code = "AR"


class UnsupportedMessageTypeError(MessageError):
    code = "unsupported-message-type"
    hl7_code = "200"
    hl7_text = "Unsupported message type"
    ack_code = "AR"


class UnsupportedEventError(MessageError):
    code = "unsupported-event"
    hl7_code = "201"
    hl7_text = "Unsupported event code"
    ack_code = "AR"


class UnsupportedProcessingIdError(MessageError):
    code = "unsupported-processing-id"
    hl7_code = "202"
    hl7_text = "Unsupported processing id"
    ack_code = "AR"


class UnsupportedVersionError(MessageError):
    code = "unsupported-version"
    hl7_code = "203"
    hl7_text = "Unsupported version id"
    ack_code = "AR"


class UnsupportedCharsetError(MessageError):
    """MSH-18 names a character set outside the supported set (carehub/adapters/hl7/charset.py)."""

    code = "unsupported-charset"
    hl7_code = "203"
    hl7_text = "Unsupported character set"
    ack_code = "AR"


class CharsetMismatchError(MessageError):
    """The bytes are not valid in the character set MSH-18 declares."""

    code = "charset-mismatch"
    hl7_code = "102"
    hl7_text = "Data type error"
    ack_code = "AE"


class RequiredFieldMissingError(MessageError):
    code = "required-field-missing"
    hl7_code = "101"
    hl7_text = "Required field missing"
    ack_code = "AE"


class StorageUnavailableError(MessageError):
    """The durable store (Kafka) did not confirm the write; the sender must retry."""

    code = "storage-unavailable"
    hl7_code = "207"
    hl7_text = "Application internal error"
    ack_code = "AR"
    system_failure = True


class UnprocessableMessageError(MessageError):
    """Stored, but the hub cannot process it (it does not convert): enhanced mode's application AE (MSH-16)."""

    code = "unprocessable"
    hl7_code = "207"
    hl7_text = "Application internal error"
    ack_code = "AE"


class InternalHandlingError(MessageError):
    """Stands in for an unexpected exception in an ACK; never carries the exception's text."""

    code = "internal-error"
    hl7_code = "207"
    hl7_text = "Application internal error"
    ack_code = "AR"
    system_failure = True


class MappingError(CarehubError):
    """A stored message could not be converted to FHIR."""

    code = "mapping-error"


class RoutingError(CarehubError):
    code = "routing-error"


class RecordTooLargeError(CarehubError):
    """A stage's output is over the producer's record limit: the input is dead-lettered instead."""

    code = "record-too-large"


class DeliveryError(CarehubError):
    """A delivery attempt failed. ``permanent`` failures are not retried."""

    code = "delivery-error"

    def __init__(
        self, message: str, *, permanent: bool, status: int | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.status = status
        #: The recipient's ``Retry-After`` (seconds) on a transient answer: the next try waits at least this long.
        self.retry_after_s = retry_after_s


class RecordError(CarehubError):
    """A topic record this worker cannot read: not JSON, another record type, or required fields missing."""

    code = "bad-record"


class RecordVersionError(RecordError):
    """A topic record of another major version (docs/records.md): dead-lettered with the versions named."""

    code = "record-version"


class JournalError(CarehubError):
    """The journal (SQLite or PostgreSQL) failed a statement. ``unavailable``: the database is unreachable or
    busy (try again later) rather than refusing the statement. The message names the error class and
    SQLSTATE, never the statement's values."""

    code = "journal-error"

    def __init__(self, message: str, *, unavailable: bool) -> None:
        super().__init__(message)
        self.unavailable = unavailable


class ConfigError(CarehubError):
    """Configuration is invalid; names the file and, where known, the line."""

    code = "config-error"

    def __init__(self, message: str, *, file: str, line: int | None = None) -> None:
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {message}")
        self.file = file
        self.line = line
        self.reason = message


class BrokerError(CarehubError):
    """The Kafka broker could not be started or reached."""

    code = "broker-error"
