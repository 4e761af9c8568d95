"""Load routes.yaml, recipients.yaml and rosters/ from a config directory, validated.

Schema errors and dangling references name the file and line. The map
version is the declared version plus a hash of every file that shaped it, so
an edit that forgets to bump the version still yields a new, recorded version.
``check_config_dir`` collects every problem (for ``carehub routes validate``);
``load_routing_map`` raises the first (a hub never runs a broken map).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from carehub.connectors.mllp import parse_endpoint
from carehub.core.configfile import did_you_mean, file_problems, line_of, load_config_file
from carehub.core.errors import ConfigError, DeliveryError
from carehub.core.transport import insecure_url_reason
from carehub.streams.routing.model import (
    CAPABILITIES,
    RECEIVED,
    Action,
    Condition,
    Due,
    Identifier,
    OrderSpec,
    Recipient,
    RoutingMap,
    Rule,
    Threshold,
)
from carehub.streams.routing.rosters import load_rosters, roster_files
from carehub.streams.routing.vendors import vendor_of, vendor_problems

#: ``risk: {lace: ...}``: the Observation system|code of each risk score the hub computes (streams.risk;
#: a sender's Observation in that system is dropped before the hub adds its own).
RISK_SCORES = {"lace": "urn:carehub:risk|lace-index"}
ROUTES_FILE = "routes.yaml"
RECIPIENTS_FILE = "recipients.yaml"
ROSTERS_DIR = "rosters"
#: What a recipient must list in ``formats`` to take each action.
ACTION_FORMATS = {
    "notify": "davinci-notification",
    "task": "fhir-task",
    "forward": "hl7v2",
    "correct": "davinci-notification",
    "packet": "toc-packet",
    "order": "fhir-task",
}
#: The target of an ``order`` action: the hub's logistics desk for one service (streams.logistics).
LOGISTICS_TARGET = "logistics:"


def _recipient(data: dict[str, Any]) -> Recipient:
    return Recipient(
        id=data["id"],
        name=data["name"],
        kind=data["kind"],
        channel=data["channel"],
        endpoint=data["endpoint"],
        secret=data.get("secret"),
        formats=tuple(data.get("formats", ("davinci-notification",))),
        identifiers=tuple(Identifier(i.get("system", ""), i["value"]) for i in data.get("identifiers", [])),
        services=tuple(data.get("services", ())),
        rostered_only=bool(data.get("rostered_only", False)),
        connection=tuple(sorted((k, str(v)) for k, v in data.get("connection", {}).items())),
        vendor=vendor_of(data),
    )


def _condition(data: dict[str, Any]) -> Condition:
    age = data.get("age", {})
    return Condition(
        kinds=tuple(data.get("kind", ())),
        facilities=tuple(data.get("facility", ())),
        encounter_classes=tuple(data.get("encounter_class", ())),
        locations=tuple(data.get("location", ())),
        patient_classes=tuple(data.get("patient_class", ())),
        payers=tuple(data.get("payer", ())),
        pcps=tuple(data.get("pcp", ())),
        diagnoses=tuple(data.get("diagnosis", ())),
        age_min=age.get("min"),
        age_max=age.get("max"),
        flags=tuple(data.get("flags", ())),
        not_flags=tuple(data.get("not_flags", ())),
        thresholds=tuple(Threshold(s["name"], s.get("gte"), s.get("lte")) for s in data.get("score", ()))
        + tuple(Threshold(RISK_SCORES[name], b.get("gte"), b.get("lte")) for name, b in data.get("risk", {}).items()),
    )


def _order(spec: dict[str, Any]) -> OrderSpec:
    when = spec.get("when", {})
    return OrderSpec(
        service=spec["service"],
        capability=spec["capability"],
        at=when.get("at", "discharge"),
        task=when.get("task", "tcm-visit"),
        offset_hours=float(when.get("hours", 0)) + 24 * float(when.get("days", 0)),
        window_hours=float(spec.get("window", {}).get("hours", 2)),
        offer_minutes=float(spec.get("offer", {}).get("minutes", 0)),
        schedule_hours=float(spec.get("schedule_within", {}).get("hours", 0)),
        max_offers=int(spec.get("max_offers", 0)),
    )


def _action(kind: str, spec: Any) -> Action:
    if kind == "order":
        order = _order(spec)
        return Action(kind, LOGISTICS_TARGET + order.service, order=order)
    if isinstance(spec, str):
        return Action(kind, spec)
    due = spec.get("due")
    return Action(
        kind,
        spec["to"],
        task=spec.get("code", ""),
        due=Due(due.get("business_days", 0), due.get("days", 0)) if due else None,
        part_of=spec.get("part_of", ""),
    )


def _actions(items: list[dict[str, Any]]) -> tuple[Action, ...]:
    return tuple(_action(kind, spec) for item in items for kind, spec in item.items())


def load_recipients(path: Path) -> dict[str, Recipient]:
    return _directory(path)[0]


def _directory(path: Path) -> tuple[dict[str, Recipient], list[dict[str, Any]]]:
    """The recipients by id, and the entries as written (for problems by line)."""
    data = load_config_file(path, "recipients.schema.json")
    recipients: dict[str, Recipient] = {}
    items: list[dict[str, Any]] = data.get("recipients", [])
    for index, item in enumerate(items):
        if item["id"] in recipients:
            raise ConfigError(
                f"recipient id {item['id']!r} is defined twice",
                file=str(path),
                line=line_of(path, ["recipients", index]),
            )
        recipients[item["id"]] = _recipient(item)
    return recipients, items


#: Channels that POST over HTTP(S): their endpoints must be https:// (http:// to loopback only).
HTTP_CHANNELS = ("webhook", "fhir-rest")
MIN_SECRET = 16


def _recipient_problems(recipients: dict[str, Recipient], path: Path) -> list[ConfigError]:
    """Transport rules checked at load (and again at send): signing secrets and https endpoints."""
    problems = []
    for index, r in enumerate(recipients.values()):
        where: list[str | int] = ["recipients", index]
        if r.channel == "webhook" and len(r.secret or "") < MIN_SECRET:
            message = (
                f"recipient {r.id!r}: a webhook recipient needs a signing secret of at least {MIN_SECRET} characters"
            )
            problems.append(ConfigError(message, file=str(path), line=line_of(path, where)))
        if r.channel == "mllp":
            try:
                parse_endpoint(r.endpoint)
            except (DeliveryError, ValueError) as exc:
                problems.append(
                    ConfigError(
                        f"recipient {r.id!r}: endpoint {exc}",
                        file=str(path),
                        line=line_of(path, [*where, "endpoint"]),
                    )
                )
        urls = [("endpoint", r.endpoint)] if r.channel in HTTP_CHANNELS else []
        urls += [(k, v) for k, v in r.connection if k == "token_url"]
        for key, url in urls:
            reason = insecure_url_reason(url)
            if reason is not None:
                problems.append(
                    ConfigError(
                        f"recipient {r.id!r}: {key} {reason}", file=str(path), line=line_of(path, [*where, key])
                    )
                )
    return problems


def _order_problem(rule: Rule, order: OrderSpec, recipients: dict[str, Recipient]) -> str | None:
    known = CAPABILITIES.get(order.service, ())
    if order.capability not in known:
        hint = did_you_mean(order.capability, known)
        return f"rule {rule.id!r}: {order.capability!r} is not a {order.service} capability ({', '.join(known)}){hint}"
    offering = [r for r in recipients.values() if r.kind == order.service and r.vendor is not None
                and order.capability in r.vendor.capabilities]  # fmt: skip
    if not offering:
        return f"rule {rule.id!r}: no {order.service} vendor in {RECIPIENTS_FILE} offers {order.capability}"
    return None


def _action_problem(rule: Rule, action: Action, recipients: dict[str, Recipient]) -> str | None:
    if action.order is not None:
        return _order_problem(rule, action.order, recipients)
    if (action.type == "correct") != (action.to == RECEIVED):
        return f"rule {rule.id!r}: correct goes to {RECEIVED!r} (whoever received the original), and only correct does"
    if action.to.startswith("attributed:") or action.type == "correct":
        return None
    if action.to.startswith("service:"):
        category = action.to.removeprefix("service:")
        if category == "sdoh" or any(category in r.services for r in recipients.values()):
            return None
        return f"rule {rule.id!r}: no recipient in {RECIPIENTS_FILE} offers service {category!r}"
    recipient = recipients.get(action.to)
    if recipient is None:
        hint = did_you_mean(action.to, recipients)
        return f"rule {rule.id!r} names recipient {action.to!r}, which {RECIPIENTS_FILE} does not define{hint}"
    if ACTION_FORMATS[action.type] not in recipient.formats:
        return (
            f"rule {rule.id!r}: recipient {action.to!r} does not accept {ACTION_FORMATS[action.type]} ({action.type})"
        )
    if action.type == "forward" and recipient.channel != "mllp":
        return f"rule {rule.id!r}: forward needs an mllp recipient, {action.to!r} uses {recipient.channel}"
    return None


def _range_problems(rule: Rule, index: int, path: Path) -> list[ConfigError]:
    """A code range must run from low to high (``Z55-Z65``; ``Z65-Z55`` would match nothing)."""
    problems = []
    for d_index, pattern in enumerate(rule.when.diagnoses):
        low, _, high = pattern.upper().replace(".", "").partition("-")
        if high and low[: len(high)] > high:
            where: list[str | int] = ["rules", index, "when", "diagnosis", d_index]
            message = f"rule {rule.id!r}: diagnosis range {pattern!r} is inverted (low-high, e.g. {high}-{low})"
            problems.append(ConfigError(message, file=str(path), line=line_of(path, where)))
    return problems


def _rule_problems(rule: Rule, index: int, path: Path, recipients: dict[str, Recipient]) -> list[ConfigError]:
    problems = _range_problems(rule, index, path)
    codes = {a.task for a in rule.actions if a.type == "task"}
    for a_index, action in enumerate(rule.actions):
        message = _action_problem(rule, action, recipients)
        if message is None and action.part_of and action.part_of not in codes:
            hint = did_you_mean(action.part_of, codes)
            message = f"rule {rule.id!r}: part_of {action.part_of!r} is not a task code of this rule{hint}"
        if message is not None:
            problems.append(
                ConfigError(message, file=str(path), line=line_of(path, ["rules", index, "actions", a_index]))
            )
    return problems


def _load_rules(path: Path, recipients: dict[str, Recipient]) -> tuple[str, tuple[Rule, ...], list[ConfigError]]:
    data = load_config_file(path, "routes.schema.json")
    rules: list[Rule] = []
    problems: list[ConfigError] = []
    for index, item in enumerate(data.get("rules", [])):
        line = line_of(path, ["rules", index])
        rule = Rule(
            item["id"], item.get("description", ""), _condition(item.get("when", {})), _actions(item["actions"]), line
        )
        problems.extend(_rule_problems(rule, index, path, recipients))
        if any(r.id == rule.id for r in rules):
            problems.append(ConfigError(f"rule id {rule.id!r} is used twice", file=str(path), line=line))
        rules.append(rule)
    problems.extend(_follow_up_problems(rules, path))
    return str(data["version"]), tuple(rules), problems


def _follow_up_problems(rules: list[Rule], path: Path) -> list[ConfigError]:
    """An order timed from a follow-up Task needs some rule that plans a Task with that code."""
    codes = {a.task for r in rules for a in r.actions if a.type == "task"}
    problems = []
    for index, rule in enumerate(rules):
        for a_index, action in enumerate(rule.actions):
            order = action.order
            if order is not None and order.at == "follow-up" and order.task not in codes:
                hint = did_you_mean(order.task, codes)
                message = f"rule {rule.id!r}: the order is timed from task {order.task!r}, which no rule plans{hint}"
                where: list[str | int] = ["rules", index, "actions", a_index]
                problems.append(ConfigError(message, file=str(path), line=line_of(path, where)))
    return problems


def watched_files(config_dir: Path) -> list[Path]:
    """Every file a routing map is built from (for versions and hot reload)."""
    return [config_dir / ROUTES_FILE, config_dir / RECIPIENTS_FILE, *roster_files(config_dir / ROSTERS_DIR)]


def _digest(config_dir: Path) -> str:
    sha = hashlib.sha256()
    for path in watched_files(config_dir):
        sha.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return sha.hexdigest()[:10]


def _build(config_dir: Path) -> tuple[RoutingMap | None, list[ConfigError]]:
    try:
        recipients, items = _directory(config_dir / RECIPIENTS_FILE)
    except ConfigError as exc:
        return None, [exc]
    rosters, problems = load_rosters(config_dir / ROSTERS_DIR, recipients)
    directory = config_dir / RECIPIENTS_FILE
    problems = [*_recipient_problems(recipients, directory), *vendor_problems(recipients, items, directory), *problems]
    try:
        declared, rules, rule_problems = _load_rules(config_dir / ROUTES_FILE, recipients)
    except ConfigError as exc:
        return None, [exc, *problems]
    version = f"{declared}+{_digest(config_dir)}"
    routing_map = RoutingMap(version, rules, recipients, str(config_dir / ROUTES_FILE), rosters)
    return routing_map, [*rule_problems, *problems]


def check_config_dir(config_dir: Path) -> list[ConfigError]:
    """Every problem in the directory's routing config, each with file and line."""
    schema = [
        *file_problems(config_dir / RECIPIENTS_FILE, "recipients.schema.json"),
        *file_problems(config_dir / ROUTES_FILE, "routes.schema.json"),
    ]
    found = [*schema, *_build(config_dir)[1]]
    return list({str(p): p for p in found}.values())


def load_routing_map(config_dir: Path) -> RoutingMap:
    routing_map, problems = _build(config_dir)
    if problems:
        raise problems[0]
    assert routing_map is not None
    return routing_map
