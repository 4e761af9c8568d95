"""What the agents need for consent: the policy and the consents on file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from carehub.streams.consent.emergency import Attestation
from carehub.streams.consent.model import ConsentDirective
from carehub.streams.consent.policy import Policy


class ConsentLookup(Protocol):
    def for_patient(self, patient_key: str) -> list[ConsentDirective]: ...

    def emergencies_for(self, patient_key: str) -> list[Attestation]: ...


@dataclass(frozen=True)
class ConsentDeps:
    policy: Policy
    consents: ConsentLookup


class MergedLookup:
    """Consents and attestations of a patient and of every record merged into it (A40 ...).

    A merge names one person: the retired record's consents apply to the survivor as they are
    (read with the survivor's key), and nothing else about them changes.
    """

    def __init__(self, lookup: ConsentLookup, retired_into: Callable[[str], list[str]]) -> None:
        self._lookup = lookup
        self._retired_into = retired_into

    def for_patient(self, patient_key: str) -> list[ConsentDirective]:
        found = self._lookup.for_patient(patient_key)
        for old in self._retired_into(patient_key):
            found += [replace(c, patient_key=patient_key) for c in self._lookup.for_patient(old)]
        return found

    def emergencies_for(self, patient_key: str) -> list[Attestation]:
        found = self._lookup.emergencies_for(patient_key)
        for old in self._retired_into(patient_key):
            found += [replace(a, patient_key=patient_key) for a in self._lookup.emergencies_for(old)]
        return found


class BatchLinks:
    """``retired_into`` for a stage batch: the links of the batch's patients read in one query before it.

    The route stage looked them up one patient at a time, on the event loop, for every consent lookup
    (3-4 per event); now it calls ``load`` once per batch on the journal thread, and ``refresh`` after
    it linked a merge itself. A key the batch did not load is read from the journal when asked.
    """

    def __init__(self, read_one: Callable[[str], list[str]]) -> None:
        self._read_one = read_one
        self._known: dict[str, list[str]] = {}

    def use(self, known: dict[str, list[str]]) -> None:
        self._known = known

    def set(self, survivor: str, retired: list[str]) -> None:
        self._known[survivor] = retired

    def __call__(self, survivor: str) -> list[str]:
        found = self._known.get(survivor)
        return found if found is not None else self._read_one(survivor)


def following_merges(deps: ConsentDeps | None, retired_into: Callable[[str], list[str]]) -> ConsentDeps | None:
    """``deps`` whose lookups also return what was on file for merged (retired) patient records."""
    return None if deps is None else replace(deps, consents=MergedLookup(deps.consents, retired_into))
