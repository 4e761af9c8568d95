"""Structure conformance of a message against its HL7 version, with hl7apy.

For onboarding a feed: are the segments in the order and number the
version's message structure allows, are field datatypes and lengths right.
hl7apy parses at ~30 msgs/s (performance.md §9), so this never runs on the
hot path; it backs ``carehub validate``.

Before hl7apy sees a message it is normalized the way carehub's own parser
tolerates: BOM and LF/CRLF endings, ``2.5^^``-style MSH-12, and a missing
MSH-9.3 (filled from the trigger table) — so the report is about structure,
not about the quirks carehub already accepts.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field

from carehub.adapters.hl7.header import read_header
from carehub.adapters.hl7.tokenizer import parse_message
from carehub.mappings.events import trigger

SUPPORTED_VERSIONS = (
    "2.1",
    "2.2",
    "2.3",
    "2.3.1",
    "2.4",
    "2.5",
    "2.5.1",
    "2.6",
    "2.7",
    "2.7.1",
    "2.8",
    "2.8.1",
    "2.8.2",
)


@dataclass
class Report:
    version: str
    structure: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def normalize(text: str) -> tuple[str, Report]:
    """The message as hl7apy needs it, and a report noting what was normalized."""
    message = parse_message(text)
    header = read_header(message)
    version = header.version if header.version in SUPPORTED_VERSIONS else "2.5"
    structure = _structure(header.message_type, header.trigger_event, header.structure)
    report = Report(version, structure)
    if header.message_type != "ADT":
        report.notes.append(
            f"not an ADT message ({header.message_type or 'no MSH-9'}): the hub ingests ADT only; "
            f"checked as {structure}"
        )
    if version != header.version:
        report.notes.append(f"MSH-12 {header.version!r} is not a version hl7apy knows; checked as {version}")
    msh = list(message.msh.fields)
    d = message.delimiters
    while len(msh) <= 12:
        msh.append("")
    msh[12] = version
    # MSH-9.3 (message structure) exists from v2.3.1 on; older versions reject a third component.
    parts = [header.message_type, header.trigger_event] + ([] if version in ("2.1", "2.2", "2.3") else [structure])
    msh[9] = d.component.join(parts)
    lines = ["MSH" + d.field + d.field.join(msh[2:])]
    lines += [d.field.join(seg.fields) for seg in message.segments[1:]]
    return "\r".join(lines), report


def _structure(message_type: str, trigger_event: str, declared: str) -> str:
    """MSH-9.3 when sent; for ADT the trigger table's structure; else TYPE_TRIGGER (BAR_P01, ORU_R01)."""
    if declared:
        return declared
    if message_type == "ADT":
        return trigger(trigger_event).structure
    return f"{message_type}_{trigger_event}" if trigger_event else message_type


def check(text: str) -> Report:
    """Parse and validate with hl7apy; every error and warning is collected."""
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.exceptions import HL7apyException
    from hl7apy.parser import parse_message as hl7apy_parse

    normalized, report = normalize(text)
    try:
        parsed = hl7apy_parse(normalized, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=True)
    except (HL7apyException, ValueError, KeyError, AttributeError) as exc:
        report.errors.append(f"hl7apy cannot parse the message: {type(exc).__name__}: {exc}")
        return report
    fd, path = tempfile.mkstemp(suffix=".txt")
    os.close(fd)
    try:
        try:
            parsed.validate(report_file=path)
        except (HL7apyException, ValueError, KeyError, AttributeError) as exc:
            if not os.path.getsize(path):
                report.errors.append(
                    f"hl7apy stopped validating ({type(exc).__name__}: {exc}); "
                    f"the structure is probably not one {report.version} defines"
                )
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                kind, _, finding = line.rstrip("\n").partition(": ")
                (report.errors if kind == "Error" else report.warnings).append(finding)
    finally:
        os.unlink(path)
    return report
