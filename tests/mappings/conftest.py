"""Shared fixtures for the mapping tests: the corpus (read in place, never copied)."""

from __future__ import annotations

from pathlib import Path

import pytest

from carehub.adapters.hl7.charset import decode

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
HL7_DIR = CORPUS / "hl7v2"


def corpus_messages() -> list[Path]:
    return sorted(HL7_DIR.glob("*.hl7"))


def golden_pairs() -> list[tuple[Path, Path]]:
    return [(p, p.with_suffix(".expected.json")) for p in corpus_messages() if p.with_suffix(".expected.json").exists()]


def read_message(path: Path) -> str:
    text, _codec = decode(path.read_bytes())
    return text


def is_adt(text: str) -> bool:
    """MSH-9.1 is ADT (read naively, the way a human would look at the file)."""
    first = text.lstrip("\ufeff").lstrip().split("\r")[0].split("\n")[0]
    if not first.startswith("MSH") or len(first) < 4:
        return False
    fields = first.split(first[3])
    return len(fields) > 8 and fields[8].split(fields[1][:1] or "^")[0].strip().upper() == "ADT"


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    if not HL7_DIR.is_dir():
        pytest.skip(f"corpus not found at {HL7_DIR}")
    return HL7_DIR
