"""A fast, tolerant HL7v2 tokenizer, header reader and ACK builder.

hl7apy parses at ~30 msgs/s on this machine (../shared/docs/performance.md),
so it is kept off the hot path; this tokenizer splits segments and fields
eagerly and components, repetitions and sub-components only when asked.
"""

from carehub.adapters.hl7.tokenizer import Delimiters, Field, Message, Segment, parse_message

__all__ = ["Delimiters", "Field", "Message", "Segment", "parse_message"]
