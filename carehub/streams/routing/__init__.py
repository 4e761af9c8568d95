"""Routing maps and the recipient directory: models, loading and decisions."""
