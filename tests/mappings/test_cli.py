"""``carehub convert`` and ``carehub validate`` end to end, through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from carehub.cli import main


def test_convert_prints_bundles_and_reports_bad_files(
    corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.hl7"
    bad.write_text("not hl7", encoding="utf-8")
    good = corpus_dir / "msfc__ADT_A03__ADT-A03-02.hl7"
    code = main(["convert", str(good), str(bad), str(good)])
    out, err = capsys.readouterr()
    assert code == 1
    bundles = json.loads(out)
    assert [b["resourceType"] for b in bundles] == ["Bundle", "Bundle"]
    assert "bad.hl7#1: error:" in err


def test_convert_event(corpus_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["convert", "--event", str(corpus_dir / "msfc__ADT_A01__ADT-A01-01.hl7")]) == 0
    event = json.loads(capsys.readouterr().out)
    assert event["schema"] == "carehub.care-event/1.1" and event["kind"] == "admit"


def test_validate_reports_structure(corpus_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(corpus_dir / "hl7apy__ADT_A01__adt_a01.hl7")]) == 0
    assert "ADT_A01 v2.6: ok" in capsys.readouterr().out
    assert main(["validate", str(corpus_dir / "msfc__ADT_A01__ADT-A01-01.hl7")]) == 1
    assert "error:" in capsys.readouterr().out


def test_validate_names_the_real_structure_of_a_non_adt(corpus_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["validate", str(corpus_dir / "hapi__BAR_P01__messages_BAR_P01_589888.hl7")])
    out = capsys.readouterr().out
    assert "BAR_P01 v2.4:" in out and "ADT_A01" not in out
    assert "not an ADT message (BAR)" in out
