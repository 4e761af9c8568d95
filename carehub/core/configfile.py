"""Load a YAML config file, expand ``${VAR}`` references and validate it.

Every error names the file and the line: YAML syntax errors by their mark,
schema violations by the line of the offending node, unset variables by the
line of the scalar that references them.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from carehub.core.defaults import shipped
from carehub.core.errors import ConfigError

SCHEMA_DIR = shipped("config") / "schemas"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@cache
def load_schema(name: str) -> dict[str, Any]:
    """A JSON Schema from config/schemas by file name."""
    path = SCHEMA_DIR / name
    with path.open(encoding="utf-8") as handle:
        schema: dict[str, Any] = json.load(handle)
    return schema


def _node_at(root: yaml.Node, path: list[str | int]) -> yaml.Node:
    node = root
    for part in path:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == part), None)
            if match is None:
                return node
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            return node
    return node


def _expand(value: Any, env: Mapping[str, str], file: str, root: yaml.Node | None, path: list[str | int]) -> Any:
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            line = _node_at(root, path).start_mark.line + 1 if root is not None else None
            where = "/".join(str(p) for p in path)
            raise ConfigError(f"{where}: environment variable {name} is not set", file=file, line=line)

        return _VAR.sub(replace, value)
    if isinstance(value, dict):
        return {k: _expand(v, env, file, root, [*path, k]) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, env, file, root, [*path, i]) for i, v in enumerate(value)]
    return value


def parse_yaml(text: str, file: str) -> tuple[Any, yaml.Node | None]:
    """Parse YAML text; return the data and its node tree (for line numbers)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(f"invalid YAML: {exc.problem or exc.context}", file=file, line=line) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=file) from exc
    return data, node


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices`` to a misspelt ``value``, else ``""``."""
    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _explain(error: jsonschema.ValidationError) -> str:
    """What is expected, in words: the schema's ``x-expected`` where it has one, not a raw regex or type.

    An unknown value of an enum names the closest allowed one.
    """
    expected = error.schema.get("x-expected") if isinstance(error.schema, dict) else None
    if isinstance(expected, str):
        return f"{expected} (got {error.instance!r})" if not isinstance(error.instance, dict | list) else expected
    if error.validator == "enum" and isinstance(error.instance, str):
        return str(error.message) + did_you_mean(error.instance, [str(v) for v in error.validator_value])
    return str(error.message)


def schema_problems(data: Any, node: yaml.Node | None, schema: dict[str, Any], file: str) -> list[ConfigError]:
    """Every JSON Schema violation, in document order, each at its node's line, said as what is expected."""
    validator = jsonschema.Draft202012Validator(schema)
    problems: dict[str, ConfigError] = {}
    for error in sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]):
        location = list(error.absolute_path)
        line = _node_at(node, location).start_mark.line + 1 if node is not None else None
        where = "/".join(str(p) for p in location) or "(top level)"
        message = f"{where}: {_explain(error)}"
        problems.setdefault(message, ConfigError(message, file=file, line=line))
    return sorted(problems.values(), key=lambda p: p.line or 0)


def validate(data: Any, node: yaml.Node | None, schema: dict[str, Any], file: str) -> None:
    """Validate against a JSON Schema; raise ConfigError at the first error's line."""
    problems = schema_problems(data, node, schema, file)
    if problems:
        raise problems[0]


def load_config_file(path: Path, schema_name: str, env: Mapping[str, str] | None = None) -> Any:
    """Read, validate and expand one YAML config file."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=file) from exc
    data, node = parse_yaml(text, file)
    if data is None:
        data = {}
    validate(data, node, load_schema(schema_name), file)
    return _expand(data, os.environ if env is None else env, file, node, [])


def file_problems(path: Path, schema_name: str) -> list[ConfigError]:
    """Every problem reading, parsing and schema-checking one file (for ``routes validate``)."""
    file = str(path)
    try:
        data, node = parse_yaml(path.read_text(encoding="utf-8"), file)
    except OSError as exc:
        return [ConfigError(f"cannot read: {exc.strerror}", file=file)]
    except ConfigError as exc:
        return [exc]
    return schema_problems({} if data is None else data, node, load_schema(schema_name), file)


def line_of(path: Path, location: list[str | int]) -> int | None:
    """The 1-based line of the node at ``location`` in a YAML file (for later checks)."""
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError):
        return None
    return _node_at(node, location).start_mark.line + 1 if node is not None else None
