"""One module per stage or agent. Faust agents expose ``register(app, ctx)`` (AGENTS lists them);
the stages run by streams.stage (normalize, route, deliver) expose ``handler(ctx, ...)``."""

from __future__ import annotations

from types import ModuleType

from carehub.streams.agents import audit, careplan, fhir_inbound, retry

AGENTS: list[ModuleType] = [retry, fhir_inbound, audit, careplan]
