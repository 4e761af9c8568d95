"""Code tables from ``carehub/mappings/codes/*.yaml``: HL7 v2 tables to FHIR codes.

A table maps a source code to a target code (with optional display) in one
target system. Codes a table does not list either pass through in the
table's ``fallback_system`` (so a site code is never lost) or are dropped
when the table has none. Tables are loaded and validated once, on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from carehub.mappings.loader import MAPPINGS_DIR, load_mapping_file


@dataclass(frozen=True, slots=True)
class Code:
    code: str
    display: str | None
    system: str | None

    def coding(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.system:
            out["system"] = self.system
        out["code"] = self.code
        if self.display:
            out["display"] = self.display
        return out


@dataclass(frozen=True, slots=True)
class CodeTable:
    name: str
    system: str | None
    fallback_system: str | None
    entries: dict[str, Code]
    case_sensitive: bool

    def lookup(self, source: str) -> Code | None:
        """The mapped code, the fallback code, or ``None`` when nothing applies."""
        key = source.strip()
        if not key:
            return None
        found = self.entries.get(key if self.case_sensitive else key.upper())
        if found is not None:
            return found
        if self.fallback_system is not None:
            return Code(key, None, self.fallback_system or None)
        return None

    def value(self, source: str) -> str | None:
        found = self.lookup(source)
        return found.code if found is not None else None


def _entry(raw: Any, system: str | None) -> Code:
    if isinstance(raw, dict):
        return Code(str(raw["code"]), raw.get("display"), raw.get("system", system))
    return Code(str(raw), None, system)


def _build(name: str, data: dict[str, Any]) -> CodeTable:
    case_sensitive = bool(data.get("case_sensitive", False))
    system = data.get("system")
    entries = {
        (str(k) if case_sensitive else str(k).upper()): _entry(v, system) for k, v in (data.get("map") or {}).items()
    }
    fallback = data.get("fallback_system")
    return CodeTable(name, system, fallback, entries, case_sensitive)


@cache
def tables() -> dict[str, CodeTable]:
    """Every table under carehub/mappings/codes, by file stem."""
    found: dict[str, CodeTable] = {}
    for path in sorted((MAPPINGS_DIR / "codes").glob("*.yaml")):
        found[path.stem] = _build(path.stem, load_mapping_file(path, "code-table"))
    return found


def table(name: str) -> CodeTable:
    return tables()[name]


def table_names() -> list[str]:
    return sorted(tables())
