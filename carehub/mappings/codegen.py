"""Generate one Python function per composite map and per segment section, once, at load time.

A datatype map (``datatypes/CX.yaml``), an inline ``map:`` and a resource section (``PID`` of
``resources/Patient.yaml``) each become the source of one function, compiled with ``exec``: every
rule is a block of straight-line code inside it (read the field or component, split, unescape,
transform, write at the path), so a message costs one call per section and per composite value
instead of a chain of closures per rule (input selector, producer, setter). What a block calls is
bound by name in the function's namespace: transforms, code-table lookups, conditions
(``compiler.compile_when``), producers that are not composites (``compiler.compile_producer``)
and nested composite builders. Constants (``const``, as a literal built anew each time), references
(``ref``) and the write at a path, dotted or not, are code in the block itself.

The semantics are those of the rules as ``compiler`` documents them; tests/mappings (golden
bundles and the corpus) pin the output.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from carehub.adapters.hl7.tokenizer import Segment, unescape
from carehub.mappings.compiler import (
    DatatypeLookup,
    DatatypeMap,
    Producer,
    compile_producer,
    compile_when,
    is_pure,
    leaf_of,
    narrow,
    text_leaf,
)
from carehub.mappings.context import BuildContext

SectionFn = Callable[[Segment, BuildContext], bool]
IdFn = Callable[[Segment, BuildContext], str]
_counter = itertools.count()


class _Source:
    """Lines of one generated function and the objects its code names."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: dict[str, Any] = {"unescape": unescape, "narrow": narrow}

    def bind(self, value: Any, hint: str) -> str:
        name = f"_{hint}{len(self.names)}"
        self.names[name] = value
        return name

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    def build(self, name: str, label: str) -> Any:
        code = compile("\n".join(self.lines) + "\n", f"<mapping {label} #{next(_counter)}>", "exec")
        namespace = dict(self.names)
        exec(code, namespace)  # noqa: S102 - our own generated source, from validated mapping files
        return namespace[name]


def _emit_set(src: _Source, indent: int, target: str, path: str, value: str) -> None:
    """``target`` <- ``value`` at ``path``: ``a.b.c`` keeps the first value written (the objects on the way
    are made when missing, or replace a value that is not an object); ``a.b.c[]`` appends, a list value
    extends, and a reference already in the list is not added again."""
    append = path.endswith("[]")
    *parents, last = (path[:-2] if append else path).split(".")
    if parents:
        src.emit(indent, f"node = {target}")
        for key in parents:
            src.emit(indent, f"step = node.get({key!r})")
            src.emit(indent, "if not isinstance(step, dict):")
            src.emit(indent + 1, f"step = node[{key!r}] = {{}}")
            src.emit(indent, "node = step")
        target = "node"
    if append:
        src.emit(indent, f"found = {target}.setdefault({last!r}, [])")
        src.emit(indent, f"if isinstance({value}, list):")
        src.emit(indent + 1, f"found.extend({value})")
        src.emit(indent, f"elif not (isinstance({value}, dict) and 'reference' in {value} and {value} in found):")
        src.emit(indent + 1, f"found.append({value})")
    else:
        src.emit(indent, f"if {last!r} not in {target}:")
        src.emit(indent + 1, f"{target}[{last!r}] = {value}")


def _first_wins_key(path: str) -> str | None:
    """The key of a top-level first-wins path: a rule writing it can be skipped once it is set."""
    return path if "." not in path and not path.endswith("[]") else None


def _emit_text_leaf(src: _Source, indent: int, leaf: Callable[[str], Any], target: str, path: str) -> None:
    """From ``raw``: the unescaped, trimmed text, through the leaf, written when it is a value."""
    src.emit(indent, "if raw and raw != '\"\"':")
    src.emit(indent + 1, "text = (unescape(raw, ctx.delimiters) if esc in raw else raw).strip()")
    src.emit(indent + 1, "if text:")
    if leaf is text_leaf:
        _emit_set(src, indent + 2, target, path, "text")
        return
    src.emit(indent + 2, f"value = {src.bind(leaf, 'leaf')}(text)")
    src.emit(indent + 2, "if value is not None and value != '':")
    _emit_set(src, indent + 3, target, path, "value")


def _emit_produce(src: _Source, indent: int, producer: str, args: str, target: str, path: str) -> None:
    _emit_value(src, indent, f"{producer}({args})", target, path)


def _emit_value(src: _Source, indent: int, expression: str, target: str, path: str, written: bool = False) -> None:
    """``target`` <- the value of ``expression`` at ``path``, unless it is None or an empty str, dict or list
    (``written``: the expression is a constant known to be neither, so there is nothing to check)."""
    src.emit(indent, f"value = {expression}")
    if written:
        _emit_set(src, indent, target, path, "value")
        return
    src.emit(indent, "if value is not None and (value or not isinstance(value, (str, dict, list))):")
    _emit_set(src, indent + 1, target, path, "value")


_LITERALS = (str, int, bool, type(None))


def _literal(src: _Source, value: Any) -> str:
    """Source of an expression building a fresh copy of the constant ``value`` (a dict or list literal is
    built anew each time it is evaluated, so a written constant is never shared between resources)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(src, k)}: {_literal(src, v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(src, v) for v in value) + "]"
    if type(value) in _LITERALS:
        return repr(value)
    return src.bind(value, "const")  # any other YAML scalar (a float, a date): immutable, shared as it is


def compile_constant(value: Any) -> Producer:
    """A producer answering a fresh copy of ``value`` whatever its input (``const:`` under ``create:``)."""
    src = _Source()
    src.emit(0, "def const(parts, child, ctx):")
    src.emit(1, f"return {_literal(src, value)}")
    produce: Producer = src.build("const", "const")
    return produce


def _emit_input_free(src: _Source, indent: int, spec: dict[str, Any], target: str) -> bool:
    """A rule whose value does not read its input (``const``, ``ref``; not under ``create``), inlined in
    the generated code; False (nothing emitted) for every other rule."""
    if "create" in spec:
        return False
    if "const" in spec:
        constant = spec["const"]
        written = constant is not None and (bool(constant) or not isinstance(constant, str | dict | list))
        _emit_value(src, indent, _literal(src, constant), target, spec["path"], written)
        return True
    if "ref" in spec:
        _emit_value(src, indent, f"ctx.reference({spec['ref']!r})", target, spec["path"])
        return True
    return False


def compile_map(name: str, specs: list[dict[str, Any]], datatypes: DatatypeLookup, loc: list[str | int]) -> DatatypeMap:
    """Rules over the parts of one composite value; each reads its component (or the whole value)."""
    src = _Source()
    src.emit(0, "def build(parts, child, ctx):")
    src.emit(1, "out = {}")
    src.emit(1, "size = len(parts)")
    src.emit(1, "esc = ctx.esc")
    for i, spec in enumerate(specs):
        rule_loc: list[str | int] = [*loc, i]
        component = spec.get("component", 0)
        indent = 1
        if component:
            # Most components of a composite are empty: skip their rules.
            src.emit(indent, f"if size >= {component} and parts[{component - 1}]:")
            indent += 1
        leaf = leaf_of(spec, rule_loc) if component else None
        if leaf is not None:
            key = _first_wins_key(spec["path"])
            if key is not None:
                src.emit(indent, f"if {key!r} not in out:")
                indent += 1
            src.emit(indent, f"raw = parts[{component - 1}]")
            src.emit(indent, "if child is not None and child in raw:")
            src.emit(indent + 1, "raw = raw.split(child, 1)[0]")
            _emit_text_leaf(src, indent, leaf, "out", spec["path"])
            continue
        when = compile_when(spec.get("when"), in_segment=False)
        if when is not None:
            src.emit(indent, f"if {src.bind(when, 'when')}(parts, child, ctx):")
            indent += 1
        if not component and _emit_input_free(src, indent, spec, "out"):
            continue
        producer = src.bind(_producer(spec, datatypes, rule_loc), "produce")
        if component:
            src.emit(indent, f"inner, inner_child = narrow(parts, child, ctx, {component}, {spec.get('sub', 0)})")
            _emit_produce(src, indent, producer, "inner, inner_child, ctx", "out", spec["path"])
        else:
            _emit_produce(src, indent, producer, "parts, child, ctx", "out", spec["path"])
    src.emit(1, "return out or None")
    build: Producer = src.build("build", name)
    return DatatypeMap(name, build, all(is_pure(spec, datatypes) for spec in specs))


def _producer(spec: dict[str, Any], datatypes: DatatypeLookup, loc: list[str | int]) -> Producer:
    return compile_producer(
        spec, datatypes, loc, lambda specs, where: compile_map("inline", specs, datatypes, where), compile_constant
    )


def _emit_split_repetition(src: _Source, indent: int, field: int) -> None:
    """``raw`` <- its first repetition (MSH-1 and MSH-2 hold the delimiters: never split)."""
    if field <= 2:
        src.emit(indent, "if rep in raw and seg.name != 'MSH':")
    else:
        src.emit(indent, "if rep in raw:")
    src.emit(indent + 1, "raw = raw.split(rep, 1)[0]")


def _emit_parts(src: _Source, indent: int, raw: str, spec: dict[str, Any]) -> None:
    """``parts, child`` of one repetition ``raw``: its components, narrowed to the rule's component."""
    src.emit(indent, f"parts = {raw}.split(comp) if comp in {raw} else [{raw}]")
    component = spec.get("component", 0)
    if component:
        src.emit(indent, f"parts, child = narrow(parts, sub, ctx, {component}, {spec.get('sub', 0)})")
    else:
        src.emit(indent, "child = sub")


def _emit_segment_rule(src: _Source, spec: dict[str, Any], datatypes: DatatypeLookup, loc: list[str | int]) -> None:
    field = spec.get("field", 0)
    indent = 1
    if field:
        # Most fields are empty: skip their rules.
        src.emit(indent, f"if size > {field} and fields[{field}]:")
        indent += 1
    leaf = leaf_of(spec, loc) if field and not spec.get("repeat") else None
    if leaf is not None:
        key = _first_wins_key(spec["path"])
        if key is not None:
            src.emit(indent, f"if {key!r} not in target:")
            indent += 1
        index = spec.get("component", 1) - 1
        src.emit(indent, f"raw = fields[{field}]")
        _emit_split_repetition(src, indent, field)
        src.emit(indent, "if comp in raw:")
        if index:
            src.emit(indent + 1, "comps = raw.split(comp)")
            src.emit(indent + 1, f"raw = comps[{index}] if {index} < len(comps) else ''")
            src.emit(indent, "else:")
            src.emit(indent + 1, "raw = ''")
        else:
            src.emit(indent + 1, "raw = raw.split(comp, 1)[0]")
        src.emit(indent, "if sub in raw:")
        src.emit(indent + 1, "raw = raw.split(sub, 1)[0]")
        _emit_text_leaf(src, indent, leaf, "target", spec["path"])
        return
    when = compile_when(spec.get("when"), in_segment=True)
    if when is not None:
        src.emit(indent, f"if {src.bind(when, 'when')}(seg, ctx):")
        indent += 1
    if not field and _emit_input_free(src, indent, spec, "target"):
        return
    producer = src.bind(_producer(spec, datatypes, loc), "produce")
    if not field:
        # The whole segment is a composite whose components are its fields.
        _emit_produce(src, indent, producer, "fields[1:], comp, ctx", "target", spec["path"])
        return
    src.emit(indent, f"raw = fields[{field}]")
    src.emit(indent, "if raw != '\"\"':")
    indent += 1
    if not spec.get("repeat", False):
        _emit_split_repetition(src, indent, field)
        src.emit(indent, "if raw:")
        _emit_parts(src, indent + 1, "raw", spec)
        _emit_produce(src, indent + 1, producer, "parts, child, ctx", "target", spec["path"])
        return
    if field <= 2:
        src.emit(indent, "reps = [raw] if seg.name == 'MSH' else raw.split(rep) if rep in raw else [raw]")
    else:
        src.emit(indent, "reps = raw.split(rep) if rep in raw else [raw]")
    src.emit(indent, "for one in reps:")
    src.emit(indent + 1, "if one:")
    _emit_parts(src, indent + 2, "one", spec)
    _emit_produce(src, indent + 2, producer, "parts, child, ctx", "target", spec["path"])


def compile_section(
    resource_type: str,
    segment: str,
    spec: dict[str, Any],
    datatypes: DatatypeLookup,
    loc: list[str | int],
    make_id: IdFn | None,
    profile: str | None,
) -> SectionFn:
    """What one segment contributes to one resource: a new one (with its id) or, ``merge``, the latest."""
    src = _Source()
    src.emit(0, "def apply(seg, ctx):")
    when = compile_when(spec.get("when"), in_segment=True)
    if when is not None:
        src.emit(1, f"if not {src.bind(when, 'when')}(seg, ctx):")
        src.emit(2, "return False")
    if make_id is None:
        src.emit(1, f"target = ctx.latest.get({resource_type!r})")
        src.emit(1, "if target is None:")
        src.emit(2, "return False")
    else:
        src.emit(1, f"target = {{'resourceType': {resource_type!r}, 'id': {src.bind(make_id, 'make_id')}(seg, ctx)}}")
        if profile:
            src.emit(1, f"target['meta'] = {{'profile': [{profile!r}]}}")
        src.emit(1, f"ctx.latest[{resource_type!r}] = target")
    src.emit(1, "fields = seg.fields")
    src.emit(1, "size = len(fields)")
    src.emit(1, "rep, comp, sub, esc = ctx.rep, ctx.comp, ctx.sub, ctx.esc")
    for i, rule in enumerate(spec.get("rules", [])):
        _emit_segment_rule(src, rule, datatypes, [*loc, "rules", i])
    if make_id is not None:
        src.emit(1, "ctx.add(target)")
    src.emit(1, "return True")
    section: SectionFn = src.build("apply", f"{resource_type}/{segment}")
    return section
