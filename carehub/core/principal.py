"""Who is calling an HTTP endpoint, and the scopes that let them do what.

A :class:`Principal` is made by the inbound edge (adapters.httpauth) from a
verified bearer token or a verified client certificate, or from a rest-hook
channel secret; handlers read it from the request and never from a header
the caller chose. Scopes follow SMART on FHIR v1 (``system/Consent.write``)
plus carehub's own (``carehub/ops.read``); ``*`` matches any resource or
action, so ``system/*.read`` grants every ``system/X.read``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CONSENT_READ = "system/Consent.read"
CONSENT_WRITE = "system/Consent.write"
TASK_READ = "system/Task.read"
TASK_WRITE = "system/Task.write"
OPS_READ = "carehub/ops.read"
OPS_WRITE = "carehub/ops.write"
NOTIFY_WRITE = "carehub/notify.write"
PART2_ATTEST = "carehub/part2.attest"
#: May see message payloads (raw HL7, CareEvents) in the console; every view is audited.
PHI_READ = "carehub/phi.read"

#: How a principal proved who it is.
TOKEN = "token"
CERTIFICATE = "certificate"
CHANNEL_SECRET = "channel-secret"


def _split(scope: str) -> tuple[str, str, str]:
    context, _, rest = scope.partition("/")
    resource, _, action = rest.rpartition(".")
    return context, resource, action


def grants(held: str, wanted: str) -> bool:
    """Whether the held scope covers the wanted one (``*`` as resource or action)."""
    if held == wanted:
        return True
    h, w = _split(held), _split(wanted)
    return h[0] == w[0] and h[1] in ("*", w[1]) and h[2] in ("*", w[2]) and "" not in (h[1], h[2])


@dataclass(frozen=True, slots=True)
class Principal:
    kind: str
    #: The token's ``sub`` (the client id for SMART Backend Services) or the certificate's subject CN.
    subject: str
    #: The token issuer, or ``mtls`` / ``channel-secret``.
    issuer: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    #: The directory recipient this principal acts for (Tasks: only its own), if any.
    recipient: str | None = None

    def has(self, scope: str) -> bool:
        return any(grants(held, scope) for held in self.scopes)

    def missing(self, scopes: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(s for s in scopes if not self.has(s))

    @property
    def actor(self) -> str:
        """The name journaled as the source of a change this principal makes."""
        return f"{self.kind}:{self.recipient or self.subject}"
