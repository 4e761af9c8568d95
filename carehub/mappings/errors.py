"""Why a message could not be converted: MappingError subclasses with stable codes."""

from __future__ import annotations

from carehub.core.errors import MappingError


class UnreadableError(MappingError):
    """The text is not an HL7v2 message (no readable MSH, bad delimiters)."""

    code = "mapping-unreadable"


class NotAdtError(MappingError):
    """MSH-9 names a message type other than ADT."""

    code = "mapping-not-adt"


class MissingSegmentError(MappingError):
    """A segment every ADT needs (PID) is absent."""

    code = "mapping-missing-segment"


class MissingIdentifierError(MappingError):
    """PID carries no patient identifier, so no patient key can be built."""

    code = "mapping-missing-identifier"
