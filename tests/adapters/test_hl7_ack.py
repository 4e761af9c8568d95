"""Original-mode ACKs: MSH swap, MSA echo, ERR shape by version, escaping."""

from __future__ import annotations

import dataclasses
import re

import hl7
import pytest

from carehub.adapters.hl7.ack import ACCEPTED_TEXT, ack_delimiters, build_ack, escape, version_key
from carehub.adapters.hl7.header import Header, read_header
from carehub.adapters.hl7.tokenizer import Delimiters, parse_message
from carehub.core.errors import (
    ErrorLocation,
    RequiredFieldMissingError,
    StorageUnavailableError,
    UnreadableMessageError,
    UnsupportedVersionError,
)

from .mllp_testkit import adt


def header_of(text: str) -> tuple[Header, Delimiters]:
    message = parse_message(text)
    return read_header(message), message.delimiters


def segments(ack: str) -> dict[str, str]:
    assert ack.endswith("\r")
    return {line[:3]: line for line in ack.split("\r") if line}


def test_accept_ack_swaps_applications_and_echoes_control_id() -> None:
    header, delimiters = header_of(adt("CTRL-42", version="2.5.1"))
    ack = build_ack(header, "AA", None, delimiters, control_id="ACK1")
    seg = segments(ack)
    assert list(seg) == ["MSH", "MSA"]
    msh = seg["MSH"].split("|")
    # MSH-n is msh[n - 1]: the field separator itself is MSH-1.
    assert msh[2:6] == ["RAPP", "RFAC", "SAPP", "SFAC"]
    assert re.fullmatch(r"\d{14}\+0000", msh[6])
    assert msh[8] == "ACK^A01^ACK"
    assert msh[9] == "ACK1"
    assert msh[10] == "P"
    assert msh[11] == "2.5.1"
    assert seg["MSA"] == f"MSA|AA|CTRL-42|{ACCEPTED_TEXT}"


def test_generated_control_ids_are_unique_and_fit_older_versions() -> None:
    header, delimiters = header_of(adt())
    ids = {segments(build_ack(header, "AA", None, delimiters))["MSH"].split("|")[9] for _ in range(500)}
    assert len(ids) == 500
    assert max(len(i) for i in ids) <= 20


def test_error_ack_from_v25_uses_err_2_3_4() -> None:
    header, delimiters = header_of(adt(version="2.5"))
    error = RequiredFieldMissingError("PID-3 patient identifier is missing", ErrorLocation("PID", 1, 3))
    seg = segments(build_ack(header, "AE", error, delimiters))
    assert seg["MSA"] == "MSA|AE|MSG0001|PID-3 patient identifier is missing"
    assert seg["ERR"] == "ERR||PID^1^3|101^Required field missing^HL70357|E||||PID-3 patient identifier is missing"


def test_error_ack_below_v25_uses_err_1_eld() -> None:
    header, delimiters = header_of(adt(version="2.3"))
    error = UnsupportedVersionError("nope", ErrorLocation("MSH", 1, 12))
    seg = segments(build_ack(header, "AR", error, delimiters))
    assert seg["ERR"] == "ERR|MSH^1^12^203&Unsupported version id&HL70357"
    # v2.3 has no MSH-9.3 (message structure).
    assert seg["MSH"].split("|")[8] == "ACK^A01"


def test_eld_without_location_keeps_code_in_fourth_component() -> None:
    header, delimiters = header_of(adt(version="2.4"))
    seg = segments(build_ack(header, "AE", StorageUnavailableError("retry later"), delimiters))
    assert seg["ERR"] == "ERR|^^^207&Application internal error&HL70357"


def test_structure_component_from_v231() -> None:
    header, delimiters = header_of(adt(version="2.3.1", message_type="ADT^A08"))
    assert segments(build_ack(header, "AA", None, delimiters))["MSH"].split("|")[8] == "ACK^A08^ACK"


def test_unreadable_msh_still_gets_a_valid_reject() -> None:
    ack = build_ack(None, "AR", UnreadableMessageError("empty message", ErrorLocation("MSH")))
    seg = segments(ack)
    msh = seg["MSH"].split("|")
    assert msh[1] == "^~\\&"
    assert msh[2] == "CAREHUB"
    assert msh[11] == "2.5"
    assert seg["MSA"].split("|")[:3] == ["MSA", "AR", ""]
    assert seg["ERR"].split("|")[2:5] == ["MSH^1^", "100^Segment sequence error^HL70357", "E"]
    # An independent parser reads it too.
    parsed = hl7.parse(ack)
    assert str(parsed.segment("MSA")[1]) == "AR"


def test_delimiters_in_echoed_values_are_escaped_and_round_trip() -> None:
    header, delimiters = header_of(adt())
    tricky = dataclasses.replace(header, control_id="A|B^C~D\\E&F", sending_facility="X^Y")
    ack = build_ack(tricky, "AA", None, delimiters)
    assert "MSA|AA|A\\F\\B\\S\\C\\R\\D\\E\\E\\T\\F|" in ack
    reread = parse_message(ack)
    assert reread.segment("MSA") is not None
    assert reread.segment("MSA").get(2) == "A|B^C~D\\E&F"  # type: ignore[union-attr]
    assert reread.msh.get(6) == "X^Y"


def test_control_characters_never_reach_the_ack() -> None:
    header, delimiters = header_of(adt())
    ack = build_ack(dataclasses.replace(header, control_id="A\x0bB\x1cC\nD"), "AA", None, delimiters)
    assert "MSA|AA|ABCD|" in ack
    assert not any(ch in ack for ch in "\x0b\x1c\n")


def test_message_delimiters_are_reused() -> None:
    text = "MSH#*!?%#SAPP#SFAC#RAPP#RFAC#20240101##ADT*A01#C1#P#2.5\rPID#1##9*!*!*H*MR\r"
    header, delimiters = header_of(text)
    ack = build_ack(header, "AA", None, delimiters)
    assert ack.startswith("MSH#*!?%#RAPP#RFAC#SAPP#SFAC#")
    assert "#ACK*A01*ACK#" in ack


def test_stand_in_delimiters_are_replaced_by_the_standard_ones() -> None:
    # MSH-2 with only two encoding characters: the tokenizer invents the rest.
    header, delimiters = header_of("MSH|^~|SAPP|SFAC|RAPP|RFAC|20240101||ADT^A01|C1|P|2.5\r")
    assert ack_delimiters(delimiters) == Delimiters()
    assert build_ack(header, "AA", None, delimiters).startswith("MSH|^~\\&|RAPP|")


def test_msa_text_is_short() -> None:
    header, delimiters = header_of(adt())
    error = StorageUnavailableError("x" * 500)
    assert len(segments(build_ack(header, "AE", error, delimiters))["MSA"].split("|")[3]) == 80


def test_unknown_ack_code_is_refused() -> None:
    with pytest.raises(ValueError):
        build_ack(None, "AX", None)


def test_commit_ack_codes_are_built() -> None:
    header, delimiters = header_of(adt("CC-1"))
    assert segments(build_ack(header, "CA", None, delimiters))["MSA"].split("|")[:3] == ["MSA", "CA", "CC-1"]


def test_escape_leaves_plain_text_alone() -> None:
    assert escape("plain text 123", Delimiters()) == "plain text 123"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("2.5", (2, 5)),
        ("2.3.1", (2, 3, 1)),
        (" v2.4 ", (2, 4)),
        ("2.10", (2, 10)),
        ("", None),
        ("2.x", None),
        ("2..5", None),
        ("2.8." + "1" * 5000, None),
    ],
)
def test_version_key(text: str, key: tuple[int, ...] | None) -> None:
    assert version_key(text) == key


def test_versions_compare_numerically() -> None:
    assert version_key("2.10") > version_key("2.9")  # type: ignore[operator]
    assert version_key("2.3") < version_key("2.3.1") < version_key("2.4")  # type: ignore[operator]
