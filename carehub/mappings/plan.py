"""Load the mapping files and compile them into one plan per message structure.

Layout (all YAML, each checked against ``carehub/mappings/schema/<kind>.schema.json``):

* ``messages/<STRUCTURE>.yaml`` — which resources each segment builds; files
  ``include`` others (``adt-base``, ``site``) so structures compose, never copy;
* ``resources/<Resource>.yaml`` — per segment, the rules that fill that resource;
* ``datatypes/<NAME>.yaml`` — rules over one composite (CX, XPN, XAD, ...);
* ``codes/<table>.yaml`` — code tables (see ``mappings.codes``).

Unknown names (datatype, transform, code table, resource section) are errors
at load time with the file and line, never at conversion time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from carehub.adapters.hl7.tokenizer import Segment
from carehub.core.errors import ConfigError
from carehub.mappings import ids
from carehub.mappings.codegen import SectionFn, compile_map, compile_section
from carehub.mappings.compiler import DatatypeMap, MappingSpecError, field_input
from carehub.mappings.context import BuildContext
from carehub.mappings.loader import MAPPINGS_DIR, line_of, load_mapping_file

IdFn = Callable[[Segment, BuildContext], str]


@dataclass(frozen=True, slots=True)
class Section:
    """What one segment contributes to one resource: ``apply(seg, ctx)`` (generated, ``codegen``)
    answers whether the section took the segment."""

    resource_type: str
    segment: str
    merge: bool
    apply: SectionFn


@dataclass(frozen=True, slots=True)
class MessagePlan:
    structure: str
    segments: dict[str, tuple[Section, ...]] = field(default_factory=dict)


class _Files:
    """Lazy, cached access to the mapping files under one root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._datatypes: dict[str, DatatypeMap] = {}
        self._resources: dict[str, dict[str, Section]] = {}

    def _error(self, path: Path, exc: MappingSpecError) -> ConfigError:
        return ConfigError(str(exc), file=str(path), line=line_of(path, exc.location))

    def datatype(self, name: str) -> DatatypeMap:
        found = self._datatypes.get(name)
        if found is not None:
            return found
        path = self.root / "datatypes" / f"{name}.yaml"
        if not path.exists():
            raise KeyError(name)
        data = load_mapping_file(path, "datatype")
        try:
            built = compile_map(name, data["rules"], self.datatype, ["rules"])
        except MappingSpecError as exc:
            raise self._error(path, exc) from None
        self._datatypes[name] = built
        return built

    def sections(self, resource_type: str) -> dict[str, Section]:
        found = self._resources.get(resource_type)
        if found is not None:
            return found
        path = self.root / "resources" / f"{resource_type}.yaml"
        data = load_mapping_file(path, "resource")
        built: dict[str, Section] = {}
        for name, spec in data["sections"].items():
            loc: list[str | int] = ["sections", name]
            try:
                built[name] = _section(data["resource"], name, spec, self.datatype, loc, data.get("profile"))
            except MappingSpecError as exc:
                raise self._error(path, exc) from None
        self._resources[resource_type] = built
        return built

    def message(self, name: str, seen: tuple[str, ...] = ()) -> dict[str, list[str]]:
        """Segment -> resource names for a message file, includes resolved in order."""
        path = self.root / "messages" / f"{name}.yaml"
        if name in seen:
            raise ConfigError(f"include cycle: {' -> '.join((*seen, name))}", file=str(path))
        data = load_mapping_file(path, "message")
        merged: dict[str, list[str]] = {}
        for included in data.get("include", []):
            for seg, resources in self.message(included, (*seen, name)).items():
                merged[seg] = list(resources)
        for seg, resources in (data.get("segments") or {}).items():
            merged[seg] = list(resources)
        return merged


def _id_fn(spec: Any, resource_type: str) -> IdFn:
    """``id: patient | encounter`` (precomputed) or ``{scope, keys}`` over fields."""
    if isinstance(spec, str):
        known = spec.capitalize()
        return lambda seg, ctx: ctx.ids[known]
    keys = []
    for key in spec.get("keys", []):
        nums = [int(n) for n in str(key).split(".")]
        nums += [0] * (3 - len(nums))
        keys.append((nums[0], nums[1], nums[2]))
    scope = spec.get("scope", "patient")

    def make(seg: Segment, ctx: BuildContext) -> str:
        values = []
        for field_no, component, sub in keys:
            found = field_input(seg, ctx, field_no, component, sub)
            values.append("^".join(found[0]) if found is not None else "")
        if not any(values):
            values = [ctx.message_key, str(seg.index)]
        if scope == "message":
            base = ctx.message_key
        else:
            base = ctx.patient_key if scope == "patient" else ctx.ids.get("Encounter", ctx.patient_key)
        return ids.resource_id(resource_type, base, *values)

    return make


def _section(
    resource_type: str,
    segment: str,
    spec: dict[str, Any],
    datatypes: Callable[[str], DatatypeMap],
    loc: list[str | int],
    profile: str | None,
) -> Section:
    merge = bool(spec.get("merge", False))
    make_id = None if merge else _id_fn(spec.get("id", {}), resource_type)
    return Section(
        resource_type, segment, merge, compile_section(resource_type, segment, spec, datatypes, loc, make_id, profile)
    )


def build_plan(files: _Files, structure: str) -> MessagePlan:
    plan = MessagePlan(structure)
    for seg, resources in files.message(structure).items():
        sections = []
        for resource in resources:
            found = files.sections(resource).get(seg)
            if found is None:
                path = files.root / "resources" / f"{resource}.yaml"
                raise ConfigError(f"no section for segment {seg} (used by messages/{structure}.yaml)", file=str(path))
            sections.append(found)
        plan.segments[seg] = tuple(sections)
    return plan


class Plans:
    """Every message plan under a mappings root, compiled on first use."""

    def __init__(self, root: Path = MAPPINGS_DIR) -> None:
        self.files = _Files(root)
        self._plans: dict[str, MessagePlan] = {}
        self._available = frozenset(p.stem for p in (root / "messages").glob("*.yaml") if p.stem[0].isupper())

    def available(self) -> frozenset[str]:
        """Message structures with a file (upper-case names; lower-case files are includes)."""
        return self._available

    def get(self, structure: str) -> MessagePlan:
        found = self._plans.get(structure)
        if found is None:
            found = self._plans[structure] = build_plan(self.files, structure)
        return found

    def compile_all(self) -> None:
        """Load and compile every file (used by tests and ``carehub validate``)."""
        for structure in sorted(self.available()):
            self.get(structure)


@cache
def default_plans() -> Plans:
    return Plans()
