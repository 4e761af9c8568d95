"""One module per agent; each exposes ``register(app, ctx)``. AGENTS lists them in order."""

from __future__ import annotations

from types import ModuleType

from carehub.streams.agents import audit, careplan, deliver, fhir_inbound, normalize, retry, route

AGENTS: list[ModuleType] = [normalize, route, deliver, retry, fhir_inbound, audit, careplan]
