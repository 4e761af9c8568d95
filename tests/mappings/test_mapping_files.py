"""Mapping files: all compile, errors name file and line, and a site adds a Z-segment without Python."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from carehub.core.errors import ConfigError
from carehub.mappings import convert_text
from carehub.mappings.loader import MAPPINGS_DIR
from carehub.mappings.plan import Plans, default_plans

MESSAGE = (
    "MSH|^~\\&|APP|FAC|HUB|HUB|202603011000||ADT^A01^ADT_A01|C1|P|2.5.1\r"
    "EVN|A01|202603011000\r"
    "PID|1||MRN1^^^HOSP^MR||Doe^Jane||19800101|F\r"
    "PV1|1|I|W1^101^A^FAC||||||||||||||||V1^^^HOSP^VN|||||||||||||||||||||||||202603010900\r"
    "ZPI|1|gold-member\r"
)


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "mappings"
    for sub in ("messages", "resources", "datatypes", "schema"):
        shutil.copytree(MAPPINGS_DIR / sub, root / sub)
    return root


def test_every_mapping_file_compiles() -> None:
    default_plans().compile_all()


def test_z_segment_is_carried_then_mapped_by_editing_files(tmp_path: Path) -> None:
    before = convert_text(MESSAGE)
    assert before.unmapped == ["ZPI#5"]
    root = _copy(tmp_path)
    (root / "messages" / "site.yaml").write_text("segments:\n  ZPI: [Patient]\n", encoding="utf-8")
    with (root / "resources" / "Patient.yaml").open("a", encoding="utf-8") as handle:
        handle.write(
            "  ZPI:\n    merge: true\n    rules:\n"
            '      - path: "extension[]"\n        field: 2\n        map:\n'
            '          - {path: url, const: "https://example.org/fhir/membership"}\n'
            "          - {path: valueString, component: 1}\n"
        )
    after = convert_text(MESSAGE, plans=Plans(root), validate=True)
    assert after.unmapped == [] and after.issues == []
    patient = next(e["resource"] for e in after.bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    assert patient["extension"] == [{"url": "https://example.org/fhir/membership", "valueString": "gold-member"}]


def test_schema_error_names_file_and_line(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    path = root / "datatypes" / "CX.yaml"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[3] = "  - {path: value, component: one}"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        Plans(root).get("ADT_A01")
    assert caught.value.file.endswith("CX.yaml") and caught.value.line == 4


def test_unknown_transform_names_file_and_line(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    path = root / "resources" / "Patient.yaml"
    text = path.read_text(encoding="utf-8").replace("transform: date}", "transform: no_such_transform}", 1)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        Plans(root).get("ADT_A01")
    assert "no_such_transform" in str(caught.value) and caught.value.file.endswith("Patient.yaml")
    assert caught.value.line is not None and "birthDate" in text.splitlines()[caught.value.line - 1]
