"""A scorecard as JSON, CSV or a text table (the CLI), from computed results."""

from __future__ import annotations

import csv
import io
from typing import Any

from carehub.scorecard.compute import Result, Subject, Summary


def _rate(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def summary_dict(result: Result, s: Summary) -> dict[str, Any]:
    out: dict[str, Any] = {"numerator": s.numerator, "denominator": s.denominator, "rate": _rate(s.rate)}
    if result.measure.type == "duration":
        out.update({"count": s.count, "open": s.open, "median_s": s.median, "p90_s": s.p90})
    else:
        out.update({"excluded": s.excluded, "pending": s.pending})
    return out


def result_dict(result: Result, subjects: bool = False) -> dict[str, Any]:
    m = result.measure
    out: dict[str, Any] = {
        "id": m.id,
        "title": m.title,
        "type": m.type,
        "subject": m.subject,
        "improvement": m.improvement,
        **summary_dict(result, result.summary),
        "strata": {
            key: {value: summary_dict(result, s) for value, s in groups.items()}
            for key, groups in result.strata.items()
        },
    }
    if subjects:
        out["subjects"] = [subject_dict(s) for s in result.subjects]
    return out


def subject_dict(s: Subject) -> dict[str, Any]:
    return {
        "id": s.id, "patient_key": s.patient_key, "at": s.at, "status": s.status, "evidence_at": s.evidence_at,
        "why": s.why, "facility": s.facility, "payer": s.payer, "recipient": s.recipient, "service": s.service,
        "lace": s.lace, "value_s": s.value_s,
    }  # fmt: skip


def scorecard_dict(results: list[Result], subjects: bool = False) -> dict[str, Any]:
    first = results[0] if results else None
    return {
        "period": {"start": first.period.start.isoformat(), "end": first.period.end.isoformat()} if first else None,
        "as_of": first.as_of if first else None,
        "measures": [result_dict(r, subjects) for r in results],
    }


def _hours(seconds: float | None, unit: str) -> str:
    if seconds is None:
        return "-"
    return f"{seconds / 3600:.1f} h" if unit == "h" else f"{seconds:.2f} s"


def line_of(title: str, result: Result, s: Summary) -> str:
    if result.measure.type == "duration":
        unit = "h" if result.measure.subject == "task" else "s"
        return (f"{title:<52} {s.count:>5} done {s.open:>4} open   median {_hours(s.median, unit):>9}"
                f"   p90 {_hours(s.p90, unit):>9}")  # fmt: skip
    rate = "   -  " if s.rate is None else f"{100 * s.rate:5.1f}%"
    extra = f"  ({s.pending} pending)" if s.pending else ""
    excluded = f"  {s.excluded} excluded" if s.excluded else ""
    return f"{title:<52} {s.numerator:>5} / {s.denominator:<5} {rate}{extra}{excluded}"


def table(results: list[Result], by: str = "") -> str:
    if not results:
        return "no measures\n"
    first = results[0]
    lines = [f"scorecard {first.period.text()} (as of {first.as_of})", ""]
    for r in results:
        lines.append(line_of(f"{r.measure.id}", r, r.summary))
        for value, s in (r.strata.get(by, {}) if by else {}).items():
            lines.append(line_of(f"    {by} {value}", r, s))
    return "\n".join(lines) + "\n"


def csv_text(results: list[Result], by: str = "") -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["measure", "stratifier", "stratum", "numerator", "denominator", "rate", "excluded", "pending",
                     "count", "open", "median_s", "p90_s"])  # fmt: skip
    for r in results:
        rows = [("", "", r.summary)]
        keys = [by] if by else list(r.strata)
        rows += [(key, value, s) for key in keys for value, s in r.strata.get(key, {}).items()]
        for key, value, s in rows:
            rate = "" if s.rate is None else f"{s.rate:.4f}"
            stats = ["" if v is None else v for v in (s.median, s.p90)]
            writer.writerow([r.measure.id, key, value, s.numerator, s.denominator, rate, s.excluded, s.pending,
                             s.count, s.open, *stats])  # fmt: skip
    return buffer.getvalue()
