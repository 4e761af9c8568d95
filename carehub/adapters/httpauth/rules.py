"""Who may call which HTTP route: one declarative table, deny when a route has no rule.

Each :class:`Rule` names a route as aiohttp registers it (method and the
canonical path, with ``{placeholders}``) and what a caller needs: the scopes
(all of them), whether the principal must be bound to a directory recipient,
and whether the handler's own per-channel secret may stand in for a token
(the rest-hook). ``HEAD`` is answered by the ``GET`` rule. A route the hub
serves without a rule here is refused to everyone (and
tests/test_route_access.py fails), so a new endpoint is closed until someone
adds its line below and to the table in docs/security.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from carehub.core.principal import (
    CONSENT_READ,
    CONSENT_WRITE,
    NOTIFY_WRITE,
    OPS_READ,
    OPS_WRITE,
    PART2_ATTEST,
    PHI_READ,
    TASK_READ,
    TASK_WRITE,
)


@dataclass(frozen=True, slots=True)
class Rule:
    method: str
    path: str
    #: Every scope the principal must hold (SMART wildcards count, see core.principal.grants).
    scopes: tuple[str, ...] = ()
    #: Who calls it, for docs/security.md.
    who: str = ""
    #: Open to anyone (liveness and readiness only).
    public: bool = False
    #: The principal must act for a directory recipient (the handler then limits it to its own data).
    recipient_bound: bool = False
    #: Without credentials the handler checks its own per-channel secret (rest-hook subscriptions).
    channel_secret: bool = False


OPS = "ops (operator, console)"
CONSOLE = "console user (session cookie from /console/signin, or a token)"
CONSENT_ADMIN = "consent administrator (EHR consent module, registrar)"
RECIPIENT = "recipient principal bound to a directory recipient"
LOGISTICS = "discharge planner or logistics coordinator (docs/logistics.md)"

RULES: tuple[Rule, ...] = (
    Rule("GET", "/health", public=True, who="anyone (liveness)"),
    Rule("GET", "/ready", public=True, who="anyone (readiness)"),
    Rule("GET", "/metrics", (OPS_READ,), OPS),
    Rule("GET", "/admin/config", (OPS_READ,), OPS),
    Rule("GET", "/admin/dlq", (OPS_READ,), OPS),
    Rule("POST", "/admin/dlq/replay", (OPS_WRITE,), OPS),
    Rule("GET", "/admin/deliveries/{id}", (OPS_READ,), OPS),
    Rule("GET", "/console/signin", public=True, who="anyone (the console's sign-in page)"),
    Rule("POST", "/console/signin", public=True, who="anyone (exchanges a verified token for a session)"),
    Rule("POST", "/console/signout", (OPS_READ,), CONSOLE),
    Rule("GET", "/console", (OPS_READ,), CONSOLE),
    Rule("GET", "/console/messages", (OPS_READ,), CONSOLE),
    Rule("GET", "/console/scorecard", (OPS_READ,), CONSOLE),
    Rule("GET", "/console/messages/{ref}", (OPS_READ,), CONSOLE),
    Rule("GET", "/console/messages/{ref}/raw", (OPS_READ, PHI_READ), "console user allowed to see PHI (audited)"),
    Rule("POST", "/console/dlq/replay", (OPS_WRITE,), CONSOLE),
    Rule("POST", "/console/routing/reload", (OPS_WRITE,), CONSOLE),
    Rule("POST", "/console/recipients/{id}/{action}", (OPS_WRITE,), CONSOLE),
    Rule("POST", "/fhir/Consent", (CONSENT_WRITE,), CONSENT_ADMIN),
    Rule("PUT", "/fhir/Consent/{id}", (CONSENT_WRITE,), CONSENT_ADMIN),
    Rule("GET", "/fhir/Consent/{id}", (CONSENT_READ,), CONSENT_ADMIN),
    Rule("GET", "/fhir/Consent", (CONSENT_READ,), CONSENT_ADMIN),
    Rule("GET", "/fhir/Consent/{id}/_history", (CONSENT_READ,), CONSENT_ADMIN),
    Rule("POST", "/logistics/orders", (OPS_WRITE, PHI_READ), LOGISTICS),
    Rule("GET", "/logistics/orders", (OPS_READ, PHI_READ), LOGISTICS),
    Rule("GET", "/logistics/orders/{id}", (OPS_READ, PHI_READ), LOGISTICS),
    Rule("GET", "/logistics/vendors", (OPS_READ,), OPS),
    Rule("POST", "/admin/part2/emergency", (PART2_ATTEST,), "clinician attesting a §2.51 medical emergency"),
    Rule("GET", "/fhir/Task", (TASK_READ,), RECIPIENT, recipient_bound=True),
    Rule("GET", "/fhir/Task/{id}", (TASK_READ,), RECIPIENT, recipient_bound=True),
    Rule("PUT", "/fhir/Task/{id}", (TASK_WRITE,), RECIPIENT, recipient_bound=True),
    Rule("PATCH", "/fhir/Task/{id}", (TASK_WRITE,), RECIPIENT, recipient_bound=True),
    Rule("GET", "/fhir/MeasureReport", (OPS_READ,), "quality lead, payer analytics (subject-list: also phi.read)"),
    Rule(
        "POST",
        "/fhir/notify/{source}/{subscription}",
        (NOTIFY_WRITE,),
        "FHIR source server (its subscription's secret header, or a token)",
        channel_secret=True,
    ),
)


class RuleTable:
    def __init__(self, rules: tuple[Rule, ...] = RULES) -> None:
        self._rules: dict[tuple[str, str], Rule] = {}
        for rule in rules:
            key = (rule.method.upper(), rule.path)
            if key in self._rules:
                raise ValueError(f"two access rules for {rule.method} {rule.path}")
            self._rules[key] = rule

    def rule_for(self, method: str, path: str) -> Rule | None:
        """The rule for a route (its canonical path); ``HEAD`` uses the ``GET`` rule."""
        method = "GET" if method.upper() == "HEAD" else method.upper()
        return self._rules.get((method, path))

    def __iter__(self) -> Iterator[Rule]:
        return iter(self._rules.values())
