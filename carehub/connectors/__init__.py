"""Outbound edges: one module per channel, all meeting ``connectors.base.Destination``."""
