"""Redaction by allow-list: the issue's survivors are gone, the labels stay R + NORDSCLCD (decision tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from carehub.core.errors import ConfigError
from carehub.mappings import convert_text
from carehub.streams.consent.allowlist import AllowList
from carehub.streams.consent.labels import apply_labels
from carehub.streams.consent.policy import load_policy
from carehub.streams.consent.redact import redact
from tests.conftest import CONFIG

POLICY = load_policy(CONFIG)
MESSAGE = "\r".join([
    "MSH|^~\\&|EPICADT|RGH|CAREHUB|CAREHUB|20261108090000||ADT^A01^ADT_A01|RGH-R1|P|2.5.1",
    "EVN|A01|20261108090000",
    "PID|1||MRN-R1^^^RGH^MR||DOE^ALEX||19800101|F|||1 MAIN ST^^SPRINGFIELD^IL^62701",
    "PV1|1|I|4W-SUD^401^A^RGH||||4455667788^FOREMAN^ERIC^^^DR^^^NPI&2.16.840.1.113883.4.6&ISO^^^^NPI|||ADM"
    + "|" * 9 + "V-SECRET^^^RGH^VN" + "|" * 25 + "20261108084500",
    "PV2|||DETOX^Opioid withdrawal, detox admission^L",
    "OBX|1|CWE|11450-4^Problem list^LN||5602001^Opioid abuse^SCT||||||F",
    "DG1|1||T40.1X1A^Poisoning by heroin, accidental^I10|||A",
    "DG1|2||I10^Essential hypertension^I10|||A",
]) + "\r"  # fmt: skip


def _redacted() -> tuple[dict[str, object], bytes]:
    labelled = apply_labels(convert_text(MESSAGE).event, POLICY.registry)
    out = redact(labelled, POLICY.allow_list, POLICY.registry)
    return out.bundle, out.to_json()


def test_only_the_allow_list_survives() -> None:
    bundle, wire = _redacted()
    for survivor in (
        b"detox",
        b"Opioid",
        b"FOREMAN",
        b"4455667788",
        b"V-SECRET",
        b"4W-SUD",
        b"5602001",
        b"T40.1",
        b"ADM",
        b"RGH-R1",
        b"EPICADT",
        b"Condition",
        b"Observation",
        b"Location",
    ):
        assert survivor not in wire, survivor
    resources = {e["resource"]["resourceType"]: e["resource"] for e in bundle["entry"]}  # type: ignore[index]
    assert set(resources) == {"Patient", "Encounter"}
    assert set(resources["Encounter"]) == {"resourceType", "id", "status", "class", "period", "subject", "meta"}
    assert resources["Patient"]["name"] == [{"family": "DOE", "given": ["ALEX"]}]
    for resource in resources.values():
        codes = [s["code"] for s in resource["meta"]["security"]]
        assert codes == ["R", "NORDSCLCD"], "restricted, no redisclosure; never relabelled N"


def test_a_narrower_allow_list_keeps_less(tmp_path: Path) -> None:
    labelled = apply_labels(convert_text(MESSAGE).event, POLICY.registry)
    out = redact(labelled, AllowList({"Patient": ("gender",), "Encounter": ("class",)}, ()), POLICY.registry)
    assert b"DOE" not in out.to_json() and b"19800101" not in out.to_json()
    assert out.attributes == {"redacted": True}


def test_the_allow_list_is_checked_against_its_schema(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    text = (CONFIG / "part2.yaml").read_text().replace("Encounter: [status, class, period, subject]",
                                                     "Encounter: [status, class, meta]")  # fmt: skip
    (config / "part2.yaml").write_text(text)
    with pytest.raises(ConfigError, match="redaction"):
        load_policy(config)
    assert json.loads((CONFIG / "schemas" / "part2.schema.json").read_text())["properties"]["redaction"]
