"""HL7v2 ADT -> FHIR R4: declarative maps (YAML under this folder) and the small engine.

    from carehub.mappings import convert_text
    result = convert_text(hl7_text, received_at="2026-03-01T10:00:00Z")
    result.event      # core.records.CareEvent, for the care.events topic
    result.bundle     # FHIR R4 Bundle (type collection, MessageHeader first)
    result.unmapped   # segments no map used (carried on the MessageHeader)
    result.issues     # findings (validation ones when validate=True)

Bad input raises ``core.errors.MappingError`` (subclasses in mappings.errors).
"""

from carehub.mappings.convert import Conversion, convert, convert_text, event_id_of

__all__ = ["Conversion", "convert", "convert_text", "event_id_of"]
