"""Measures as data: config/measures/*.yaml, validated against config/schemas/measures.schema.json.

A measure names its subjects (care events, Tasks or delivered notifications), who is in the
denominator (event kinds, encounter class, age, exclusions), what evidence puts a subject in the
numerator (a delivery, a Task status or an encounter, each within a window of days or business
days), or for a duration measure which two moments it measures between. docs/scorecard.md
explains every field. Every problem in every file is reported at once, each with file and line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carehub.core.configfile import file_problems, line_of, load_config_file
from carehub.core.defaults import shipped
from carehub.core.errors import ConfigError

MEASURES_DIR = "measures"
SCHEMA = "measures.schema.json"


@dataclass(frozen=True, slots=True)
class Span:
    days: int = 0
    business_days: int = 0


@dataclass(frozen=True, slots=True)
class Window:
    anchor: str = "event"
    start: Span = Span()
    end: Span = Span()


@dataclass(frozen=True, slots=True)
class Evidence:
    """One kind of proof, within a window: ``delivery``, ``task`` or ``encounter``."""

    kind: str
    window: Window
    of: str = "event"
    action: str = "notify"
    recipient_kinds: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()
    status: str = "completed"
    events: tuple[str, ...] = ()
    encounter_classes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Measure:
    id: str
    title: str
    subject: str
    type: str = "proportion"
    description: str = ""
    hedis: str = ""
    departures: tuple[str, ...] = ()
    improvement: str = "increase"
    stratify: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    encounter_classes: tuple[str, ...] = ()
    age_min: int | None = None
    age_max: int | None = None
    codes: tuple[str, ...] = ()
    recipient_kinds: tuple[str, ...] = ()
    exclude_dispositions: tuple[str, ...] = ()
    exclude_any: tuple[Evidence, ...] = ()
    numerator_any: tuple[Evidence, ...] = ()
    numerator_status: tuple[str, ...] = ()
    duration_from: str = ""
    duration_to: str = ""
    file: str = ""
    line: int | None = None


def _span(data: dict[str, Any] | None) -> Span:
    data = data or {}
    return Span(int(data.get("days", 0)), int(data.get("business_days", 0)))


def _evidence(data: dict[str, Any]) -> Evidence:
    window = data["window"]
    w = Window(window.get("anchor", "event"), _span(window.get("from")), _span(window["to"]))
    if "delivery" in data:
        d = data["delivery"]
        return Evidence("delivery", w, of=d["of"], action=d.get("action", "notify"),
                        recipient_kinds=tuple(d.get("recipient_kind", ())))  # fmt: skip
    if "task" in data:
        t = data["task"]
        return Evidence("task", w, codes=tuple(t["codes"]), status=t.get("status", "completed"))
    e = data["encounter"]
    return Evidence("encounter", w, events=tuple(e["events"]), encounter_classes=tuple(e.get("encounter_class", ())))


def _measure(data: dict[str, Any], file: str, line: int | None) -> Measure:
    den = data.get("denominator", {})
    num = data.get("numerator", {})
    exclude = den.get("exclude", {})
    age = den.get("age", {})
    duration = data.get("duration", {})
    return Measure(
        id=data["id"],
        title=data["title"],
        subject=data["subject"],
        type=data.get("type", "proportion"),
        description=" ".join(str(data.get("description", "")).split()),
        hedis=data.get("hedis", ""),
        departures=tuple(" ".join(d.split()) for d in data.get("departures", ())),
        improvement=data.get("improvement", "increase"),
        stratify=tuple(data.get("stratify", ())),
        events=tuple(den.get("events", ())),
        encounter_classes=tuple(den.get("encounter_class", ())),
        age_min=age.get("min"),
        age_max=age.get("max"),
        codes=tuple(den.get("codes", ())),
        recipient_kinds=tuple(den.get("recipient_kind", ())),
        exclude_dispositions=tuple(exclude.get("disposition", ())),
        exclude_any=tuple(_evidence(e) for e in exclude.get("any_of", ())),
        numerator_any=tuple(_evidence(e) for e in num.get("any_of", ())),
        numerator_status=tuple(num.get("status", ())),
        duration_from=duration.get("from", ""),
        duration_to=duration.get("to", ""),
        file=file,
        line=line,
    )


#: What each subject kind needs: proportion measures their numerator, duration measures their moments.
_MOMENTS = {"task": ({"created"}, {"accepted", "completed"}), "notification": ({"received"}, {"delivered"})}


def _meaning_problems(m: Measure, path: Path, index: int) -> list[ConfigError]:
    """Checks the schema cannot say: the parts a measure's type and subject need, unique ids."""
    where = line_of(path, ["measures", index])
    out: list[str] = []
    if m.type == "proportion":
        if m.subject == "event" and not m.numerator_any:
            out.append("numerator: an event measure needs numerator.any_of (the evidence)")
        if m.subject == "event" and not m.events:
            out.append("denominator: an event measure needs denominator.events (the kinds counted)")
        if m.subject == "task" and not m.numerator_status:
            out.append("numerator: a task measure needs numerator.status (e.g. [completed])")
        if m.subject == "notification":
            out.append("subject: notification measures are durations (type: duration)")
    else:
        starts, ends = _MOMENTS.get(m.subject, (set(), set()))
        if not starts:
            out.append("subject: duration measures are of tasks or notifications")
        elif m.duration_from not in starts or m.duration_to not in ends:
            out.append(
                f"duration: a {m.subject} duration runs from {sorted(starts)} to {sorted(ends)}"
                f" (got {m.duration_from or '?'} to {m.duration_to or '?'})"
            )
    return [ConfigError(f"measures/{index} ({m.id}): {text}", file=str(path), line=where) for text in out]


def measure_files(config_dir: Path | None) -> list[Path]:
    """The measure files of ``config_dir/measures``, else the shipped ones."""
    folder = config_dir / MEASURES_DIR if config_dir is not None else None
    if folder is None or not folder.is_dir():
        folder = shipped("config") / MEASURES_DIR
    return sorted(folder.glob("*.yaml"))


def check_measures(config_dir: Path | None) -> tuple[list[Measure], list[ConfigError]]:
    """Every measure that loaded and every problem found, in every file."""
    measures: list[Measure] = []
    problems: list[ConfigError] = []
    seen: dict[str, str] = {}
    for path in measure_files(config_dir):
        found = file_problems(path, SCHEMA)
        if found:
            problems.extend(found)
            continue
        data = load_config_file(path, SCHEMA)
        for index, item in enumerate(data["measures"]):
            m = _measure(item, str(path), line_of(path, ["measures", index]))
            problems.extend(_meaning_problems(m, path, index))
            if m.id in seen:
                problems.append(
                    ConfigError(
                        f"measures/{index}: id {m.id!r} is already defined in {seen[m.id]}", file=str(path), line=m.line
                    )  # fmt: skip
                )
            seen.setdefault(m.id, f"{path.name}:{m.line}")
            measures.append(m)
    return measures, problems


def load_measures(config_dir: Path | None) -> list[Measure]:
    """The measures, or a ConfigError listing every problem (file:line each)."""
    measures, problems = check_measures(config_dir)
    if problems:
        first = problems[0]
        rest = "".join(f"\n  {p}" for p in problems[1:])
        raise ConfigError(f"{first.reason}{rest}", file=first.file, line=first.line)
    return measures
