"""Unit tests of the named transforms and datatype maps the mapping files use."""

from __future__ import annotations

import pytest

from carehub.adapters.hl7.tokenizer import Delimiters
from carehub.mappings.context import BuildContext
from carehub.mappings.plan import default_plans
from carehub.mappings.transforms import coded, contact, datetimes, identifiers, location, text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026", "2026"),
        ("202603", "2026-03"),
        ("20260301", "2026-03-01"),
        ("2026030110", "2026-03-01T10:00:00+00:00"),
        ("202603011015", "2026-03-01T10:15:00+00:00"),
        ("20260301101530", "2026-03-01T10:15:30+00:00"),
        ("20260301101530.1234", "2026-03-01T10:15:30.1234+00:00"),
        ("20260301101530-0500", "2026-03-01T10:15:30-05:00"),
        ("198908181126+0215", "1989-08-18T11:26:00+02:15"),
        ("20261301", None),
        ("2026023a", None),
        ("", None),
    ],
)
def test_datetime_keeps_precision_and_zone(raw: str, expected: str | None) -> None:
    assert datetimes.to_datetime(raw) == expected


def test_zone_less_times_use_the_site_zone() -> None:
    try:
        datetimes.set_default_zone("America/New_York")
        assert datetimes.to_datetime("202601151000") == "2026-01-15T10:00:00-05:00"
        assert datetimes.to_datetime("202607151000") == "2026-07-15T10:00:00-04:00"
    finally:
        datetimes.set_default_zone("UTC")
    with pytest.raises(ValueError):
        datetimes.set_default_zone("Mars/Olympus")


def test_date_and_instant() -> None:
    assert datetimes.to_date("20260301101530+0100") == "2026-03-01"
    assert datetimes.to_instant("202603") == "2026-03-01T00:00:00+00:00"


@pytest.fixture()
def ctx() -> BuildContext:
    return BuildContext(Delimiters(), "A|1", "m")


def _dt(name: str, raw: str, ctx: BuildContext) -> object:
    return default_plans().files.datatype(name).build(raw.split("^"), "&", ctx)


def test_xpn_name(ctx: BuildContext) -> None:
    assert _dt("XPN", "EVERYMAN&&&&Aniston^ADAM^A^III^Dr.^^L", ctx) == {
        "family": "EVERYMAN",
        "given": ["ADAM", "A"],
        "suffix": ["III"],
        "prefix": ["Dr."],
        "use": "official",
    }


def test_xad_address(ctx: BuildContext) -> None:
    assert _dt("XAD", "1000&Hospital Lane^Ste. 123^Ann Arbor^MI^99999^USA^H", ctx) == {
        "line": ["1000", "Ste. 123"],
        "city": "Ann Arbor",
        "state": "MI",
        "postalCode": "99999",
        "country": "USA",
        "use": "home",
    }


def test_cx_identifier_with_oid_and_namespace(ctx: BuildContext) -> None:
    assert _dt("CX", "PATID1234^5^M11^test1&2.16.1&ISO^MR", ctx) == {
        "value": "PATID1234",
        "system": "urn:oid:2.16.1",
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                    "code": "MR",
                    "display": "Medical record number",
                }
            ]
        },
    }
    assert _dt("CX", "123456789^^^USSSA^SS", ctx)["system"] == "http://hl7.org/fhir/sid/us-ssn"  # type: ignore[index]
    assert _dt("CX", "42^^^MY HOSP", ctx)["system"] == "urn:carehub:authority:MY%20HOSP"  # type: ignore[index]


def test_escapes_are_decoded_in_values(ctx: BuildContext) -> None:
    assert _dt("XPN", r"O\T\Brien^Ann\S\Marie", ctx) == {"family": "O&Brien", "given": ["Ann^Marie"]}


def test_cwe_codeable_maps_systems() -> None:
    assert coded.cwe_codeable(["422504002", "Ischemic stroke", "SCT", "I63", "Stroke", "I10"]) == {
        "coding": [
            {"system": "http://snomed.info/sct", "code": "422504002", "display": "Ischemic stroke"},
            {"system": "http://hl7.org/fhir/sid/icd-10", "code": "I63", "display": "Stroke"},
        ]
    }
    assert coded.cwe_codeable(["", "free text only"]) == {"text": "free text only"}
    assert coded.cwe_codeable(["A", "", "HL70127"])["coding"][0]["system"].endswith("v2-0127")  # type: ignore[index]
    assert coded.cwe_codeable(["", "", ""]) is None


def test_telecom_and_hd_and_location() -> None:
    phone = {"system": "phone", "value": "(555)555-5555", "use": "work"}
    assert contact.xtn_contact(["(555)555-5555", "WPN", "PH"]) == phone
    email = {"system": "email", "value": "a@b.org", "use": "work"}
    assert contact.xtn_contact(["", "NET", "Internet", "a@b.org"]) == email
    assert contact.xtn_contact(["", "PRN", "PH", "", "1", "555", "1234567"])["value"] == "+1 (555) 1234567"  # type: ignore[index]
    assert identifiers.hd_system(["", "2.16.840.1", "ISO"]) == "urn:oid:2.16.840.1"
    assert location.pl_name(["4E", "136", "B"]) == "4E/136/B"
    assert text.decimal("0060") == 60 and text.decimal("1.50") == 1.5 and text.decimal("abc") is None
