"""Shared vocabulary of carehub: records, the error tree and settings.

Nothing here imports any of the rooms (adapters, mappings, connectors, streams)."""
