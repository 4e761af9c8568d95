"""What the agents need for consent: the policy and the consents on file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from streams.consent.emergency import Attestation
from streams.consent.model import ConsentDirective
from streams.consent.policy import Policy


class ConsentLookup(Protocol):
    def for_patient(self, patient_key: str) -> list[ConsentDirective]: ...

    def emergencies_for(self, patient_key: str) -> list[Attestation]: ...


@dataclass(frozen=True)
class ConsentDeps:
    policy: Policy
    consents: ConsentLookup
