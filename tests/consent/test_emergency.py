"""§2.51 by attestation: it covers one patient, one treating provider and its period, nothing else."""

from __future__ import annotations

import pytest

from carehub.streams.consent.codes import ACT_CODE, PART2, coding
from carehub.streams.consent.decide import DENY, PERMIT, Disclosure, decide
from carehub.streams.consent.emergency import parse_attestation
from carehub.streams.consent.gate import with_attestation
from carehub.streams.consent.model import ConsentError

LABELS = [coding(ACT_CODE, PART2)]
BODY = {"id": "ed-1", "patient": "RRC|RRC-20931", "recipient": "pcp-riverside", "attested_by": "Dr. A. Rivera",
        "reason": "unresponsive", "start": "2026-11-08T14:00:00Z", "end": "2026-11-09T14:00:00Z"}  # fmt: skip
ATTESTED = parse_attestation(BODY, recorded="2026-11-08T14:01:00.000Z", recorded_by="token:ed-system")


def _decide(recipient: str, kind: str, now: str, patient: str = "RRC|RRC-20931") -> str:
    d = with_attestation(Disclosure(recipient, kind, "notify", "TREAT"), [ATTESTED], patient, now)
    return decide(LABELS, d, [], now).outcome


def test_it_permits_its_patient_and_provider_within_its_period() -> None:
    assert _decide("pcp-riverside", "pcp", "2026-11-08T20:00:00.000Z") == PERMIT


@pytest.mark.parametrize(
    ("recipient", "kind", "now", "patient"),
    [
        ("pcp-riverside", "pcp", "2026-11-08T13:59:59.000Z", "RRC|RRC-20931"),  # before
        ("pcp-riverside", "pcp", "2026-11-09T14:00:01.000Z", "RRC|RRC-20931"),  # after
        ("pcp-other", "pcp", "2026-11-08T20:00:00.000Z", "RRC|RRC-20931"),  # another provider
        ("pcp-riverside", "pcp", "2026-11-08T20:00:00.000Z", "RGH|MRN1"),  # another patient
    ],
)
def test_it_permits_nothing_else(recipient: str, kind: str, now: str, patient: str) -> None:
    assert _decide(recipient, kind, now, patient) == DENY


def test_it_never_reaches_a_payer_even_when_named() -> None:
    payer = parse_attestation({**BODY, "recipient": "payer-acme"}, recorded="2026-11-08T14:01:00.000Z")
    d = with_attestation(Disclosure("payer-acme", "payer", "notify", "HPAYMT"), [payer], "RRC|RRC-20931",
                         "2026-11-08T20:00:00.000Z")  # fmt: skip
    assert decide(LABELS, d, [], "2026-11-08T20:00:00.000Z").outcome == DENY


def test_an_attestation_is_bounded_and_complete() -> None:
    with pytest.raises(ConsentError, match="at most 72 hours"):
        parse_attestation({**BODY, "end": "2026-11-12T14:00:00Z"}, recorded="x")
    with pytest.raises(ConsentError, match="time zone"):
        parse_attestation({**BODY, "start": "2026-11-08T14:00:00"}, recorded="x")
    with pytest.raises(ConsentError, match="attested_by, reason"):
        parse_attestation({k: v for k, v in BODY.items() if k not in ("attested_by", "reason")}, recorded="x")
