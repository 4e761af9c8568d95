"""Inbound edges: MLLP framing and receiver, HL7v2 tokenizer and ACKs."""
