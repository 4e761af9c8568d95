"""The pieces of a mapping rule (YAML data), compiled once: inputs, values, conditions.

A rule reads one input, produces one value, and writes it at a path:

* input: in a segment section ``field`` (+ ``repeat``) then optional
  ``component``/``sub``; in a datatype map just ``component``/``sub``. An
  input is always a list of escaped parts plus the delimiter that splits a
  part further, so composites nest (an HD inside a CX is a sub-component list).
* value: ``const``, ``ref`` (latest resource of a type), ``datatype`` (a
  datatype map), ``map`` (inline rules), ``transform`` (a named Python
  function), ``code`` (a code table, shaped ``as`` code/coding/codeable), or
  the plain text. ``create`` turns the value into a resource of its own and
  yields a reference to it.
* path: ``a.b.c``; a trailing ``[]`` appends (every repetition), otherwise
  only the first non-empty value is kept. ``codegen`` writes paths (and
  ``const``/``ref`` values) as code in the function it generates.

Everything here runs at load time except the returned closures (producers,
conditions, leaves), which ``codegen`` binds into the function it generates
for each composite map and segment section: the hot path has no dict lookups
of rule options, no YAML, no string parsing of paths.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from carehub.adapters.hl7.tokenizer import Segment, unescape
from carehub.mappings import ids, transforms
from carehub.mappings.codes import Code, table
from carehub.mappings.context import BuildContext

Parts = list[str]
Input = tuple[Parts, "str | None"]
Producer = Callable[[Parts, "str | None", BuildContext], Any]
Selector = Callable[[Parts, "str | None", BuildContext], list[Input]]
Predicate = Callable[[Parts, "str | None", BuildContext], bool]


class MappingSpecError(ValueError):
    """A rule names something that does not exist (the loader adds file and line)."""

    def __init__(self, message: str, location: list[str | int]) -> None:
        super().__init__(message)
        self.location = location


@dataclass(frozen=True, slots=True)
class DatatypeMap:
    """A composite map: ``build(parts, child, ctx)`` answers the value (a dict) or None when empty.

    ``build`` is generated from the map's rules (``codegen.compile_map``). ``pure``: the value
    depends on the input alone (no ``ref`` and no ``create`` inside, however deep), so one input
    gives one value however often it recurs in a message.
    """

    name: str
    build: Producer
    pure: bool


DatatypeLookup = Callable[[str], DatatypeMap]


# -- inputs -------------------------------------------------------------------------------------


def narrow(parts: Parts, child: str | None, ctx: BuildContext, component: int, sub: int) -> Input:
    raw = parts[component - 1] if component <= len(parts) else ""
    if child is None:
        inner, next_child = [raw], None
    else:
        inner = raw.split(child) if child in raw else [raw]
        next_child = ctx.sub if child == ctx.comp else None
    if sub:
        picked = inner[sub - 1] if sub <= len(inner) else ""
        return [picked], None
    return inner, next_child


def part_selector(component: int, sub: int) -> Selector:
    """Input from a composite: one component (and sub-component), or the whole thing."""
    if not component:
        return lambda parts, child, ctx: [(parts, child)]

    def select(parts: Parts, child: str | None, ctx: BuildContext) -> list[Input]:
        return [narrow(parts, child, ctx, component, sub)]

    return select


def field_input(seg: Segment, ctx: BuildContext, field: int, component: int, sub: int) -> Input | None:
    """The first repetition of a segment field (MSH-1 and MSH-2 whole), split to components and narrowed
    to ``component``/``sub`` (0: all of them); None when the field or that repetition is empty or ``""``."""
    fields = seg.fields
    raw = fields[field] if field < len(fields) else ""
    if not raw or raw == '""':
        return None
    rep = ctx.rep
    if rep in raw and (field > 2 or seg.name != "MSH"):
        raw = raw.split(rep, 1)[0]
        if not raw:
            return None
    parts = raw.split(ctx.comp) if ctx.comp in raw else [raw]
    return narrow(parts, ctx.sub, ctx, component, sub) if component else (parts, ctx.sub)


# -- values -------------------------------------------------------------------------------------


def _scalar(parts: Parts, child: str | None, ctx: BuildContext) -> str | None:
    first = parts[0] if parts else ""
    if child is not None and child in first:
        first = first.split(child, 1)[0]
    return ctx.text(first)


def _shape_code(found: Code, shape: str, source: str) -> Any:
    if shape == "code":
        return found.code
    coding = found.coding()
    if shape == "coding":
        return coding
    return {"coding": [coding]}


def _code_producer(name: str, shape: str, loc: list[str | int]) -> Producer:
    try:
        code_table = table(name)
    except KeyError:
        raise MappingSpecError(f"unknown code table {name!r}", loc) from None

    def produce(parts: Parts, child: str | None, ctx: BuildContext) -> Any:
        source = _scalar(parts, child, ctx)
        if source is None:
            return None
        found = code_table.lookup(source)
        return None if found is None else _shape_code(found, shape, source)

    return produce


def _transform_producer(name: str, loc: list[str | int]) -> Producer:
    try:
        spec = transforms.get(name)
    except KeyError:
        raise MappingSpecError(f"unknown transform {name!r} (known: {', '.join(transforms.names())})", loc) from None
    fn = spec.fn
    if spec.kind == "value":

        def value_fn(parts: Parts, child: str | None, ctx: BuildContext) -> Any:
            source = _scalar(parts, child, ctx)
            return None if source is None else fn(source)

        return value_fn

    def parts_fn(parts: Parts, child: str | None, ctx: BuildContext) -> Any:
        """``fn`` of ``ctx.text`` of every part (its first ``child`` piece), with "" for nothing."""
        joined = "".join(parts)  # one look for a delimiter or an escape in any part, which few values have
        if child is not None and child in joined:
            parts = [p.split(child, 1)[0] if child in p else p for p in parts]
        esc = ctx.esc
        if esc in joined:
            clean = ["" if p == '""' else (unescape(p, ctx.delimiters) if esc in p else p).strip() for p in parts]
        else:
            clean = ["" if p == '""' else p.strip() for p in parts]
        return fn(clean) if any(clean) else None

    return parts_fn


def _ref_producer(resource_type: str) -> Producer:
    return lambda parts, child, ctx: ctx.reference(resource_type)


def _create(resource_type: str, body_of: Producer, pure: bool) -> Producer:
    """Build a resource from the value and answer with a reference to it.

    ``pure`` (the body depends on the input alone): the same input again in this message (the
    attending, admitting and PD1 practitioner are often one XCN) is the same resource, so it is
    not built twice: ``ctx.memo`` keeps the id it got, and ``ctx.add`` of an equal resource would
    only have made the stored one the latest of its type again.
    """

    def produce(parts: Parts, child: str | None, ctx: BuildContext) -> Any:
        memo_key = (produce, child, *parts) if pure else None
        if memo_key is not None and memo_key in ctx.memo:
            key = ctx.memo[memo_key]
            if key is None:
                return None
            ctx.latest[resource_type] = ctx.resources[key]
            return {"reference": key}
        body = body_of(parts, child, ctx)
        if not body:
            if memo_key is not None:
                ctx.memo[memo_key] = None
            return None
        resource = {"resourceType": resource_type, "id": ids.content_id(resource_type, body), **body}
        stored = ctx.add(resource)
        key = f"{resource_type}/{stored['id']}"
        if memo_key is not None:
            ctx.memo[memo_key] = key
        return {"reference": key}

    return produce


def is_pure(spec: dict[str, Any], datatypes: DatatypeLookup) -> bool:
    """A rule's value depends on its input alone: no ``ref`` or ``create``, nor in a map it uses."""
    if "ref" in spec or "create" in spec:
        return False
    if "datatype" in spec:
        return datatypes(spec["datatype"]).pure
    return all(is_pure(rule, datatypes) for rule in spec.get("map", ()))


InlineMap = Callable[[list[dict[str, Any]], list[str | int]], DatatypeMap]
Constant = Callable[[Any], Producer]


def compile_producer(
    spec: dict[str, Any], datatypes: DatatypeLookup, loc: list[str | int], inline_map: InlineMap, constant: Constant
) -> Producer:
    """The value of a rule; ``inline_map(rules, loc)`` compiles a ``map:`` and ``constant(value)`` a ``const:``
    (``codegen.compile_map`` and ``codegen.compile_constant``: a fresh copy of the value on every call)."""
    produce: Producer
    if "const" in spec:
        produce = constant(spec["const"])
    elif "ref" in spec:
        produce = _ref_producer(spec["ref"])
    elif "datatype" in spec:
        try:
            produce = datatypes(spec["datatype"]).build
        except KeyError:
            raise MappingSpecError(f"unknown datatype map {spec['datatype']!r}", [*loc, "datatype"]) from None
    elif "map" in spec:
        produce = inline_map(spec["map"], [*loc, "map"]).build
    elif "transform" in spec:
        produce = _transform_producer(spec["transform"], [*loc, "transform"])
    elif "code" in spec:
        produce = _code_producer(spec["code"], spec.get("as", "code"), [*loc, "code"])
    else:
        produce = _scalar
    if "create" in spec:
        body = {k: v for k, v in spec.items() if k != "create"}
        produce = _create(spec["create"], produce, is_pure(body, datatypes))
    return produce


# -- conditions ---------------------------------------------------------------------------------


def compile_when(spec: dict[str, Any] | list[dict[str, Any]] | None, in_segment: bool) -> Callable[..., bool] | None:
    """``when: {field, component, sub, in: [...] | not_in: [...] | present: bool}``; a list means all of them."""
    if not spec:
        return None
    if isinstance(spec, list):
        tests = [t for t in (compile_when(s, in_segment) for s in spec) if t is not None]

        def every(*args: Any) -> bool:
            for test in tests:  # noqa: SIM110 - all() would make a generator on every call (a hot path)
                if not test(*args):
                    return False
            return True

        return every
    values = {str(v).upper() for v in spec.get("in", spec.get("not_in", []))}
    negate = "not_in" in spec
    present = spec.get("present")

    def test(found: str | None) -> bool:
        if present is not None:
            return (found is not None) == bool(present)
        hit = (found or "").upper() in values
        return hit != negate

    if in_segment:
        field, at, at_sub = spec["field"], spec.get("component", 1), spec.get("sub", 0)

        def seg_pred(seg: Segment, ctx: BuildContext) -> bool:
            found = field_input(seg, ctx, field, at, at_sub)
            return test(_scalar(*found, ctx) if found is not None else None)

        return seg_pred
    component, sub = spec.get("component", 0), spec.get("sub", 0)
    if present is not None and component and not sub:
        return _presence(component - 1, bool(present))
    select = part_selector(component, sub)

    def part_pred(parts: Parts, child: str | None, ctx: BuildContext) -> bool:
        return test(_scalar(*select(parts, child, ctx)[0], ctx))

    return part_pred


def _presence(index: int, wanted: bool) -> Callable[[Parts, str | None, BuildContext], bool]:
    """``when: {component: n, present: ...}``: the text of component n (as ``_scalar`` reads it) is set or not."""

    def pred(parts: Parts, child: str | None, ctx: BuildContext) -> bool:
        raw = parts[index] if index < len(parts) else ""
        if child is not None:
            if child in raw:
                raw = raw.split(child, 1)[0]
            if child == ctx.comp and ctx.sub in raw:
                raw = raw.split(ctx.sub, 1)[0]
        return (ctx.text(raw) is not None) == wanted

    return pred


# -- leaves -------------------------------------------------------------------------------------

LeafFn = Callable[[str], Any]
_PRODUCER_KEYS = ("const", "ref", "datatype", "map", "create")


def leaf_of(spec: dict[str, Any], loc: list[str | int]) -> LeafFn | None:
    """For rules whose value is one string (plain, value transform, code): str -> value.

    Most rules are of this shape; giving them a closure without input lists and
    producer indirection is where the engine's speed comes from.
    """
    if any(key in spec for key in _PRODUCER_KEYS) or spec.get("when") or spec.get("sub"):
        return None
    if "transform" in spec:
        try:
            found = transforms.get(spec["transform"])
        except KeyError:
            raise MappingSpecError(f"unknown transform {spec['transform']!r}", [*loc, "transform"]) from None
        return found.fn if found.kind == "value" else None
    if "code" in spec:
        try:
            code_table = table(spec["code"])
        except KeyError:
            raise MappingSpecError(f"unknown code table {spec['code']!r}", [*loc, "code"]) from None
        shape = spec.get("as", "code")

        def lookup(source: str) -> Any:
            found_code = code_table.lookup(source)
            return None if found_code is None else _shape_code(found_code, shape, source)

        return lookup
    return text_leaf


def text_leaf(text: str) -> str:
    """The leaf of a plain rule (the text itself); recognised by identity, never called."""
    return text
