"""Load routes.yaml and recipients.yaml from a config directory, validated.

Schema errors and dangling references name the file and line. The map
version is the declared version plus a content hash, so an edit that forgets
to bump the version still yields a new, recorded version.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from core.configfile import line_of, load_config_file
from core.errors import ConfigError
from streams.routing.model import Action, Condition, Recipient, RoutingMap, Rule

ROUTES_FILE = "routes.yaml"
RECIPIENTS_FILE = "recipients.yaml"


def _recipient(data: dict[str, Any]) -> Recipient:
    return Recipient(
        id=data["id"],
        name=data["name"],
        kind=data["kind"],
        channel=data["channel"],
        endpoint=data["endpoint"],
        secret=data.get("secret"),
        formats=tuple(data.get("formats", ("davinci-notification",))),
        connection=tuple(sorted((k, str(v)) for k, v in data.get("connection", {}).items())),
    )


def _condition(data: dict[str, Any]) -> Condition:
    return Condition(
        kinds=tuple(data.get("kind", ())),
        facilities=tuple(data.get("facility", ())),
        encounter_classes=tuple(data.get("encounter_class", ())),
        locations=tuple(data.get("location", ())),
    )


def _actions(items: list[dict[str, Any]]) -> tuple[Action, ...]:
    actions: list[Action] = []
    for item in items:
        for kind in ("notify", "task", "forward"):
            if kind in item:
                actions.append(Action(kind, item[kind]))
    return tuple(actions)


def load_recipients(path: Path) -> dict[str, Recipient]:
    data = load_config_file(path, "recipients.schema.json")
    recipients: dict[str, Recipient] = {}
    for index, item in enumerate(data.get("recipients", [])):
        if item["id"] in recipients:
            raise ConfigError(
                f"recipient id {item['id']!r} is defined twice",
                file=str(path),
                line=line_of(path, ["recipients", index]),
            )
        recipients[item["id"]] = _recipient(item)
    return recipients


def load_routing_map(config_dir: Path) -> RoutingMap:
    routes_path = config_dir / ROUTES_FILE
    recipients_path = config_dir / RECIPIENTS_FILE
    recipients = load_recipients(recipients_path)
    data = load_config_file(routes_path, "routes.schema.json")
    rules: list[Rule] = []
    for index, item in enumerate(data.get("rules", [])):
        line = line_of(routes_path, ["rules", index])
        rule = Rule(
            item["id"], item.get("description", ""), _condition(item.get("when", {})), _actions(item["actions"]), line
        )
        for a_index, action in enumerate(rule.actions):
            if action.recipient_id not in recipients:
                raise ConfigError(
                    f"rule {rule.id!r} names recipient {action.recipient_id!r}, "
                    f"which {RECIPIENTS_FILE} does not define",
                    file=str(routes_path),
                    line=line_of(routes_path, ["rules", index, "actions", a_index]),
                )
        if any(r.id == rule.id for r in rules):
            raise ConfigError(f"rule id {rule.id!r} is used twice", file=str(routes_path), line=line)
        rules.append(rule)
    digest = hashlib.sha256(routes_path.read_bytes() + recipients_path.read_bytes()).hexdigest()[:10]
    version = f"{data['version']}+{digest}"
    return RoutingMap(version=version, rules=tuple(rules), recipients=recipients, source=str(routes_path))
