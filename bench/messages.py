"""Synthetic ADT messages for load: one unique patient and control id each.

``message(n)`` is an inpatient admission (A01); ``mixed(n)`` alternates admissions (even ``n``)
and discharges (odd ``n``, A03 with a discharge time in PV1-45) for the end-to-end run on the
shipped routing map.
"""

from __future__ import annotations

TEMPLATE = (
    "MSH|^~\\&|BENCHADT|RGH^2.16.840.1.113883.3.9999.1^ISO|CAREHUB|CAREHUB|20261101113000-0500||ADT^A01^ADT_A01|{cid}|P|2.5.1\r"
    "EVN|A01|20261101113000-0500\r"
    "PID|1||MRN{n:08d}^^^RGH^MR||BENCH^PATIENT^{n}||19580412|F|||412 ELM ST^^SPRINGFIELD^IL^62701^USA^H"
    "||(217)555-0101\r"
    "PD1|||RIVERSIDE FAMILY PRACTICE^^RFP|1234567893^WELBY^MARCUS^^^DR^^^NPI&2.16.840.1.113883.4.6&ISO^^^^NPI\r"
    "PV1|1|I|4W^412^A^RGH^^^^MEDSURG||||1122334455^HOUSE^GREGORY^^^DR|||MED||||7|||1122334455^HOUSE^GREGORY^^^DR|IP|"
    "V{n:08d}^^^RGH^VN|MCR|||||||||||||||||||RGH|||||20261101112500-0500\r"
    "DG1|1||I21.4^Non-ST elevation (NSTEMI) myocardial infarction^I10|||A\r"
    "IN1|1|MCRA^Medicare Part A|PAYER-ACME^^^ACME^NIIP|ACME HEALTH PLAN|||||GRP-77||||20260101|20261231\r"
)
DISCHARGE = (
    TEMPLATE.replace("ADT^A01^ADT_A01", "ADT^A03^ADT_A03")
    .replace("EVN|A01|", "EVN|A03|")
    .replace("20261101112500-0500\r", "20261101112500-0500|20261105093000-0500\r")
)
KINDS = ("A01", "A03")


def message(n: int, run: str = "B") -> bytes:
    return TEMPLATE.format(cid=f"{run}{n:09d}", n=n).encode()


def kind(n: int) -> str:
    """The trigger of ``mixed(n)``: A01 for even ``n``, A03 for odd."""
    return KINDS[n % 2]


def mixed(n: int, run: str = "B") -> bytes:
    return (DISCHARGE if n % 2 else TEMPLATE).format(cid=f"{run}{n:09d}", n=n).encode()


def mrn(n: int) -> str:
    return f"MRN{n:08d}"
