"""Read one mapping file: YAML parsed and checked against its JSON Schema.

Schemas live in ``carehub/mappings/schema/<kind>.schema.json``. Errors are
``core.errors.ConfigError`` naming the file and line (via ``core.configfile``),
so an admin editing a mapping sees where they went wrong.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from carehub.core.configfile import parse_yaml, validate
from carehub.core.errors import ConfigError

MAPPINGS_DIR = Path(__file__).resolve().parent
SCHEMA_DIR = MAPPINGS_DIR / "schema"


@cache
def schema(kind: str) -> dict[str, Any]:
    with (SCHEMA_DIR / f"{kind}.schema.json").open(encoding="utf-8") as handle:
        loaded: dict[str, Any] = json.load(handle)
    return loaded


def load_mapping_file(path: Path, kind: str) -> Any:
    """Parsed, schema-valid content of ``path``; raises ConfigError with file:line."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=file) from exc
    data, node = parse_yaml(text, file)
    validate(data, node, schema(kind), file)
    return data


def line_of(path: Path, location: list[str | int]) -> int | None:
    """Line of a node, for errors found after schema validation (unknown names)."""
    from carehub.core.configfile import line_of as _line_of

    return _line_of(path, location)
