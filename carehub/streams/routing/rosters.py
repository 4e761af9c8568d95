"""Attribution rosters: CSV files and FHIR Group resources under config/rosters/.

A CSV roster has a header ``assigning_authority,patient_id`` plus one column
per role (``pcp``, ``payer``, ``care_manager``, ``pharmacy``) whose cells are
recipient ids from the directory. A FHIR Group (``*.json``) enrols its members
with the recipient named in ``managingEntity.identifier`` (system
``urn:carehub:recipient``), in the role given by ``code`` or, by default, the
recipient's kind. Every problem names the file and line.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from carehub.core.configfile import load_schema, parse_yaml, validate
from carehub.core.errors import ConfigError
from carehub.streams.routing.model import Attribution, Recipient, Roster

AUTHORITY_PREFIX = "urn:carehub:authority:"
RECIPIENT_SYSTEM = "urn:carehub:recipient"
ROLE_SYSTEM = "urn:carehub:attribution-role"
KEY_COLUMNS = ("assigning_authority", "patient_id")
ROLE_COLUMNS = {"pcp": "pcp", "payer": "payer", "care_manager": "care-manager", "pharmacy": "pharmacy"}
#: Which recipient kinds may hold each role.
ROLE_KINDS = {
    "pcp": ("pcp",),
    "payer": ("payer",),
    "pharmacy": ("pharmacy",),
    "care-manager": ("care-manager", "payer", "pcp"),
}


def member_key(authority: str, value: str) -> str:
    """How rosters and events name a patient: assigning authority | identifier."""
    return f"{authority.strip().removeprefix(AUTHORITY_PREFIX)}|{value.strip()}"


def _check_recipient(
    recipient_id: str, role: str, recipients: dict[str, Recipient], file: str, line: int | None
) -> ConfigError | None:
    recipient = recipients.get(recipient_id)
    if recipient is None:
        return ConfigError(f"{role}: recipient {recipient_id!r} is not in the directory", file=file, line=line)
    if recipient.kind not in ROLE_KINDS[role]:
        return ConfigError(
            f"{role}: recipient {recipient_id!r} is a {recipient.kind}, not one of {list(ROLE_KINDS[role])}",
            file=file,
            line=line,
        )
    return None


def _csv_header(rows: list[list[str]], file: str) -> list[str]:
    if not rows:
        raise ConfigError("empty roster: a header row is required", file=file, line=1)
    header = [h.strip() for h in rows[0]]
    unknown = [h for h in header if h not in KEY_COLUMNS and h not in ROLE_COLUMNS]
    missing = [k for k in KEY_COLUMNS if k not in header]
    if missing or unknown or not set(header) & set(ROLE_COLUMNS):
        raise ConfigError(
            f"header must be {', '.join(KEY_COLUMNS)} plus role columns from {sorted(ROLE_COLUMNS)}"
            + (f"; unknown {unknown}" if unknown else "")
            + (f"; missing {missing}" if missing else ""),
            file=file,
            line=1,
        )
    return header


def _csv_row(
    header: list[str], row: list[str], line: int, recipients: dict[str, Recipient], file: str
) -> tuple[str, dict[str, str], list[ConfigError]]:
    if len(row) != len(header):
        return "", {}, [ConfigError(f"{len(row)} cells, the header has {len(header)}", file=file, line=line)]
    cells = dict(zip(header, (c.strip() for c in row), strict=True))
    if not cells["assigning_authority"] or not cells["patient_id"]:
        return "", {}, [ConfigError("assigning_authority and patient_id are required", file=file, line=line)]
    roles = {ROLE_COLUMNS[c]: v for c, v in cells.items() if c in ROLE_COLUMNS and v}
    errors = [e for r, rid in roles.items() if (e := _check_recipient(rid, r, recipients, file, line)) is not None]
    return member_key(cells["assigning_authority"], cells["patient_id"]), roles, errors


def load_csv_roster(path: Path, recipients: dict[str, Recipient]) -> tuple[Roster, list[ConfigError]]:
    """The roster and every bad row (with its line); rows with errors are left out."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read roster: {exc}", file=file) from exc
    reader = csv.reader(io.StringIO(text))
    rows: list[tuple[int, list[str]]] = []
    for row in reader:
        if row and any(c.strip() for c in row):
            rows.append((reader.line_num, row))
    header = _csv_header([r for _, r in rows[:1]], file)
    members: dict[str, Attribution] = {}
    errors: list[ConfigError] = []
    for line, row in rows[1:]:
        key, roles, problems = _csv_row(header, row, line, recipients, file)
        if not problems and key in members:
            problems = [ConfigError(f"patient listed twice (first on line {members[key].line})", file=file, line=line)]
        errors.extend(problems)
        if not problems:
            members[key] = Attribution(path.stem, roles, line)
    return Roster(path.stem, file, members), errors


def _group_role(group: dict[str, Any], recipient: Recipient) -> str:
    for coding in group.get("code", {}).get("coding", []):
        if coding.get("system") == ROLE_SYSTEM:
            return str(coding["code"])
    return recipient.kind


def load_group_roster(path: Path, recipients: dict[str, Recipient]) -> tuple[Roster, list[ConfigError]]:
    """A FHIR Group roster: every member attributed to the managing recipient."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read roster: {exc.strerror}", file=file) from exc
    data, node = parse_yaml(text, file)  # JSON is YAML: this keeps line numbers
    validate(data, node, load_schema("roster-group.schema.json"), file)
    recipient_id = data["managingEntity"]["identifier"]["value"]
    line = node.start_mark.line + 1 if node is not None else None
    recipient = recipients.get(recipient_id)
    if recipient is None:
        raise ConfigError(f"managingEntity: recipient {recipient_id!r} is not in the directory", file=file, line=line)
    role = _group_role(data, recipient)
    problem = _check_recipient(recipient_id, role, recipients, file, line)
    if problem is not None:
        raise problem
    members = {}
    for member in data.get("member", []):
        ident = member["entity"]["identifier"]
        if not member.get("inactive", False):
            members[member_key(ident["system"], ident["value"])] = Attribution(path.stem, {role: recipient_id})
    return Roster(path.stem, file, members), []


def roster_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in (".csv", ".json") and p.is_file())


def load_rosters(directory: Path, recipients: dict[str, Recipient]) -> tuple[tuple[Roster, ...], list[ConfigError]]:
    rosters: list[Roster] = []
    errors: list[ConfigError] = []
    for path in roster_files(directory):
        loader = load_csv_roster if path.suffix == ".csv" else load_group_roster
        try:
            roster, problems = loader(path, recipients)
        except ConfigError as exc:
            errors.append(exc)
            continue
        rosters.append(roster)
        errors.extend(problems)
    return tuple(rosters), errors
