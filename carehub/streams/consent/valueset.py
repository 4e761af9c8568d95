"""Value sets of codes that reveal substance use: FHIR ValueSet ``compose`` read into a matcher (pure).

Two include shapes are understood: enumerated ``concept`` lists (any system)
and ``filter`` with ``op: is-a`` on ICD-10 (a category and everything under
it: ``F11`` covers ``F11.20`` and ``F1120``). ICD-10-CM, WHO ICD-10 and their
OIDs count as one system, and a code sent without a system is compared with
every include: a privacy filter errs on the side of labelling.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from carehub.core.errors import ConfigError

BUILTIN_PREFIX = "builtin:"
#: Package data shipped with carehub, by ``builtin:<name>``.
BUILTIN = {"sud": "sud-valueset.json"}
ICD10 = "icd-10"
_ICD10_SYSTEMS = frozenset(
    {
        "http://hl7.org/fhir/sid/icd-10-cm",
        "http://hl7.org/fhir/sid/icd-10",
        "urn:oid:2.16.840.1.113883.6.90",
        "urn:oid:2.16.840.1.113883.6.3",
    }
)


def system_family(system: str) -> str:
    return ICD10 if system in _ICD10_SYSTEMS else system


def _icd(code: str) -> str:
    return code.upper().replace(".", "").strip()


@dataclass(frozen=True, slots=True)
class ValueSet:
    """Codes by (system family, code) and ICD-10 categories (is-a)."""

    codes: frozenset[tuple[str, str]] = frozenset()
    icd10_categories: tuple[str, ...] = ()

    def contains(self, system: str, code: str) -> bool:
        if not code:
            return False
        family = system_family(system)
        if family in (ICD10, "") and _icd(code).startswith(self.icd10_categories):
            return True
        if family:
            return (family, code) in self.codes or (family == ICD10 and (ICD10, _icd(code)) in self.codes)
        return any(c == code or (f == ICD10 and c == _icd(code)) for f, c in self.codes)

    def union(self, other: ValueSet) -> ValueSet:
        return ValueSet(self.codes | other.codes, tuple(dict.fromkeys(self.icd10_categories + other.icd10_categories)))


def _include(item: dict[str, Any], where: str) -> ValueSet:
    family = system_family(str(item.get("system", "")))
    concepts = item.get("concept", [])
    codes = {(family, _icd(c["code"]) if family == ICD10 else str(c["code"])) for c in concepts}
    categories: list[str] = []
    for f in item.get("filter", []):
        if family != ICD10 or f.get("op") != "is-a" or f.get("property") != "concept":
            raise ConfigError(f"only ICD-10 'is-a' filters on 'concept' are understood, not {f}", file=where)
        categories.append(_icd(str(f["value"])))
    return ValueSet(frozenset(codes), tuple(categories))


def from_fhir(document: dict[str, Any], where: str) -> ValueSet:
    """A ValueSet resource's compose (exclude is not supported: list what counts instead)."""
    if document.get("resourceType") != "ValueSet" or "compose" not in document:
        raise ConfigError("not a FHIR ValueSet with a compose", file=where)
    if document["compose"].get("exclude"):
        raise ConfigError("compose.exclude is not supported; list only what counts", file=where)
    found = ValueSet()
    for item in document["compose"].get("include", []):
        found = found.union(_include(item, where))
    return found


def load_value_sets(names: Iterable[str], config_dir: Path) -> ValueSet:
    """``builtin:<name>`` (package data) or a path relative to the config directory."""
    found = ValueSet()
    for name in names:
        if name.startswith(BUILTIN_PREFIX):
            file = BUILTIN.get(name.removeprefix(BUILTIN_PREFIX))
            if file is None:
                raise ConfigError(f"no built-in value set {name!r} (known: {', '.join(BUILTIN)})", file="part2.yaml")
            text = resources.files("carehub.streams.consent").joinpath(file).read_text(encoding="utf-8")
        else:
            path = config_dir / name
            if not path.is_file():
                raise ConfigError(f"value set file {path} not found", file="part2.yaml")
            text = path.read_text(encoding="utf-8")
        found = found.union(from_fhir(json.loads(text), name))
    return found


def builtin_sud() -> ValueSet:
    return load_value_sets([BUILTIN_PREFIX + "sud"], Path("."))
